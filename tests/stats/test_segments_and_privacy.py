"""Per-segment figures kept by the rollup (exact once refreshed, openers and clickers exact
at any moment), reach rows purged after the tracking retention period, and nothing personal
left in the statistics tables after an erasure."""

import datetime as dt

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service.audience import gdpr
from service.audience.models import Membership, Subscriber
from service.delivery.models import DeliveryStatus
from service.stats import services
from service.stats.models import Reach, SegmentCount, SegmentSnapshot, UniqueCount
from service.tracking.models import EventKind
from tests.stats.conftest import START, Scenario, hit

SECRET = "test-secret-key"


def segments(session: Session, scenario: Scenario) -> dict[str, tuple[int, int, int, int]]:
    stats = services.issue_stats(session, scenario.issue)
    return {
        r.segment.name: (r.recipients, r.delivered, r.openers or 0, r.clickers or 0)
        for r in stats.segments
    }


def live_segments(session: Session, scenario: Scenario) -> dict[str, tuple[int, int, int, int]]:
    """The same table computed at request time (no stored figures)."""
    session.query(SegmentSnapshot).delete()
    session.flush()
    return segments(session, scenario)


def rolled(session: Session) -> None:
    services.roll_up(session)
    services.roll_up(session)


def test_segment_figures_are_stored_by_the_rollup(db_session: Session, scenario: Scenario) -> None:
    want = {
        "Élus": (4, 4, 4, 3),
        "Techniciens": (6, 2, 0, 0),
        "Lens": (4, 2, 2, 2),
    }
    assert segments(db_session, scenario) == want  # nothing stored yet: computed live
    assert services.issue_stats(db_session, scenario.issue).segments_as_of is None
    rolled(db_session)
    snapshot = db_session.get(SegmentSnapshot, scenario.issue.id)
    assert snapshot is not None
    stored = {
        row.segment_id: (row.recipients, row.delivered, row.openers, row.clickers)
        for row in db_session.scalars(select(SegmentCount))
    }
    by_id = {s.id: s.name for s in scenario.segments}
    assert {by_id[key]: value for key, value in stored.items()} == want
    stats = services.issue_stats(db_session, scenario.issue)
    assert stats.segments_as_of == snapshot.computed_at
    assert not stats.segments_statuses_changed
    assert segments(db_session, scenario) == want

    # A human open not rolled up yet (d5, in Techniciens, sent): counted at once.
    hit(scenario.issue, EventKind.OPEN, scenario.deliveries[5], hours=4)
    assert segments(db_session, scenario)["Techniciens"] == (6, 2, 1, 0)
    services.roll_up(db_session)  # records the id; the table stays, the tail is added
    assert segments(db_session, scenario)["Techniciens"] == (6, 2, 1, 0)
    services.roll_up(db_session)  # folds it and refreshes the table
    assert db_session.get(SegmentSnapshot, scenario.issue.id).openers == 5  # type: ignore[union-attr]
    assert segments(db_session, scenario)["Techniciens"] == (6, 2, 1, 0)

    # A delivery changes status: the page says the table is older, the next run refreshes it.
    scenario.deliveries[9].status = DeliveryStatus.SENT  # queued -> sent, Techniciens
    db_session.flush()
    stats = services.issue_stats(db_session, scenario.issue)
    assert stats.segments_statuses_changed
    services.roll_up(db_session)
    stats = services.issue_stats(db_session, scenario.issue)
    assert not stats.segments_statuses_changed
    assert segments(db_session, scenario)["Techniciens"] == (6, 3, 1, 0)

    # Memberships change without touching the issue: refreshed once the table is an hour old.
    membership = db_session.scalars(
        select(Membership).where(Membership.subscriber_id == scenario.deliveries[5].subscriber_id)
    ).one()
    membership.segment_id = scenario.segments[0].id  # now in Élus
    db_session.flush()
    services.roll_up(db_session)
    assert segments(db_session, scenario)["Élus"] == (4, 4, 4, 3)  # not yet: stated on the page
    snapshot = db_session.get(SegmentSnapshot, scenario.issue.id)
    assert snapshot is not None
    snapshot.computed_at -= services.SEGMENT_MAX_AGE + dt.timedelta(minutes=1)
    db_session.flush()
    services.roll_up(db_session)
    assert segments(db_session, scenario)["Élus"] == (5, 5, 5, 3)
    assert segments(db_session, scenario) == live_segments(db_session, scenario)


def test_a_stale_table_is_not_used(db_session: Session, scenario: Scenario) -> None:
    """Figures folded without the table being refreshed (e.g. the per-run cap): computed live."""
    rolled(db_session)
    snapshot = db_session.get(SegmentSnapshot, scenario.issue.id)
    assert snapshot is not None
    snapshot.openers -= 1
    db_session.flush()
    stats = services.issue_stats(db_session, scenario.issue)
    assert stats.segments_as_of is None
    assert {r.segment.name: r.openers for r in stats.segments}["Élus"] == 4


def test_reach_rows_are_purged_after_the_retention_period(
    db_session: Session, scenario: Scenario
) -> None:
    rolled(db_session)
    before = services.issue_stats(db_session, scenario.issue)
    table = segments(db_session, scenario)
    uniques = {(u.issue_id, u.kind, u.link_key): u.count for u in db_session.query(UniqueCount)}
    retention = scenario.issue.newsletter.tracking_retention_days
    cutoff = START + dt.timedelta(hours=50)
    early = {
        r.delivery_id for r in db_session.scalars(select(Reach).where(Reach.first_at < cutoff))
    }
    assert early  # d0 opened and clicked, d2 opened in the first hours
    counts = gdpr.purge_expired(db_session, cutoff + dt.timedelta(days=retention))
    db_session.expire_all()
    assert counts["reach_removed"] > 0
    assert db_session.scalar(select(Reach).where(Reach.first_at < cutoff)) is None
    assert not early & {r.delivery_id for r in db_session.scalars(select(Reach))}
    assert db_session.query(Reach).count() > 0  # later first hits stay until their time
    # Counts stay: unique counters, headline figures and the segment table.
    assert {
        (u.issue_id, u.kind, u.link_key): u.count for u in db_session.query(UniqueCount)
    } == uniques
    after = services.issue_stats(db_session, scenario.issue)
    assert (after.unique_openers, after.unique_clickers) == (
        before.unique_openers,
        before.unique_clickers,
    )
    assert [(r.link.id, r.unique) for r in after.links] == [
        (r.link.id, r.unique) for r in before.links
    ]
    assert segments(db_session, scenario) == table
    # A purged recipient opening again after the reach window is not counted twice, nor is
    # a first hit that late (totals only).
    late = retention * 24 + 10
    hit(scenario.issue, EventKind.OPEN, scenario.deliveries[0], hours=late)
    hit(scenario.issue, EventKind.OPEN, scenario.deliveries[5], hours=late)
    for _ in range(3):
        stats = services.issue_stats(db_session, scenario.issue)
        assert stats.unique_openers == before.unique_openers
        assert stats.human_opens == before.human_opens + 2
        assert segments(db_session, scenario) == table
        services.roll_up(db_session)


def test_erasure_leaves_nothing_personal_in_the_statistics(
    db_session: Session, scenario: Scenario
) -> None:
    rolled(db_session)
    subscriber = db_session.get(Subscriber, scenario.deliveries[0].subscriber_id)
    assert subscriber is not None
    address, subscriber_id = subscriber.email, subscriber.id
    delivery_id = scenario.deliveries[0].id
    assert db_session.scalar(select(Reach).where(Reach.delivery_id == delivery_id)) is not None
    before = segments(db_session, scenario)
    gdpr.erase_subscriber(db_session, SECRET, subscriber, None)
    db_session.expire_all()
    # Reach rows still name the delivery (anonymous counts), which no longer names anyone.
    linked = db_session.execute(
        text(
            "select count(*) from stats_reach r join deliveries d on d.id = r.delivery_id "
            "where d.subscriber_id = :s"
        ),
        {"s": subscriber_id},
    ).scalar_one()
    assert linked == 0
    for table in ("stats_reach", "stats_uniques", "stats_hourly", "stats_segments"):
        for row in db_session.execute(text(f"select * from {table}")):  # noqa: S608
            assert all(address not in str(value) for value in row)
    # The stored table keeps its counts; a recomputation no longer sees the erased member.
    assert segments(db_session, scenario) == before
    assert live_segments(db_session, scenario)["Élus"] == (3, 3, 3, 2)
