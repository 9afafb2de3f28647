"""Sending an issue: start (snapshot), claim batches with a lease, send, record
each outcome at once, sweep expired leases, finish. DESIGN.md §4.

The database is the ledger: every message's outcome is committed before the
next message leaves, so a killed worker duplicates at most the one message it
was sending. Redis only carries "there is work for issue N".
"""

import contextlib
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Engine, Update, bindparam, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from emails import Personaliser, Recipient, build_template, compile_variant
from emails.dkim import DkimSigner
from service.accounts.models import User
from service.audience.models import Subscriber, SubscriberStatus, Suppression, SuppressionReason
from service.audience.services import address_hmac, suppress
from service.audit.services import record
from service.config import Config
from service.db import utcnow
from service.delivery.bounces import bounce_address
from service.delivery.models import TERMINAL_DELIVERY_STATUSES, Delivery, DeliveryStatus
from service.delivery.sender import RelayError, Sender, SendError, UnknownOutcomeError
from service.delivery.snapshot import parse_variant, snapshot
from service.delivery.throttle import Throttle
from service.delivery.window import PARIS, Window
from service.issues.models import Issue, IssueStatus
from service.issues.rendering import dkim_signer, issue_data, render_settings
from service.issues.states import transition
from service.tracking.services import store_links

BATCH = 200
LEASE = dt.timedelta(minutes=5)
DEADLINE = dt.timedelta(days=2)  # deferred messages give up after this
STATUS_CHECK_EVERY = 0.5  # seconds: pause and cancel act within a second
SEND_TASK = "lettrine.delivery.send_batch"
PARALLEL_TASKS = 4
HARD_BOUNCE_CODES = ("5.1.", "5.2.1")
# "Too many messages / try later": the receiving domain asks us to slow down.
SLOW_DOWN_CODES = ("4.7.", "4.2.1")
THROTTLE_HOLD_MIN = dt.timedelta(seconds=5)

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A sending use case refused; the message is French."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def start_sending(
    session: Session, issue: Issue, user: User, *, at: dt.datetime | None = None
) -> int:
    """Use case: approved → sending now (snapshot taken), or → scheduled for ``at``."""
    # Two clicks at once: the second waits for the first, then finds it no longer approved.
    session.refresh(issue, with_for_update=True)
    if issue.status is not IssueStatus.APPROVED:
        raise DeliveryError("Seul un numéro approuvé peut être envoyé ou programmé.")
    if not issue.segments:
        raise DeliveryError("Choisissez au moins un segment destinataire.")
    if at is not None and at > utcnow():
        transition(issue, IssueStatus.SCHEDULED)
        issue.scheduled_at = at
        record(session, user.id, "issue.scheduled", "issue", issue.id, {"at": at.isoformat()})
        session.commit()
        return 0
    added = _begin(session, issue)
    record(session, user.id, "issue.sending", "issue", issue.id, {"recipients": added})
    session.commit()
    return added


def _begin(session: Session, issue: Issue) -> int:
    transition(issue, IssueStatus.SENDING)
    issue.send_started_at = issue.send_started_at or utcnow()
    added = snapshot(session, issue)
    if not added and not session.scalar(select(Delivery.id).where(Delivery.issue_id == issue.id)):
        raise DeliveryError(
            "Les segments choisis n'ont aucun abonné actif : il n'y a personne à qui envoyer "
            "ce numéro. Choisissez d'autres segments ou ajoutez des abonnés."
        )
    issue.send_error = None
    store_links(session, issue)
    _enqueue(session, issue.id, PARALLEL_TASKS)
    return added


def _enqueue(session: Session, issue_id: int, count: int) -> None:
    from service.taskqueue import enqueue_after_commit  # noqa: PLC0415 - needs a Flask app

    for _ in range(count):
        enqueue_after_commit(session, SEND_TASK, issue_id)


def start_due(session: Session) -> list[int]:
    """Use case (beat): scheduled issues whose time has come start sending."""
    due = list(
        session.scalars(
            select(Issue).where(
                Issue.status == IssueStatus.SCHEDULED, Issue.scheduled_at <= utcnow()
            )
        )
    )
    started = []
    for issue in due:
        transition(issue, IssueStatus.APPROVED)
        try:
            with session.begin_nested():
                _begin(session, issue)
        except DeliveryError as error:
            # Nothing to send (segments emptied since): back to approved, with the reason.
            issue.status = IssueStatus.APPROVED
            issue.send_error = str(error)
            record(
                session, None, "issue.schedule_failed", "issue", issue.id, {"reason": str(error)}
            )
            continue
        record(session, None, "issue.sending", "issue", issue.id, {"scheduled": True})
        started.append(issue.id)
    session.commit()
    return started


def set_paused(session: Session, issue: Issue, user: User, *, paused: bool) -> None:
    # Locked: a worker finishing the issue at the same moment waits, or is waited for.
    session.refresh(issue, with_for_update=True)
    transition(issue, IssueStatus.PAUSED if paused else IssueStatus.SENDING)
    # Whatever held the sending (window, relay) is moot once a person paused or resumed it.
    issue.send_error = None
    record(session, user.id, "issue.paused" if paused else "issue.resumed", "issue", issue.id)
    if not paused:
        _enqueue(session, issue.id, PARALLEL_TASKS)
    session.commit()


def cancel(session: Session, issue: Issue, user: User) -> int:
    session.refresh(issue, with_for_update=True)
    transition(issue, IssueStatus.CANCELLED)
    # Leased ones are cancelled by their worker within half a second (``_stop_or_renew``),
    # so that the message on the wire at that instant records its real outcome; the
    # sweeper cancels what a dead worker left.
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.issue_id == issue.id,
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED]),
        )
        .values(status=DeliveryStatus.CANCELLED, updated_at=utcnow())
    )
    record(session, user.id, "issue.cancelled", "issue", issue.id)
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def claim(
    session: Session, issue_id: int, owner: str, size: int = BATCH, lease: dt.timedelta = LEASE
) -> list[int]:
    """Lease up to ``size`` deliveries that are due; other workers skip them. Commits."""
    now = utcnow()
    due = (
        select(Delivery.id)
        .where(
            Delivery.issue_id == issue_id,
            (Delivery.status == DeliveryStatus.QUEUED)
            | ((Delivery.status == DeliveryStatus.DEFERRED) & (Delivery.next_attempt_at <= now)),
        )
        .order_by(Delivery.id)
        .limit(size)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status=DeliveryStatus.LEASED, lease_expires_at=now + lease, leased_by=owner)
        )
    session.commit()
    return ids


@dataclass
class BatchResult:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    unknown: int = 0
    stopped: bool = False
    more: bool = False
    outcomes: dict[int, DeliveryStatus] = field(default_factory=dict)


class _Templates:
    """Compiled variants of one issue, kept for the life of the worker process."""

    def __init__(self) -> None:
        self.cache: dict[tuple[int, int, str], Personaliser] = {}

    def personaliser(self, issue: Issue, config: Config, variant: str) -> Personaliser:
        key = (issue.id, issue.version, variant)
        if key not in self.cache:
            data = issue_data(issue, config=config)
            settings = render_settings(config, issue.id)
            compiled = compile_variant(data, None, parse_variant(variant))
            self.cache[key] = Personaliser(data, build_template(data, compiled, settings), settings)
        return self.cache[key]


TEMPLATES = _Templates()


def send_batch(
    session: Session,
    issue_id: int,
    config: Config,
    sender: Sender,
    *,
    owner: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    throttle: Throttle | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchResult:
    """Use case (worker): claim a batch, send it, commit each outcome as it comes."""
    try:
        return _send_batch(
            session,
            issue_id,
            config,
            sender,
            owner=owner,
            clock=clock,
            throttle=throttle,
            sleep=sleep,
        )
    finally:
        _flush(session)
        ledger = session.info.pop(_LEDGER, None)
        if ledger is not None:
            with contextlib.suppress(SQLAlchemyError):
                ledger.execute(text("RESET synchronous_commit"))  # pooled: leave it as found
            ledger.close()


def _send_batch(  # noqa: PLR0911, PLR0912, PLR0915 - a batch: each step of a message has its exit
    session: Session,
    issue_id: int,
    config: Config,
    sender: Sender,
    *,
    owner: str | None,
    clock: Callable[[], float],
    throttle: Throttle | None,
    sleep: Callable[[float], None],
) -> BatchResult:
    result = BatchResult()
    issue = session.get(Issue, issue_id)
    if issue is None or issue.status is not IssueStatus.SENDING:
        return result
    window = Window.of(issue.newsletter)
    if (opens := window.next_open(utcnow())) is not None:
        # Outside the send window: nothing is claimed; the sweeper comes back every 30 s.
        _set_send_error(session, issue, _window_message(opens))
        return result
    closes = window.closes_at(utcnow())
    owner = owner or worker_name()
    lease = dt.timedelta(seconds=config.delivery_lease_seconds)
    ids = claim(session, issue_id, owner, lease=lease)
    if not ids:
        finish_if_done(session, issue)
        return result
    signer = dkim_signer(config)
    if session.get_bind().dialect.name == "postgresql":
        # Outcomes are committed one by one; a worker crash loses nothing committed, and
        # PostgreSQL need not wait for the disk on each of them.
        session.execute(text("SET LOCAL synchronous_commit = off"))
    rows = session.execute(
        select(Delivery, Subscriber)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    ).all()
    suppressed = _suppressed(session, config.secret_key, [s.email for _d, s in rows])
    last_check = clock()
    for position, (delivery, subscriber) in enumerate(rows):
        if clock() - last_check > STATUS_CHECK_EVERY:
            last_check = clock()
            remaining = [d.id for d, _s in rows[position:]]
            if _stop_or_renew(session, issue, closes, remaining, owner, lease):
                result.stopped = True
                return result
        if subscriber.email in suppressed or subscriber.status is not SubscriberStatus.ACTIVE:
            _record(session, delivery, DeliveryStatus.CANCELLED, "adresse supprimée ou désinscrite")
            continue
        try:
            message, bounces_to = _message(issue, config, signer, delivery, subscriber)
        except Exception as error:
            # (a template or signing error): it fails alone, with the reason, instead of
            # failing its batch again and again.
            log.exception("delivery %s: the message could not be built", delivery.id)
            _record(
                session, delivery, DeliveryStatus.FAILED, f"message impossible à préparer : {error}"
            )
            result.failed += 1
            continue
        recipient_domain = subscriber.email.rpartition("@")[2]
        try:
            held = throttle is not None and _held_back(
                session, delivery, recipient_domain, throttle, sleep
            )
        except RedisError as error:
            # The shared rates are out of reach: nothing leaves unchecked; the batch goes
            # back to the queue and the sweeper tries again.
            _release(session, [d.id for d, _s in rows[position:]], owner)
            _set_send_error(session, issue, f"Limites de débit indisponibles (Redis) : {error}")
            result.stopped = True
            return result
        if held:
            result.deferred += 1
            continue
        try:
            status = _deliver(
                session, config, sender, delivery, subscriber, bounces_to, message, owner
            )
            if status is None:  # the lease was lost: another worker has this message
                continue
        except RelayError as error:
            _relay_down(session, issue, [d.id for d, _s in rows[position:]], delivery, error)
            result.stopped = True
            return result
        if status is DeliveryStatus.DEFERRED and throttle is not None and _slow_down(delivery):
            rate = throttle.slow_down(recipient_domain)
            log.info("%s asked to slow down: %.3f msg/s for a while", recipient_domain, rate)
        if status is DeliveryStatus.SENT and issue.send_error and not result.sent:
            _set_send_error(session, issue, None)
        result.outcomes[delivery.id] = status
        _count(result, status)
    result.more = True
    return result


def _message(
    issue: Issue,
    config: Config,
    signer: DkimSigner | None,
    delivery: Delivery,
    subscriber: Subscriber,
) -> tuple[bytes, str]:
    """The personalised (and signed) message, and its VERP envelope sender."""
    personaliser = TEMPLATES.personaliser(issue, config, delivery.variant)
    message = personaliser.render(
        Recipient(delivery.id, subscriber.email, subscriber.first_name, subscriber.last_name)
    )
    if signer is not None:
        message = signer.sign(message)
    # The same Message-ID the personaliser wrote into the headers.
    domain = personaliser.settings.list_domain
    # Written with the attempt (``_take``), before the message leaves.
    set_committed_value(delivery, "message_id", f"{issue.id}.{delivery.id}@{domain}")
    # VERP: bounces come back to an address naming this delivery.
    return message, bounce_address(personaliser.settings.signer, delivery.id, domain)


def _held_back(
    session: Session,
    delivery: Delivery,
    domain: str,
    throttle: Throttle,
    sleep: Callable[[float], None],
) -> bool:
    """Wait for the relay's and the domain's rates; True when the wait would be long
    and the message is held back instead (deferred without an attempt)."""
    wait = throttle.wait(domain)
    if wait is None:
        rate = throttle.rate_for(domain) or 1.0
        hold = max(THROTTLE_HOLD_MIN, dt.timedelta(seconds=1 / rate))
        _stage(delivery, next_attempt_at=utcnow() + hold)
        _record(session, delivery, DeliveryStatus.DEFERRED, f"débit limité pour {domain}")
        return True
    if wait:
        sleep(wait)
    return False


def _slow_down(delivery: Delivery) -> bool:
    reply = delivery.last_reply or ""
    return reply.startswith("421") or reply[4:].startswith(SLOW_DOWN_CODES)


def _relay_down(
    session: Session, issue: Issue, ids: list[int], delivery: Delivery, error: RelayError
) -> None:
    """No message was offered: nothing is charged; the batch goes back to the queue.

    A relay that refuses our credentials or TLS needs a person: the issue is paused
    with the reason shown. An unreachable relay is retried by the sweeper."""
    delivery.attempts -= 1
    session.commit()
    _release(session, ids, delivery.leased_by or "")
    message = str(error)
    if error.needs_operator:
        message += " L'envoi est en pause : corrigez la configuration puis reprenez."
        session.execute(
            update(Issue)
            .where(Issue.id == issue.id, Issue.status == IssueStatus.SENDING)
            .values(status=IssueStatus.PAUSED)
            .execution_options(synchronize_session=False)
        )
        record(session, None, "issue.paused", "issue", issue.id, {"reason": str(error)})
    else:
        message += " Nouvel essai automatique dans moins d'une minute."
    log.warning("issue %s: %s", issue.id, message)
    _set_send_error(session, issue, message)


def _set_send_error(session: Session, issue: Issue, message: str | None) -> None:
    """What holds the sending, for the publisher; a plain UPDATE (the issue's version,
    which guards editors' saves, is not a sending concern). Commits."""
    if issue.send_error == message:
        return
    session.execute(
        update(Issue)
        .where(Issue.id == issue.id)
        .values(send_error=message)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(issue, ["send_error", "status"])


def _window_message(opens: dt.datetime) -> str:
    local = opens.astimezone(PARIS)
    return (
        "Hors de la plage d'envoi de la lettre : les messages partiront le "
        f"{local:%d/%m/%Y à %H:%M}."
    )


def _take(session: Session, delivery: Delivery, owner: str) -> bool:
    """Record the attempt, only while the lease is ours. Commits.

    A worker stalled past its lease (the sweeper gave the message back to the queue,
    maybe to another worker) must not send it too."""
    # Never hold a database transaction across network I/O: the attempt is on record
    # before the message leaves, and in embedded mode the dev outbox, which receives it,
    # writes to the same SQLite file.
    taken = _write(session, _TAKE, {"d_id": delivery.id, "d_owner": owner})
    if taken != 1:
        return False
    set_committed_value(delivery, "attempts", delivery.attempts + 1)
    return True


def _deliver(  # noqa: PLR0911, PLR0917 - one return per outcome of one message in flight
    session: Session,
    config: Config,
    sender: Sender,
    delivery: Delivery,
    subscriber: Subscriber,
    envelope_from: str,
    message: bytes,
    owner: str,
) -> DeliveryStatus | None:
    if not _take(session, delivery, owner):
        return None
    try:
        accepted = sender.send(envelope_from, [subscriber.email], message)
    except UnknownOutcomeError as error:
        return _record(session, delivery, DeliveryStatus.UNKNOWN, str(error))
    except RelayError:
        raise
    except SendError as error:
        reply = f"{error.code or ''} {error}".strip()
        if error.permanent:
            if error.code and error.code >= 500 and str(error).startswith(HARD_BOUNCE_CODES):
                subscriber.status = SubscriberStatus.BOUNCED
                suppress(
                    session, config.secret_key, subscriber.email, SuppressionReason.HARD_BOUNCE
                )
                return _record(session, delivery, DeliveryStatus.BOUNCED, reply)
            return _record(session, delivery, DeliveryStatus.FAILED, reply)
        if utcnow() - delivery.created_at > DEADLINE:
            return _record(session, delivery, DeliveryStatus.FAILED, f"délai dépassé : {reply}")
        delay = dt.timedelta(minutes=min(2 ** (delivery.attempts - 1) * 5, 240))
        _stage(delivery, next_attempt_at=utcnow() + delay)
        return _record(session, delivery, DeliveryStatus.DEFERRED, reply)
    _stage(delivery, sent_at=utcnow())
    return _record(session, delivery, DeliveryStatus.SENT, f"{accepted.code} {accepted.reply}")


def _record(
    session: Session, delivery: Delivery, status: DeliveryStatus, reply: str
) -> DeliveryStatus:
    owner = delivery.leased_by
    _stage(delivery, status=status, last_reply=reply[:500], lease_expires_at=None, leased_by=None)
    params = {
        "d_id": delivery.id,
        "d_owner": owner,
        "d_message_id": delivery.message_id,
        "d_status": status,
        "d_reply": delivery.last_reply,
        "d_sent_at": delivery.sent_at,
        "d_next": delivery.next_attempt_at,
        "d_now": utcnow(),
    }
    if status is DeliveryStatus.SENT and _LEDGER in session.info:
        # Written with the next message's attempt, in one round trip, before that message
        # leaves (or by ``_flush`` at any other write and at the end of the batch).
        session.info[_PENDING] = params
        return status
    if not _write(session, _RECORD, params):
        log.warning(
            "delivery %s: lease lost before its outcome (%s) was recorded", delivery.id, status
        )
    if status is not DeliveryStatus.SENT and _LEDGER in session.info:
        session.commit()  # a hard bounce also suppressed the address and the subscriber
    return status


# Per batch on PostgreSQL: a connection of its own, in autocommit, where each message's
# attempt and outcome are written. One round trip per write (no pool checkout, ping,
# BEGIN or COMMIT: at 1,000 msg/s they were most of a worker's time), and never a
# transaction open while a message is on the wire.
_LEDGER = "lettrine.delivery.ledger"
_PENDING = "lettrine.delivery.pending_outcome"
# The outcome of the message just sent and the attempt of the next, in one statement.
_RECORD_AND_TAKE = text(
    "WITH done AS ("
    " UPDATE deliveries SET status = :r_status, last_reply = :r_reply,"
    " lease_expires_at = NULL, leased_by = NULL, message_id = :r_message_id,"
    " sent_at = :r_sent_at, next_attempt_at = :r_next, updated_at = :r_now"
    " WHERE id = :r_id AND status = 'leased' AND leased_by = :r_owner RETURNING id)"
    " UPDATE deliveries SET attempts = attempts + 1"
    " WHERE id = :d_id AND status = 'leased' AND leased_by = :d_owner"
)


def _flush(session: Session) -> None:
    """Write the outcome waiting for the next attempt, if any (before anything else)."""
    params = session.info.pop(_PENDING, None)
    ledger = session.info.get(_LEDGER)
    if params is not None and ledger is not None:
        ledger.execute(_RECORD, params)


def _column(name: str) -> Any:
    return bindparam(name, type_=Delivery.__table__.c[name.removeprefix("d_")].type)


# The two writes of each message, built once (no statement to build and hash each time).
# Both only while the lease is the writer's: a worker that lost its lease must neither
# send (attempt) nor overwrite the outcome the new holder wrote.
_HELD = (
    Delivery.id == bindparam("d_id"),
    Delivery.status == DeliveryStatus.LEASED,
    Delivery.leased_by == bindparam("d_owner"),
)
_TAKE = (
    update(Delivery)
    .where(*_HELD)
    # Only the attempt counter (no indexed column: a cheap in-place update).
    .values(attempts=Delivery.attempts + 1)
)
_RECORD = (
    update(Delivery)
    .where(*_HELD)
    .values(
        status=_column("d_status"),
        last_reply=bindparam("d_reply"),
        lease_expires_at=None,
        leased_by=None,
        message_id=bindparam("d_message_id"),
        sent_at=bindparam("d_sent_at", type_=Delivery.__table__.c.sent_at.type),
        next_attempt_at=bindparam("d_next", type_=Delivery.__table__.c.next_attempt_at.type),
        updated_at=bindparam("d_now", type_=Delivery.__table__.c.updated_at.type),
    )
)


def _stage(delivery: Delivery, **values: object) -> None:
    """Values of the message in flight that ``_record`` writes itself, in its one UPDATE:
    kept out of the session's unit of work, which would flush them once more (pool
    checkout, ping, BEGIN, UPDATE, COMMIT) for each message."""
    for key, value in values.items():
        set_committed_value(delivery, key, value)


def _write(session: Session, statement: Update, params: dict[str, Any]) -> int:
    """Run one UPDATE of the hot path and commit it; the number of rows it changed."""
    ledger = session.info.get(_LEDGER)
    if ledger is None:
        bind = session.get_bind()
        if isinstance(bind, Engine) and bind.dialect.name == "postgresql":
            ledger = bind.connect().execution_options(isolation_level="AUTOCOMMIT")
            # Each outcome is committed; PostgreSQL need not wait for the disk on each.
            ledger.execute(text("SET synchronous_commit = off"))
            session.info[_LEDGER] = ledger
    if ledger is None:  # SQLite, or a session joined to an outer transaction (tests)
        result = session.execute(
            statement, params, execution_options={"synchronize_session": False}
        )
        session.commit()
    else:
        if session.in_transaction():
            session.commit()  # what the batch read: nothing is held across SMTP
        pending = session.info.pop(_PENDING, None)
        if pending is not None and statement is _TAKE:
            merged = {f"r_{k[2:]}": v for k, v in pending.items()} | params
            result = ledger.execute(_RECORD_AND_TAKE, merged)
        else:
            if pending is not None:
                ledger.execute(_RECORD, pending)
            result = ledger.execute(statement, params)
    return int(getattr(result, "rowcount", 1))


def _count(result: BatchResult, status: DeliveryStatus) -> None:
    if status is DeliveryStatus.SENT:
        result.sent += 1
    elif status is DeliveryStatus.DEFERRED:
        result.deferred += 1
    elif status is DeliveryStatus.UNKNOWN:
        result.unknown += 1
    else:
        result.failed += 1


def _suppressed(session: Session, secret: str, addresses: list[str]) -> set[str]:
    by_hmac = {address_hmac(secret, a): a for a in addresses}
    found = session.scalars(
        select(Suppression.address_hmac).where(Suppression.address_hmac.in_(by_hmac))
    )
    return {by_hmac[h] for h in found}


def _stop_or_renew(  # noqa: PLR0917 - the state of a batch in flight
    session: Session,
    issue: Issue,
    closes: dt.datetime | None,
    remaining: list[int],
    owner: str,
    lease: dt.timedelta,
) -> bool:
    """Twice a second: paused, cancelled or out of the window → give the rest back;
    else keep the lease on the rest."""
    _flush(session)
    session.refresh(issue, ["status"])
    if issue.status is not IssueStatus.SENDING or (closes and utcnow() >= closes):
        cancelled = issue.status is IssueStatus.CANCELLED
        _release(session, remaining, owner, to=DeliveryStatus.CANCELLED if cancelled else None)
        return True
    _renew(session, remaining, owner, lease)
    return False


def _held_by(ids: list[int], owner: str) -> tuple[Any, ...]:
    """The batch's messages still leased by ``owner`` (``_HELD``, for several at once)."""
    return (
        Delivery.id.in_(ids),
        Delivery.status == DeliveryStatus.LEASED,
        Delivery.leased_by == owner,
    )


def _renew(session: Session, ids: list[int], owner: str, lease: dt.timedelta) -> None:
    """Extend the lease of the batch's remaining messages: a live worker keeps them."""
    session.execute(
        update(Delivery)
        .where(*_held_by(ids, owner))
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def _release(
    session: Session, ids: list[int], owner: str, *, to: DeliveryStatus | None = None
) -> None:
    """Give the batch's remaining messages back to the queue (or cancel them)."""
    _flush(session)  # the message just sent must not go back to the queue
    session.execute(
        update(Delivery)
        .where(*_held_by(ids, owner))
        .values(status=to or DeliveryStatus.QUEUED, lease_expires_at=None, leased_by=None)
    )
    session.commit()


def finish_if_done(session: Session, issue: Issue) -> bool:
    """The issue is sent when every delivery is terminal. Commits."""
    # Locked first, then counted: an operator re-queuing unknown messages at the same
    # moment (``resolve_unknown`` locks too) cannot be missed.
    session.refresh(issue, with_for_update=True)
    open_count = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.issue_id == issue.id, Delivery.status.not_in(TERMINAL_DELIVERY_STATUSES))
    )
    if open_count or issue.status is not IssueStatus.SENDING:
        return False
    transition(issue, IssueStatus.SENT)
    issue.sent_at = utcnow()
    record(session, None, "issue.sent", "issue", issue.id)
    session.commit()
    return True


def sweep(session: Session) -> dict[str, int]:
    """Use case (beat): expired leases back to the queue; issues with work get a task
    again (Redis may have lost it); finished issues are closed; due ones start."""
    now = utcnow()
    expired = session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.LEASED, Delivery.lease_expires_at < now)
        .values(status=DeliveryStatus.QUEUED, lease_expires_at=None, leased_by=None)
    )
    # What a cancelled issue still had open (a message deferred while it was on the
    # wire, a dead worker's lease that just expired) is cancelled too.
    session.execute(
        update(Delivery)
        .where(
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED]),
            Delivery.issue_id.in_(select(Issue.id).where(Issue.status == IssueStatus.CANCELLED)),
        )
        .values(status=DeliveryStatus.CANCELLED, updated_at=now)
    )
    session.commit()
    started = start_due(session)
    revived = 0
    for issue in session.scalars(select(Issue).where(Issue.status == IssueStatus.SENDING)):
        if not finish_if_done(session, issue):
            _enqueue(session, issue.id, 1)
            revived += 1
    session.commit()
    return {
        "expired": int(getattr(expired, "rowcount", 0) or 0),
        "started": len(started),
        "revived": revived,
    }


def unknown_deliveries(session: Session, issue_id: int) -> list[tuple[Delivery, str | None]]:
    """Messages whose fate is unknown (connection lost after the "."), for an operator."""
    return [
        (d, email_)
        for d, email_ in session.execute(
            select(Delivery, Subscriber.email)
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.UNKNOWN)
            .order_by(Delivery.id)
            .limit(1000)
        )
    ]


def resolve_unknown(
    session: Session, issue: Issue, user: User, delivery_ids: list[int], *, resend: bool
) -> int:
    """Use case: an operator checked the relay's logs. ``resend``: the messages did not
    leave, send them again (the issue goes back to sending); else they did: mark sent."""
    session.refresh(issue, with_for_update=True)
    rows = list(
        session.scalars(
            select(Delivery).where(
                Delivery.issue_id == issue.id,
                Delivery.id.in_(delivery_ids),
                Delivery.status == DeliveryStatus.UNKNOWN,
            )
        )
    )
    if not rows:
        return 0
    if resend and issue.status not in {IssueStatus.SENDING, IssueStatus.PAUSED}:
        transition(issue, IssueStatus.SENDING)
        issue.sent_at = None
    for delivery in rows:
        if resend:
            delivery.status = DeliveryStatus.QUEUED
            delivery.last_reply = "renvoi demandé après vérification"
        else:
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = delivery.sent_at or delivery.updated_at
            delivery.last_reply = "remise confirmée après vérification"
    record(
        session,
        user.id,
        "delivery.unknown_resent" if resend else "delivery.unknown_confirmed",
        "issue",
        issue.id,
        {"deliveries": [d.id for d in rows]},
    )
    if resend and issue.status is IssueStatus.SENDING:
        _enqueue(session, issue.id, 1)
    session.commit()
    return len(rows)


def pace(
    session: Session, issue_id: int, counts: dict[str, int]
) -> tuple[float, dt.datetime | None]:
    """Messages per second over the last minute (or since the first of them, when the
    sending started or resumed less than a minute ago), and when the rest should be out."""
    now = utcnow()
    recent, first = session.execute(
        select(func.count(), func.min(Delivery.sent_at)).where(
            Delivery.issue_id == issue_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at >= now - dt.timedelta(seconds=60),
        )
    ).one()
    span = max(1.0, (now - first).total_seconds()) if first else 60.0
    rate = recent / span
    remaining = counts["queued"] + counts["leased"] + counts["deferred"]
    if not rate or not remaining:
        return rate, None
    return rate, utcnow() + dt.timedelta(seconds=remaining / rate)


def progress(session: Session, issue_id: int) -> dict[str, int]:
    counts = dict.fromkeys((s.value for s in DeliveryStatus), 0)
    for status, count in session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.issue_id == issue_id)
        .group_by(Delivery.status)
    ):
        counts[status.value] = count
    counts["total"] = sum(counts.values())
    return counts
