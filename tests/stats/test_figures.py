"""Dashboard figures equal counts computed directly from the events and deliveries tables,
before the rollup, after it, and half-way; the rollup never counts an event twice."""

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from service.delivery.models import DeliveryStatus
from service.stats import services
from service.stats.models import HourlyCount, Reach, UniqueCount
from service.tracking.models import EventKind
from tests.stats.conftest import Scenario, hit


def scalar(session: Session, sql: str, **params: object) -> int:
    return int(session.execute(text(sql), params).scalar_one())


def expected(session: Session, issue_id: int) -> dict[str, int]:
    """The figures, straight from the tables, written independently of the service."""
    q = {"i": issue_id}
    events = "select count(*) from events where issue_id = :i and kind = :k and is_machine = :m"
    figures = {
        "audience": scalar(session, "select count(*) from deliveries where issue_id = :i", **q),
        "delivered": scalar(
            session,
            "select count(*) from deliveries where issue_id = :i and status = 'sent'",
            **q,
        ),
        "openers": scalar(
            session,
            "select count(distinct delivery_id) from events where issue_id = :i "
            "and kind in ('open', 'click') and not is_machine and delivery_id is not null",
            **q,
        ),
        "clickers": scalar(
            session,
            "select count(distinct delivery_id) from events where issue_id = :i "
            "and kind = 'click' and not is_machine and delivery_id is not null",
            **q,
        ),
    }
    for kind in ("open", "click", "unsubscribe", "complaint"):
        for machine in (False, True):
            figures[f"{kind}-{machine}"] = scalar(session, events, k=kind, m=machine, **q)
    return figures


def check(session: Session, scenario: Scenario) -> services.IssueStats:
    stats = services.issue_stats(session, scenario.issue)
    want = expected(session, scenario.issue.id)
    assert stats.audience == want["audience"] == 10
    assert stats.delivered == want["delivered"] == 6
    assert stats.unique_openers == want["openers"] == 4  # d1 only clicked: counted
    assert stats.unique_clickers == want["clickers"] == 3
    assert stats.human_opens == want["open-False"] == 3
    assert stats.machine_opens == want["open-True"] == 1
    assert stats.human_clicks == want["click-False"] == 7
    assert stats.machine_clicks == want["click-True"] == 1
    assert stats.unsubscribed == want["unsubscribe-False"] + want["unsubscribe-True"] == 1
    assert stats.complaints == want["complaint-False"] + want["complaint-True"] == 1
    assert stats.status(DeliveryStatus.BOUNCED) == 1
    assert stats.sent == 8  # sent, bounced, failed: deferred and queued have not left
    assert stats.open_rate == pytest.approx(4 / 6)
    assert stats.click_to_open == pytest.approx(3 / 4)
    # Per link: totals and distinct clickers from the events table.
    for row in stats.links:
        assert row.clicks == scalar(
            session,
            "select count(*) from events where link_id = :l and kind = 'click' and not is_machine",
            l=row.link.id,
        )
        assert row.unique == scalar(
            session,
            "select count(distinct delivery_id) from events where link_id = :l "
            "and kind = 'click' and not is_machine",
            l=row.link.id,
        )
    assert [r.clicks for r in stats.links] == [2, 2, 2]
    assert [r.link.id for r in stats.resources] == [scenario.links[2].id]
    assert [(r.clicks, r.unique) for r in stats.blocks] == [(4, 3), (2, 1)]
    # Series: every human and machine open/click lands in exactly one point.
    assert sum(p.human_opens for p in stats.series) == 3
    assert sum(p.human_clicks for p in stats.series) == 7
    assert sum(p.machine_opens + p.machine_clicks for p in stats.series) == 2
    hourly = [p for p in stats.series if p.hourly]
    assert len(hourly) == 72
    assert hourly[0].start == scenario.issue.send_started_at
    assert hourly[0].machine_opens == 1
    assert hourly[0].human_opens == 1
    daily = [p for p in stats.series if not p.hourly]
    assert [p.human_clicks for p in daily] == [1, 3, 0, 1]  # hours 80; 100-101; none; 150
    # Segments: current membership (an unsubscribed membership still counts), rules.
    by_name = {row.segment.name: row for row in stats.segments}
    assert (by_name["Élus"].recipients, by_name["Élus"].delivered) == (4, 4)
    assert (by_name["Élus"].openers, by_name["Élus"].clickers) == (4, 3)
    assert (by_name["Techniciens"].recipients, by_name["Techniciens"].openers) == (6, 0)
    lens = by_name["Lens"]  # deliveries 0, 3, 6, 9
    assert (lens.recipients, lens.delivered, lens.openers, lens.clickers) == (4, 2, 2, 2)
    return stats


def test_figures_from_live_events(db_session: Session, scenario: Scenario) -> None:
    check(db_session, scenario)


def test_figures_after_rollup_and_with_a_tail(db_session: Session, scenario: Scenario) -> None:
    services.roll_up(db_session)  # records the newest id; folds nothing yet
    assert db_session.query(HourlyCount).count() == 0
    # Events written between two runs: folded by the run after next, read live meanwhile.
    hit(scenario.issue, EventKind.OPEN, scenario.deliveries[5], hours=4)
    services.roll_up(db_session)
    assert db_session.query(HourlyCount).count() > 0
    stats = services.issue_stats(db_session, scenario.issue)
    assert stats.unique_openers == 5
    assert stats.human_opens == 4
    services.roll_up(db_session)
    services.roll_up(db_session)
    assert services.watermark(db_session) > 0
    assert services.issue_stats(db_session, scenario.issue).unique_openers == 5
    # d5 is in Techniciens.
    row = next(
        r
        for r in services.issue_stats(db_session, scenario.issue).segments
        if r.segment.name == "Techniciens"
    )
    assert row.openers == 1


def test_rollup_is_idempotent(db_session: Session, scenario: Scenario) -> None:
    for _ in range(4):
        services.roll_up(db_session)
    rolled = {
        (r.issue_id, r.hour, r.kind, r.is_machine, r.link_key): r.count
        for r in db_session.query(HourlyCount)
    }
    reach = db_session.query(Reach).count()
    assert sum(rolled.values()) == scalar(
        db_session,
        "select count(*) from events where issue_id in (:a, :b)",
        a=scenario.issue.id,
        b=scenario.other.id,
    )
    for _ in range(3):
        assert services.roll_up(db_session) == 0
    assert {
        (r.issue_id, r.hour, r.kind, r.is_machine, r.link_key): r.count
        for r in db_session.query(HourlyCount)
    } == rolled
    assert db_session.query(Reach).count() == reach
    # The counters kept while folding match the rows they count.
    counters = {(u.issue_id, u.kind, u.link_key): u.count for u in db_session.query(UniqueCount)}
    recount: dict[tuple[int, str, int], int] = {}
    for r in db_session.query(Reach):
        recount[r.issue_id, r.kind, r.link_key] = (
            recount.get((r.issue_id, r.kind, r.link_key), 0) + 1
        )
    assert counters == recount
    check(db_session, scenario)


def test_anonymous_mode_has_totals_only(db_session: Session, anonymous: Scenario) -> None:
    services.roll_up(db_session)
    services.roll_up(db_session)
    stats = services.issue_stats(db_session, anonymous.issue)
    assert not stats.uniques_available
    assert stats.unique_openers is None
    assert stats.open_rate is None
    assert stats.human_opens == 3
    assert stats.human_clicks == 7
    assert stats.machine_opens == 1
    assert all(row.unique is None for row in stats.links)
    assert all(row.openers is None for row in stats.segments)
