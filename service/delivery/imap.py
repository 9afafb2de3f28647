"""The bounce mailbox, read over IMAP (beat, every minute).

Each run takes a lease in the database (two overlapping ticks never read the mailbox
at once, with or without Redis), reads at most ``RUN_LIMIT`` messages of the folder in
batches of ``BATCH``, hands each one to ``bounces.process``, then marks it \\Seen and
moves it to « Traités » — or to « Malformés » when it could not be read. Moving rather
than deleting keeps the evidence for a person, and a message can be put back in the
folder to be read again. A crash between the two steps is harmless: the next run reads
the message again, and ``process`` recognises the copy by its Message-ID.

Connection, TLS and authentication failures end the run with one log line and a status
shown on the page « Retours de messagerie »; nothing in the mailbox is touched.
"""

import base64
import datetime as dt
import imaplib
import logging
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from service.config import Config, ImapSettings
from service.db import utcnow
from service.delivery import bounces
from service.delivery.models import MailboxState

log = logging.getLogger(__name__)

MAILBOX = "bounces"  # the MailboxState row of this reader
DONE_FOLDER = "Traités"
ASIDE_FOLDER = "Malformés"
BATCH = 25  # messages per FETCH
RUN_LIMIT = 200  # messages per run: a tick stays short, the next one goes on
MAX_SIZE = 5 * 1024 * 1024  # same limit as the webhook; larger messages are set aside
TIMEOUT = 30  # seconds, for every network operation
# Longer than any bounded run; a reader killed mid-run blocks the next ones this long at most.
LEASE = dt.timedelta(minutes=5)

_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


class MailboxError(Exception):
    """The mailbox cannot be read; ``kind`` names the cause for the back office:
    connection, tls, auth, folder or protocol."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RunResult:
    processed: int = 0
    set_aside: int = 0
    skipped: str | None = None  # "disabled" or "busy": nothing was read
    error: MailboxError | None = None


def read_mailbox(
    session: Session, config: Config, *, batch: int = BATCH, limit: int = RUN_LIMIT
) -> RunResult:
    """Use case: read the waiting reports once (idempotent, safe to overlap)."""
    settings = config.bounce_imap
    if settings is None:
        return RunResult(skipped="disabled")
    if not _take_lease(session):
        log.info("Bounce mailbox: another reader holds the lease, skipping this tick")
        return RunResult(skipped="busy")
    processed = set_aside = 0
    try:
        with _connect(settings) as conn:
            processed, set_aside = _drain(session, config.secret_key, conn, settings, batch, limit)
    except MailboxError as error:
        # One line: the cause is known and shown on the page, a traceback would add nothing.
        log.error(
            "Bounce mailbox %s@%s:%d unreadable (%s): %s",
            settings.user,
            settings.host,
            settings.port,
            error.kind,
            error,
        )
        _finish(session, processed, set_aside, error)
        return RunResult(processed, set_aside, error=error)
    except Exception:  # a bug or the database: the worker logs the traceback
        session.rollback()
        with suppress(DBAPIError):
            _finish(session, processed, set_aside, MailboxError("internal", "erreur interne"))
        raise
    _finish(session, processed, set_aside, None)
    if processed or set_aside:
        log.info("Bounce mailbox: %d reports processed, %d set aside", processed, set_aside)
    return RunResult(processed, set_aside)


def _take_lease(session: Session) -> bool:
    now = utcnow()
    if session.get(MailboxState, MAILBOX) is None:
        session.add(MailboxState(name=MAILBOX))
        try:
            session.commit()
        except IntegrityError:  # created by a concurrent reader
            session.rollback()
    # A conditional UPDATE: on PostgreSQL the second of two concurrent readers waits
    # for the first to commit, then finds the lease taken; SQLite serialises writers.
    taken = session.execute(
        update(MailboxState)
        .where(
            MailboxState.name == MAILBOX,
            or_(MailboxState.lease_until.is_(None), MailboxState.lease_until < now),
        )
        .values(lease_until=now + LEASE, last_run_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(taken, "rowcount", 0) == 1)


def _finish(session: Session, processed: int, set_aside: int, error: MailboxError | None) -> None:
    state = session.get(MailboxState, MAILBOX, populate_existing=True)
    if state is None:  # pragma: no cover - created by _take_lease
        return
    state.lease_until = None
    state.last_processed = processed
    state.last_set_aside = set_aside
    state.last_error_kind = error.kind if error else None
    state.last_error = str(error)[:1000] if error else None
    if error is None:
        state.last_success_at = utcnow()
    session.commit()


def mailbox_state(session: Session) -> MailboxState | None:
    return session.get(MailboxState, MAILBOX)


@contextmanager
def _connect(settings: ImapSettings) -> Iterator[imaplib.IMAP4]:
    """A logged-in connection, every failure turned into a MailboxError."""
    where = f"{settings.host}:{settings.port}"
    context = ssl.create_default_context()
    conn: imaplib.IMAP4 | None = None
    try:
        if settings.tls == "implicit":
            conn = imaplib.IMAP4_SSL(
                settings.host, settings.port, ssl_context=context, timeout=TIMEOUT
            )
        else:
            conn = imaplib.IMAP4(settings.host, settings.port, timeout=TIMEOUT)
            if settings.tls == "starttls":
                if "STARTTLS" not in conn.capabilities:
                    _close(conn)
                    raise MailboxError("tls", f"{where} ne propose pas STARTTLS")
                conn.starttls(ssl_context=context)
    except ssl.SSLError as error:  # before OSError: it is one
        _close(conn)
        reason = getattr(error, "verify_message", None) or error.reason or error
        raise MailboxError("tls", f"échec TLS avec {where} : {reason}") from None
    except (OSError, imaplib.IMAP4.error) as error:
        _close(conn)
        raise MailboxError("connection", f"connexion impossible à {where} : {error}") from None
    try:
        try:
            conn.login(settings.user, settings.password)
        except imaplib.IMAP4.abort as error:
            raise MailboxError("connection", f"connexion perdue avec {where} : {error}") from None
        except imaplib.IMAP4.error as error:
            reason = error.args[0].decode() if isinstance(error.args[0], bytes) else error
            raise MailboxError(
                "auth", f"identifiants refusés pour {settings.user} ({reason})"
            ) from None
        yield conn
    except (OSError, imaplib.IMAP4.abort) as error:
        raise MailboxError("connection", f"connexion perdue avec {where} : {error}") from None
    except imaplib.IMAP4.error as error:  # a command the server found BAD
        raise MailboxError("protocol", f"réponse inattendue de {where} : {error}") from None
    finally:
        _close(conn)


def _close(conn: imaplib.IMAP4 | None) -> None:
    if conn is None:
        return
    try:
        conn.logout()
    except (OSError, imaplib.IMAP4.error):
        with suppress(OSError):
            conn.shutdown()


def _drain(  # noqa: PLR0917 - one call site, all needed
    session: Session,
    secret: str,
    conn: imaplib.IMAP4,
    settings: ImapSettings,
    batch: int,
    limit: int,
) -> tuple[int, int]:
    capabilities = _capabilities(conn)
    _ok(conn.select(_quote(settings.folder)), "folder", f"dossier {settings.folder} introuvable")
    typ, data = conn.uid("SEARCH", "ALL")
    uids = _ok((typ, data), "protocol", "recherche refusée")[0].split()[:limit]
    if not uids:
        return 0, 0
    _ensure_folders(conn)
    processed = set_aside = 0
    for start in range(0, len(uids), batch):
        done, aside = _read_batch(session, secret, conn, uids[start : start + batch])
        _move(conn, done, DONE_FOLDER, capabilities)
        _move(conn, aside, ASIDE_FOLDER, capabilities)
        processed += len(done)
        set_aside += len(aside)
    if "MOVE" not in capabilities:
        conn.expunge()
    return processed, set_aside


def _read_batch(
    session: Session, secret: str, conn: imaplib.IMAP4, uids: list[bytes]
) -> tuple[list[bytes], list[bytes]]:
    """Process one batch; give back the UIDs done and those to set aside."""
    wanted = b",".join(uids).decode()
    sizes: dict[bytes, int] = {}
    for line in _ok(conn.uid("FETCH", wanted, "(RFC822.SIZE)"), "protocol", "lecture refusée"):
        raw_line = line[0] if isinstance(line, tuple) else line
        found_uid, found_size = _UID.search(raw_line or b""), _SIZE.search(raw_line or b"")
        if found_uid and found_size:
            sizes[found_uid.group(1)] = int(found_size.group(1))
    done: list[bytes] = []
    aside: list[bytes] = []
    # A UID without a size was expunged meanwhile (someone else cleaned the folder).
    small = [uid for uid in uids if uid in sizes and sizes[uid] <= MAX_SIZE]
    for uid in uids:
        if sizes.get(uid, 0) > MAX_SIZE:
            bounces.set_aside(session, "imap", f"message trop volumineux ({sizes[uid]} octets)")
            aside.append(uid)
    if not small:
        return done, aside
    fetched = _ok(
        conn.uid("FETCH", b",".join(small).decode(), "(BODY.PEEK[])"), "protocol", "lecture refusée"
    )
    for item in fetched:
        if not isinstance(item, tuple):
            continue  # the closing ")" of each message
        found = _UID.search(item[0])
        if found is None:
            continue
        kind = _process_one(session, secret, item[1])
        (aside if kind == "malformed" else done).append(found.group(1))
    return done, aside


def _process_one(session: Session, secret: str, raw: bytes) -> str:
    try:
        return bounces.process(session, secret, raw, source="imap").kind
    except DBAPIError:
        raise  # the database is down: stop the run, the messages stay for the next one
    except Exception as error:  # one bad message must not stop the batch (logged, recorded)
        session.rollback()
        log.exception("Bounce report could not be processed; set aside")
        bounces.set_aside(session, "imap", f"erreur de traitement ({type(error).__name__})")
        return "malformed"


def _move(conn: imaplib.IMAP4, uids: list[bytes], folder: str, capabilities: set[str]) -> None:
    if not uids:
        return
    wanted = b",".join(uids).decode()
    _ok(conn.uid("STORE", wanted, "+FLAGS.SILENT", r"(\Seen)"), "protocol", "marquage refusé")
    target = _quote(_utf7(folder))
    if "MOVE" in capabilities:  # RFC 6851
        _ok(conn.uid("MOVE", wanted, target), "protocol", f"déplacement vers {folder} refusé")
        return
    _ok(conn.uid("COPY", wanted, target), "protocol", f"copie vers {folder} refusée")
    _ok(conn.uid("STORE", wanted, "+FLAGS.SILENT", r"(\Deleted)"), "protocol", "marquage refusé")


def _ensure_folders(conn: imaplib.IMAP4) -> None:
    for folder in (DONE_FOLDER, ASIDE_FOLDER):
        encoded = _quote(_utf7(folder))
        typ, data = conn.list('""', encoded)
        if typ == "OK" and any(item for item in data if item):
            continue
        _ok(conn.create(encoded), "folder", f"impossible de créer le dossier {folder}")


def _capabilities(conn: imaplib.IMAP4) -> set[str]:
    typ, data = conn.capability()  # asked again: servers announce more once logged in
    if typ != "OK" or not data or not isinstance(data[0], bytes):
        return {str(c) for c in conn.capabilities}
    return set(data[0].decode().upper().split())


def _ok(answer: tuple[str, list[Any]], kind: str, what: str) -> list[Any]:
    typ, data = answer
    if typ != "OK":
        detail = data[0].decode(errors="replace") if data and isinstance(data[0], bytes) else typ
        raise MailboxError(kind, f"{what} ({detail})")
    return data


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _utf7(name: str) -> str:
    """IMAP's modified UTF-7 for folder names (RFC 3501 §5.1.3): « Traités » → Trait&AOk-s."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            chunk = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(chunk).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)
