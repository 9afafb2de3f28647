"""Rates shared by all workers (real Redis) and the optional send window."""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.audience.models import Subscriber
from service.config import Config
from service.delivery import services
from service.delivery.models import Delivery, DeliveryStatus
from service.delivery.sender import SmtpSender
from service.delivery.throttle import SLOW_FOR, SLOW_START, Throttle
from service.delivery.window import Window
from service.issues.models import Issue
from tests.conftest import TEST_REDIS_URL
from tests.delivery.test_sending import Receiver, _approved_issue, receiver  # noqa: F401
from tests.factories import MembershipFactory, SegmentFactory, SubscriberFactory, UserFactory

UTC = dt.UTC


@pytest.fixture
def shared_redis() -> Iterator["redis.Redis[Any]"]:
    client: redis.Redis[Any] = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


# --- the window ----------------------------------------------------------------------


OFFICE = Window(dt.time(8, 30), dt.time(18, 0), weekdays_only=True, skip_holidays=True)


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        # Thursday 26 November 2026, 07:00 in Paris (UTC+1): opens at 08:30 the same day.
        ("2026-11-26T06:00:00+00:00", "2026-11-26T07:30:00+00:00"),
        # Thursday at 11:00 in Paris: open.
        ("2026-11-26T10:00:00+00:00", None),
        # Friday 19:00: the next slot is Monday morning.
        ("2026-11-27T18:00:00+00:00", "2026-11-30T07:30:00+00:00"),
        # Tuesday 10 November evening: Wednesday 11 is Armistice Day, so Thursday.
        ("2026-11-10T18:00:00+00:00", "2026-11-12T07:30:00+00:00"),
        # Summer time (UTC+2): Monday 6 July 2026, 07:00 in Paris → 08:30 Paris = 06:30 UTC.
        ("2026-07-06T05:00:00+00:00", "2026-07-06T06:30:00+00:00"),
        # Christmas Eve night: 25th is a holiday, 26–27 a weekend: Monday 28.
        ("2026-12-24T20:00:00+00:00", "2026-12-28T07:30:00+00:00"),
    ],
)
def test_next_open_slot(now: str, opens: str | None) -> None:
    found = OFFICE.next_open(dt.datetime.fromisoformat(now))
    assert found == (dt.datetime.fromisoformat(opens) if opens else None)


def test_no_window_never_holds() -> None:
    assert Window().next_open(dt.datetime(2026, 12, 25, 3, tzinfo=UTC)) is None
    assert Window().closes_at(dt.datetime(2026, 12, 25, 3, tzinfo=UTC)) is None
    assert OFFICE.closes_at(dt.datetime(2026, 11, 26, 10, tzinfo=UTC)) == dt.datetime(
        2026, 11, 26, 17, tzinfo=UTC
    )


def _issue_to(db_session: Session, *addresses: str) -> Issue:
    segment = SegmentFactory(slug="elus")
    for address in addresses:
        MembershipFactory(segment=segment, subscriber=SubscriberFactory(email=address))
    issue = _approved_issue(db_session, segment)
    services.start_sending(db_session, issue, UserFactory(role=Role.PUBLISHER))
    return issue


def test_outside_the_window_nothing_leaves_and_the_publisher_is_told(
    db_session: Session,
    receiver: tuple[Receiver, Config],  # noqa: F811
) -> None:
    handler, config = receiver
    issue = _issue_to(db_session, "a@lens.fr", "b@lens.fr")
    # A window that is closed now, whatever the day the test runs: one minute long,
    # twelve hours from now in Paris.
    paris_now = dt.datetime.now(UTC).astimezone(OFFICE_TZ)
    start = (paris_now + dt.timedelta(hours=12)).time().replace(second=0, microsecond=0)
    end = (dt.datetime.combine(dt.date(2000, 1, 1), start) + dt.timedelta(minutes=1)).time()
    if end <= start:  # 23:59 → 00:00 would wrap: shift by two minutes
        start, end = dt.time(0, 1), dt.time(0, 2)
    issue.newsletter.send_window_start, issue.newsletter.send_window_end = start, end
    db_session.commit()
    with SmtpSender(config) as sender:
        result = services.send_batch(db_session, issue.id, config, sender, owner="test")
    assert (result.sent, result.more) == (0, False)
    assert handler.messages == []
    assert set(db_session.scalars(select(Delivery.status))) == {DeliveryStatus.QUEUED}
    db_session.expire_all()
    held = db_session.get(Issue, issue.id)
    assert held is not None
    assert "plage d'envoi" in (held.send_error or "")
    # The window removed, the same call sends and the notice goes away.
    held.newsletter.send_window_start = held.newsletter.send_window_end = None
    db_session.commit()
    with SmtpSender(config) as sender:
        assert services.send_batch(db_session, issue.id, config, sender, owner="t").sent == 2
    db_session.expire_all()
    assert db_session.get(Issue, issue.id).send_error is None  # type: ignore[union-attr]


OFFICE_TZ = dt.timezone(dt.timedelta(hours=1))


# --- the rates -----------------------------------------------------------------------


def test_two_workers_share_one_domain_rate(shared_redis: "redis.Redis[Any]") -> None:
    """Reservations from two processes' throttles add up on Redis's clock."""
    rate = 20.0
    one, two = (
        Throttle(shared_redis, relay="r", domain_rates={"orange.fr": rate}, max_wait=60)
        for _ in range(2)
    )
    waits = [(one if n % 2 else two).wait("orange.fr") for n in range(60)]
    assert all(w is not None for w in waits)
    # A burst of about one second's worth, then one slot every 1/rate seconds.
    burst = sum(1 for w in waits if w == 0)
    assert 15 <= burst <= 21
    last = max(w for w in waits if w is not None)
    assert last == pytest.approx((60 - burst) / rate, abs=0.15)
    # Another domain is not slowed by it, and no limit at all costs no Redis call.
    assert one.wait("lens.fr") == 0


def test_long_waits_are_not_reserved(shared_redis: "redis.Redis[Any]") -> None:
    throttle = Throttle(shared_redis, relay="r", domain_rates={"free.fr": 1.0}, max_wait=2)
    assert throttle.wait("free.fr") == 0
    assert throttle.wait("free.fr") == pytest.approx(1, abs=0.05)
    assert throttle.wait("free.fr") == pytest.approx(2, abs=0.05)
    assert throttle.wait("free.fr") is None  # would be 3 s: held back, nothing reserved
    assert throttle.wait("free.fr") is None


def test_a_slow_down_is_shared_and_lowers_that_domain_only(
    shared_redis: "redis.Redis[Any]",
) -> None:
    now = [0.0]
    one = Throttle(shared_redis, relay="r", clock=lambda: now[0])
    two = Throttle(shared_redis, relay="r", clock=lambda: now[0], domain_rates={"sfr.fr": 10})
    assert one.slow_down("orange.fr") == SLOW_START
    assert one.slow_down("orange.fr") == SLOW_START / 2
    now[0] += 2  # the other worker reads the slowed domains once a second
    assert two.rate_for("orange.fr") == SLOW_START / 2
    assert two.rate_for("lens.fr") == 0
    assert two.slow_down("sfr.fr") == 5  # a configured rate is halved
    now[0] += 2
    assert one.rate_for("sfr.fr") == 5


def test_without_redis_the_same_buckets_hold_per_process() -> None:
    now = [100.0]
    local = Throttle(None, relay="r", relay_rate=2, clock=lambda: now[0])
    # A burst of one second's worth (2), then one every half second.
    assert [local.wait("x.fr") for _ in range(4)] == [0, 0, 0.5, 1.0]


def test_a_421_slows_the_domain_and_its_next_messages_wait(
    db_session: Session,
    receiver: tuple[Receiver, Config],  # noqa: F811
    shared_redis: "redis.Redis[Any]",
) -> None:
    handler, config = receiver
    original = handler.handle_RCPT

    async def busy_orange(
        server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == "premier@orange.fr":
            return "421 4.7.0 Trop de messages, ralentissez"
        return await original(server, session, envelope, address, options)

    handler.handle_RCPT = busy_orange  # type: ignore[method-assign]
    addresses = ["premier@orange.fr", "a@lens.fr", "deux@orange.fr", "b@lens.fr", "trois@orange.fr"]
    issue = _issue_to(db_session, *addresses)
    # orange.fr limited to one message every 5 s; the 421 halves that to one every 10 s.
    # (The sleeps are recorded, not slept: the waits are long so that the time the test
    # itself takes cannot change them.)
    throttle = Throttle(shared_redis, relay="r", domain_rates={"orange.fr": 0.2}, max_wait=60)
    slept: list[tuple[str, float]] = []
    current: list[str] = []

    def sleep(seconds: float) -> None:
        slept.append((current[-1], seconds))

    original_wait = throttle.wait

    def wait(domain: str) -> float | None:
        current.append(domain)
        return original_wait(domain)

    throttle.wait = wait  # type: ignore[method-assign]
    with SmtpSender(config) as sender:
        services.send_batch(
            db_session, issue.id, config, sender, owner="t", throttle=throttle, sleep=sleep
        )
    by_address = dict(
        db_session.execute(
            select(Subscriber.email, Delivery.status).join(
                Delivery, Delivery.subscriber_id == Subscriber.id
            )
        ).all()
    )
    assert by_address["premier@orange.fr"] is DeliveryStatus.DEFERRED
    assert {by_address[a] for a in addresses[1:]} == {DeliveryStatus.SENT}
    assert throttle.rate_for("orange.fr") == pytest.approx(0.1)
    # After the 421, orange.fr messages wait for their slot; lens.fr ones never wait.
    assert [domain for domain, _s in slept] == ["orange.fr", "orange.fr"]
    assert slept[1][1] - slept[0][1] == pytest.approx(10, abs=0.5)


def test_without_redis_a_slow_down_ends() -> None:
    now = [0.0]
    local = Throttle(None, relay="r", clock=lambda: now[0])
    local.slow_down("orange.fr")
    assert local.rate_for("orange.fr") == SLOW_START
    now[0] += SLOW_FOR + 1
    assert local.rate_for("orange.fr") == 0
