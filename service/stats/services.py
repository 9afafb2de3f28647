"""Statistics: the rollup use case (beat task) and the figures the pages read.

Definitions, shown on the pages too:
- a *unique opener* is a delivery with a human open or a human click (a click implies an
  open); a *unique clicker* a delivery with a human click. Machine hits (privacy proxies,
  link scanners) are counted apart and never enter a rate.
- open rate = unique openers / delivered; click rate = unique clickers / delivered;
  click-to-open = unique clickers / unique openers.
- in anonymous tracking mode events carry no delivery: only totals exist.
- unique counts take the human hits of the newsletter's tracking retention period after the
  sending started: later hits count in the totals only, since the reach rows that would tell
  whether that recipient was already counted are deleted after that period.

Figures are the rollups (events with ``id <= rolled_up_to``) plus the events after the
watermark read live, so they are exact at any moment.
"""

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    delete,
    exists,
    extract,
    false,
    func,
    literal,
    or_,
    select,
    union,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.audience.models import Membership, Segment, SegmentKind, Subscriber
from service.audience.rules import RuleError, compile_rule
from service.db import utcnow
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Block, Issue, IssueStatus
from service.newsletters.models import Newsletter, TrackingMode
from service.stats.models import (
    NO_LINK,
    HourlyCount,
    Reach,
    RollupState,
    SegmentCount,
    SegmentSnapshot,
    UniqueCount,
)
from service.tracking.models import Event, EventKind, Link, LinkKind

STATE_ID = 1
HOURLY_SPAN = 72  # hours shown one by one after the sending started; then days
HUMAN_REACH = (EventKind.OPEN, EventKind.CLICK)
OUT = (DeliveryStatus.SENT, DeliveryStatus.BOUNCED, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)
# Per-segment figures: refreshed at most this many issues per rollup run (the issues whose
# openers or clickers changed first), and at least this often while the issue is within
# its tracking retention period (memberships change without touching the issue).
SEGMENT_REFRESHES_PER_RUN = 10
SEGMENT_MAX_AGE = dt.timedelta(hours=1)


# --- Rollup ----------------------------------------------------------------------------


def _hour_of(session: Session, column: Any) -> ColumnElement[Any]:
    """Hours since the Unix epoch (UTC) of a timestamp, whatever the session time zone."""
    if session.get_bind().dialect.name == "sqlite":
        return cast(cast(func.strftime("%s", column), Integer) // 3600, Integer)
    return cast(func.floor(extract("epoch", column) / 3600), Integer)


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


def _state(session: Session) -> RollupState:
    """The watermark row, locked until the end of the transaction (one rollup at a time)."""
    session.execute(
        _insert(session, RollupState)
        .values(id=STATE_ID, rolled_up_to=0, pending_to=0, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
    )
    state = session.scalars(
        select(RollupState).where(RollupState.id == STATE_ID).with_for_update()
    ).one()
    session.refresh(state)
    return state


def roll_up(session: Session) -> int:
    """Use case (beat task): fold the settled events into the rollups; commits once.

    Folds ids in ``(rolled_up_to, pending_to]`` and moves the watermark in the same
    transaction, so running it again, or twice at once, never counts an event twice.
    Returns the number of events folded.
    """
    state = _state(session)
    low, high = state.rolled_up_to, state.pending_to
    folded = 0
    touched: set[int] = set()
    if high > low:
        folded, touched = _fold(session, low, high)
        state.rolled_up_to = high
    _refresh_segment_figures(session, touched)
    newest = session.scalar(select(func.max(Event.id))) or 0
    state.pending_to = max(newest, state.rolled_up_to)
    state.updated_at = utcnow()
    session.commit()
    return folded


def _fold(session: Session, low: int, high: int) -> tuple[int, set[int]]:
    """Fold the events ``(low, high]``; returns their number and the issues whose openers
    or clickers changed."""
    in_range = and_(Event.id > low, Event.id <= high)
    folded = session.scalar(select(func.count()).select_from(Event).where(in_range)) or 0
    if not folded:
        return 0, set()
    issue_ids = list(session.scalars(select(Event.issue_id).where(in_range).distinct()))
    window = _reach_window(session, issue_ids)
    hour = _hour_of(session, Event.occurred_at)
    link_key = func.coalesce(Event.link_id, NO_LINK)
    counts = (
        select(Event.issue_id, hour, Event.kind, Event.is_machine, link_key, func.count())
        .where(in_range)
        .group_by(Event.issue_id, hour, Event.kind, Event.is_machine, link_key)
    )
    insert = _insert(session, HourlyCount).from_select(
        ["issue_id", "hour", "kind", "is_machine", "link_key", "count"], counts
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["issue_id", "hour", "kind", "is_machine", "link_key"],
            set_={"count": HourlyCount.count + insert.excluded["count"]},
        )
    )
    added: Counter[tuple[int, str, int]] = Counter()
    for rows in _reach_selects(and_(in_range, window), with_time=True):
        insert = (
            _insert(session, Reach)
            .from_select(["issue_id", "kind", "link_key", "delivery_id", "first_at"], rows)
            .on_conflict_do_nothing(index_elements=["issue_id", "kind", "link_key", "delivery_id"])
            .returning(Reach.issue_id, Reach.kind, Reach.link_key)
        )
        added.update((i, k, key) for i, k, key in session.execute(insert))
    if added:
        upsert = _insert(session, UniqueCount).values(
            [
                {"issue_id": i, "kind": k, "link_key": key, "count": n}
                for (i, k, key), n in added.items()
            ]
        )
        session.execute(
            upsert.on_conflict_do_update(
                index_elements=["issue_id", "kind", "link_key"],
                set_={"count": UniqueCount.count + upsert.excluded["count"]},
            )
        )
    return folded, {i for i, k, key in added if k in ("open", "click") and key == NO_LINK}


def reach_limit(issue: Issue, retention_days: int) -> dt.datetime | None:
    """Hits after this time no longer enter unique counts (see the module docstring)."""
    start = issue.send_started_at or issue.sent_at
    return None if start is None else start + dt.timedelta(days=retention_days)


def _reach_window(session: Session, issue_ids: Sequence[int]) -> ColumnElement[bool]:
    """Events of ``issue_ids`` within their issue's reach window."""
    if not issue_ids:
        return false()
    conditions: list[ColumnElement[bool]] = []
    for issue, days in session.execute(
        select(Issue, Newsletter.tracking_retention_days)
        .join(Newsletter, Newsletter.id == Issue.newsletter_id)
        .where(Issue.id.in_(issue_ids))
    ):
        limit = reach_limit(issue, days)
        condition = Event.issue_id == issue.id
        conditions.append(
            condition if limit is None else and_(condition, Event.occurred_at < limit)
        )
    return or_(*conditions) if conditions else false()


def _reach_selects(where: ColumnElement[bool], *, with_time: bool) -> list[Select[Any]]:
    """Reach rows (issue, kind, key, delivery[, first time]) of the human events ``where``:
    ``open``/0, ``click``/0, ``click``/link id and ``block``/block id."""
    human = and_(where, Event.is_machine.is_(False), Event.delivery_id.is_not(None))
    parts: list[tuple[str, Any, ColumnElement[bool]]] = [
        ("open", literal(NO_LINK), Event.kind.in_(HUMAN_REACH)),
        ("click", literal(NO_LINK), Event.kind == EventKind.CLICK),
        ("click", Event.link_id, and_(Event.kind == EventKind.CLICK, Event.link_id.is_not(None))),
    ]
    selects = []
    for kind, link, condition in parts:
        columns: list[Any] = [Event.issue_id, literal(kind), link, Event.delivery_id]
        if with_time:
            columns.append(func.min(Event.occurred_at))
        statement = select(*columns).where(human, condition)
        if with_time:
            statement = statement.group_by(Event.issue_id, link, Event.delivery_id)
        selects.append(statement)
    columns = [Event.issue_id, literal("block"), Link.block_id, Event.delivery_id]
    if with_time:
        columns.append(func.min(Event.occurred_at))
    statement = (
        select(*columns)
        .join(Link, Link.id == Event.link_id)
        .where(human, Event.kind == EventKind.CLICK, Link.block_id.is_not(None))
    )
    if with_time:
        statement = statement.group_by(Event.issue_id, Link.block_id, Event.delivery_id)
    selects.append(statement)
    return selects


# --- Issue dashboard -------------------------------------------------------------------


@dataclass
class Point:
    start: dt.datetime
    hourly: bool
    human_opens: int = 0
    machine_opens: int = 0
    human_clicks: int = 0
    machine_clicks: int = 0


@dataclass
class LinkRow:
    link: Link
    block: Block | None
    clicks: int
    machine_clicks: int
    unique: int | None


@dataclass
class BlockRow:
    block: Block
    clicks: int
    unique: int | None


@dataclass
class SegmentRow:
    segment: Segment
    recipients: int
    delivered: int
    openers: int | None
    clickers: int | None

    @property
    def open_rate(self) -> float | None:
        return _ratio(self.openers, self.delivered)

    @property
    def click_rate(self) -> float | None:
        return _ratio(self.clickers, self.delivered)


@dataclass
class IssueStats:
    issue: Issue
    mode: TrackingMode
    statuses: dict[DeliveryStatus, int]
    totals: dict[tuple[str, bool], int]  # (event kind, is_machine) -> events
    unique_openers: int | None
    unique_clickers: int | None
    series: list[Point] = field(default_factory=list)
    links: list[LinkRow] = field(default_factory=list)
    blocks: list[BlockRow] = field(default_factory=list)
    segments: list[SegmentRow] = field(default_factory=list)
    # When the segment table was computed by the rollup (None: computed for this page), and
    # whether deliveries changed status since (its recipients and delivered are then older).
    segments_as_of: dt.datetime | None = None
    segments_statuses_changed: bool = False

    @property
    def uniques_available(self) -> bool:
        return self.unique_openers is not None

    @property
    def audience(self) -> int:
        return sum(self.statuses.values())

    def status(self, status: DeliveryStatus) -> int:
        return self.statuses.get(status, 0)

    def status_count(self, status: str) -> int:
        return self.status(DeliveryStatus(status))

    @property
    def sent(self) -> int:
        """Messages that left (accepted, bounced, refused or uncertain)."""
        return sum(self.status(s) for s in OUT)

    @property
    def delivered(self) -> int:
        return self.status(DeliveryStatus.SENT)

    @property
    def waiting(self) -> int:
        return self.status(DeliveryStatus.QUEUED) + self.status(DeliveryStatus.LEASED)

    def total(self, kind: EventKind, *, machine: bool = False) -> int:
        return self.totals.get((kind.value, machine), 0)

    @property
    def human_opens(self) -> int:
        return self.total(EventKind.OPEN)

    @property
    def machine_opens(self) -> int:
        return self.total(EventKind.OPEN, machine=True)

    @property
    def human_clicks(self) -> int:
        return self.total(EventKind.CLICK)

    @property
    def machine_clicks(self) -> int:
        return self.total(EventKind.CLICK, machine=True)

    @property
    def unsubscribed(self) -> int:
        return self.total(EventKind.UNSUBSCRIBE) + self.total(EventKind.UNSUBSCRIBE, machine=True)

    @property
    def complaints(self) -> int:
        return self.total(EventKind.COMPLAINT) + self.total(EventKind.COMPLAINT, machine=True)

    @property
    def open_rate(self) -> float | None:
        return _ratio(self.unique_openers, self.delivered)

    @property
    def click_rate(self) -> float | None:
        return _ratio(self.unique_clickers, self.delivered)

    @property
    def click_to_open(self) -> float | None:
        return _ratio(self.unique_clickers, self.unique_openers)

    @property
    def resources(self) -> list[LinkRow]:
        return [row for row in self.links if row.link.kind is LinkKind.RESOURCE]


def _ratio(part: int | None, whole: int | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole


def watermark(session: Session) -> int:
    state = session.get(RollupState, STATE_ID)
    return state.rolled_up_to if state is not None else 0


def issue_stats(session: Session, issue: Issue, *, detail: bool = True) -> IssueStats:
    """Every figure of the dashboard of ``issue`` (``detail=False``: headline figures only)."""
    mode = issue.newsletter.tracking_mode
    mark = watermark(session)
    statuses = _statuses(session, issue.id)
    per_link, per_hour = _event_counts(session, issue.id, mark, hourly=detail)
    totals: dict[tuple[str, bool], int] = defaultdict(int)
    for (kind, machine, _link), count in per_link.items():
        totals[kind, machine] += count
    individual = mode is not TrackingMode.ANONYMOUS
    uniques: dict[tuple[str, int], int] | None = None
    fresh: set[tuple[str, int, int]] = set()
    if individual:
        uniques, fresh = _uniques(session, issue, mark)
    openers = clickers = None
    if uniques is not None:
        openers = uniques.get(("open", NO_LINK), 0)
        clickers = uniques.get(("click", NO_LINK), 0)
    stats = IssueStats(issue, mode, statuses, dict(totals), openers, clickers)
    if detail:
        stats.series = _series(issue, per_hour)
        stats.links, stats.blocks = _links_and_blocks(session, issue, per_link, uniques)
        _fill_segments(session, stats, mark, fresh)
    return stats


def _statuses(session: Session, issue_id: int) -> dict[DeliveryStatus, int]:
    return {
        DeliveryStatus(status): count
        for status, count in session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.issue_id == issue_id)
            .group_by(Delivery.status)
        )
    }


def _event_counts(
    session: Session, issue_id: int, mark: int, *, hourly: bool
) -> tuple[dict[tuple[str, bool, int], int], dict[tuple[int, str, bool], int]]:
    """Events per (kind, machine, link) and per (hour, kind, machine): rollups + live tail."""
    per_link: dict[tuple[str, bool, int], int] = defaultdict(int)
    per_hour: dict[tuple[int, str, bool], int] = defaultdict(int)
    rolled = (
        select(HourlyCount.kind, HourlyCount.is_machine, HourlyCount.link_key)
        .add_columns(func.sum(HourlyCount.count))
        .where(HourlyCount.issue_id == issue_id)
        .group_by(HourlyCount.kind, HourlyCount.is_machine, HourlyCount.link_key)
    )
    for kind, machine, link, count in session.execute(rolled):
        per_link[kind, bool(machine), link] += int(count)
    if hourly:
        by_hour = (
            select(HourlyCount.hour, HourlyCount.kind, HourlyCount.is_machine)
            .add_columns(func.sum(HourlyCount.count))
            .where(
                HourlyCount.issue_id == issue_id,
                HourlyCount.kind.in_([EventKind.OPEN.value, EventKind.CLICK.value]),
            )
            .group_by(HourlyCount.hour, HourlyCount.kind, HourlyCount.is_machine)
        )
        for hour, kind, machine, count in session.execute(by_hour):
            per_hour[hour, kind, bool(machine)] += int(count)
    hour = _hour_of(session, Event.occurred_at)
    link_key = func.coalesce(Event.link_id, NO_LINK)
    tail = (
        select(hour, Event.kind, Event.is_machine, link_key, func.count())
        .where(Event.id > mark, Event.issue_id == issue_id)
        .group_by(hour, Event.kind, Event.is_machine, link_key)
    )
    for hour_value, kind, machine, link, count in session.execute(tail):
        kind_value = EventKind(kind).value
        per_link[kind_value, bool(machine), link] += count
        if kind_value in {EventKind.OPEN.value, EventKind.CLICK.value}:
            per_hour[hour_value, kind_value, bool(machine)] += count
    return per_link, per_hour


def _tail_where(session: Session, issue_id: int, mark: int) -> ColumnElement[bool]:
    """The issue's events not rolled up yet, within its reach window."""
    return and_(Event.id > mark, Event.issue_id == issue_id, _reach_window(session, [issue_id]))


def _uniques(
    session: Session, issue: Issue, mark: int
) -> tuple[dict[tuple[str, int], int], set[tuple[str, int, int]]]:
    """Unique counts per (kind, key): the rollup's counters, plus what the live tail adds
    (tail reach rows not already in the rollup, also returned as (kind, key, delivery))."""
    counts: dict[tuple[str, int], int] = defaultdict(int)
    for kind, key, count in session.execute(
        select(UniqueCount.kind, UniqueCount.link_key, UniqueCount.count).where(
            UniqueCount.issue_id == issue.id
        )
    ):
        counts[kind, key] += int(count)
    tail_where = _tail_where(session, issue.id, mark)
    tail = {
        (kind, key, delivery)
        for part in _reach_selects(tail_where, with_time=False)
        for _issue, kind, key, delivery in session.execute(part.distinct())
    }
    fresh: set[tuple[str, int, int]] = set()
    if tail:
        deliveries = sorted({delivery for _k, _key, delivery in tail})
        known: set[tuple[str, int, int]] = set()
        for chunk in _chunks(deliveries):
            known.update(
                (kind, key, delivery)
                for kind, key, delivery in session.execute(
                    select(Reach.kind, Reach.link_key, Reach.delivery_id).where(
                        Reach.issue_id == issue.id, Reach.delivery_id.in_(chunk)
                    )
                )
            )
        fresh = tail - known
        for kind, key, _delivery in fresh:
            counts[kind, key] += 1
    return counts, fresh


def _chunks(values: Sequence[int], size: int = 1000) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _reach_source(session: Session, issue_id: int, mark: int, *, tail: bool = True) -> Any:
    """(kind, link_key, delivery_id) of the issue's openers and clickers (key 0): the rollup,
    plus the live tail when it holds human hits (UNION then removes what both know)."""
    rolled = select(Reach.kind, Reach.link_key, Reach.delivery_id).where(
        Reach.issue_id == issue_id,
        Reach.kind.in_(("open", "click")),
        Reach.link_key == NO_LINK,
    )
    if not tail:
        return rolled.subquery("reach")
    tail_where = _tail_where(session, issue_id, mark)
    has_tail = session.scalar(
        select(exists().where(tail_where, Event.is_machine.is_(False), Event.kind.in_(HUMAN_REACH)))
    )
    if not has_tail:
        return rolled.subquery("reach")
    parts = [
        part.with_only_columns(*list(part.selected_columns)[1:])
        for part in _reach_selects(tail_where, with_time=False)[:2]  # open/0 and click/0
    ]
    return union(rolled, *parts).subquery("reach")


def _series(issue: Issue, per_hour: dict[tuple[int, str, bool], int]) -> list[Point]:
    """Opens and clicks per hour for the first 72 hours after sending started, then per day."""
    hours = sorted({hour for hour, _k, _m in per_hour})
    started = issue.send_started_at or issue.sent_at
    if started is None and not hours:
        return []
    first = int(started.timestamp()) // 3600 if started is not None else hours[0]
    last = max([*hours, first])
    now_hour = int(utcnow().timestamp()) // 3600
    hourly_end = min(first + HOURLY_SPAN, max(last, now_hour) + 1)
    points = {hour: Point(_at(hour), hourly=True) for hour in range(first, hourly_end)}
    for day in range(first + HOURLY_SPAN, last + 1, 24):
        points[day] = Point(_at(day), hourly=False)
    for (hour, kind, machine), count in per_hour.items():
        if hour < first + HOURLY_SPAN:
            key = max(hour, first)  # hits before the start (scanners) join the first hour
        else:
            key = first + HOURLY_SPAN + (hour - first - HOURLY_SPAN) // 24 * 24
        _add(points[key], kind, machine=machine, count=count)
    return [points[key] for key in sorted(points)]


def _add(point: Point, kind: str, *, machine: bool, count: int) -> None:
    if kind == EventKind.OPEN.value:
        if machine:
            point.machine_opens += count
        else:
            point.human_opens += count
    elif machine:
        point.machine_clicks += count
    else:
        point.human_clicks += count


def _at(hour: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(hour * 3600, tz=dt.UTC)


def _links_and_blocks(
    session: Session,
    issue: Issue,
    per_link: dict[tuple[str, bool, int], int],
    uniques: dict[tuple[str, int], int] | None,
) -> tuple[list[LinkRow], list[BlockRow]]:
    links = list(
        session.scalars(select(Link).where(Link.issue_id == issue.id).order_by(Link.position))
    )
    blocks = {block.id: block for block in issue.blocks}
    unique = {key: n for (kind, key), n in (uniques or {}).items() if kind == "click"}
    block_unique = {key: n for (kind, key), n in (uniques or {}).items() if kind == "block"}
    rows = [
        LinkRow(
            link,
            blocks.get(link.block_id) if link.block_id else None,
            per_link.get((EventKind.CLICK.value, False, link.id), 0),
            per_link.get((EventKind.CLICK.value, True, link.id), 0),
            unique.get(link.id, 0) if uniques is not None else None,
        )
        for link in links
    ]
    block_clicks: dict[int, int] = defaultdict(int)
    for row in rows:
        if row.block is not None:
            block_clicks[row.block.id] += row.clicks
    block_rows = [
        BlockRow(
            block,
            block_clicks.get(block.id, 0),
            block_unique.get(block.id, 0) if uniques is not None else None,
        )
        for block in issue.blocks
        if any(row.block is block for row in rows)
    ]
    return rows, block_rows


def segment_members(segment: Segment) -> ColumnElement[bool]:
    """Subscribers in ``segment`` now, whatever their status (they may have left since)."""
    if segment.kind is SegmentKind.RULE:
        try:
            return compile_rule(segment.rule)
        except RuleError:
            return false()
    return exists().where(
        Membership.subscriber_id == Subscriber.id, Membership.segment_id == segment.id
    )


Figures = tuple[int, int, int | None, int | None]  # recipients, delivered, openers, clickers


def _member_selects(issue: Issue) -> list[Any]:
    """(segment id as ``key``, delivery id, status) of deliveries whose subscriber is now in
    a segment of the issue: one select for the static segments, one per rule segment."""
    static = [s.id for s in issue.segments if s.kind is not SegmentKind.RULE]
    selects: list[Any] = []
    if static:
        selects.append(
            select(Membership.segment_id.label("key"), Delivery.id, Delivery.status).join(
                Membership,
                and_(
                    Membership.subscriber_id == Delivery.subscriber_id,
                    Membership.segment_id.in_(static),
                ),
            )
        )
    for segment in issue.segments:
        if segment.kind is SegmentKind.RULE:
            selects.append(
                select(literal(segment.id).label("key"), Delivery.id, Delivery.status).join(
                    Subscriber,
                    and_(Subscriber.id == Delivery.subscriber_id, segment_members(segment)),
                )
            )
    return selects


def _segment_figures(session: Session, issue: Issue, reach: Any) -> dict[int, Figures]:
    """Per segment of the issue, in one pass per kind of segment: the issue's deliveries
    joined with current memberships (static) or the rule (rule segments)."""
    figures: dict[int, Figures] = {}
    for joined in _member_selects(issue):
        figures.update(_segment_counts(session, joined, issue.id, reach))
    return figures


def _segment_counts(
    session: Session, joined: Select[Any], issue_id: int, reach: Any
) -> dict[int, Figures]:
    """(recipients, delivered, openers, clickers) per ``key`` of ``joined`` deliveries."""
    rows = joined.where(Delivery.issue_id == issue_id).subquery("members")
    sent = func.coalesce(func.sum(case((rows.c.status == DeliveryStatus.SENT, 1), else_=0)), 0)
    columns: list[Any] = [rows.c.key, func.count(), sent]
    statement = select(*columns).select_from(rows)
    if reach is not None:
        opened = reach.alias("opened")
        clicked = reach.alias("clicked")
        statement = (
            statement.add_columns(
                func.count(opened.c.delivery_id), func.count(clicked.c.delivery_id)
            )
            .outerjoin(
                opened,
                and_(
                    opened.c.delivery_id == rows.c.id,
                    opened.c.kind == "open",
                    opened.c.link_key == NO_LINK,
                ),
            )
            .outerjoin(
                clicked,
                and_(
                    clicked.c.delivery_id == rows.c.id,
                    clicked.c.kind == "click",
                    clicked.c.link_key == NO_LINK,
                ),
            )
        )
    result: dict[int, Figures] = {}
    for row in session.execute(statement.group_by(rows.c.key)):
        key, recipients, delivered = row[0], row[1], int(row[2])
        openers, clickers = (row[3], row[4]) if reach is not None else (None, None)
        result[key] = (recipients, delivered, openers, clickers)
    return result


def _segment_delta(session: Session, issue: Issue, delivery_ids: set[int]) -> Counter[int]:
    """How many of ``delivery_ids`` each segment of the issue holds now."""
    counter: Counter[int] = Counter()
    for chunk in _chunks(sorted(delivery_ids)):
        for joined in _member_selects(issue):
            rows = joined.where(Delivery.issue_id == issue.id, Delivery.id.in_(chunk)).subquery()
            for key, count in session.execute(
                select(rows.c.key, func.count()).group_by(rows.c.key)
            ):
                counter[key] += count
    return counter


def _fill_segments(
    session: Session, stats: IssueStats, mark: int, fresh: set[tuple[str, int, int]]
) -> None:
    """The segment table: the rollup's figures plus the openers and clickers of the live
    tail, or computed here when the rollup has none matching the rolled-up reach."""
    issue = stats.issue
    individual = stats.unique_openers is not None
    snapshot = session.get(SegmentSnapshot, issue.id)
    fresh_open = {d for kind, key, d in fresh if kind == "open" and key == NO_LINK}
    fresh_click = {d for kind, key, d in fresh if kind == "click" and key == NO_LINK}
    if snapshot is not None and individual:
        rolled = (
            (stats.unique_openers or 0) - len(fresh_open),
            (stats.unique_clickers or 0) - len(fresh_click),
        )
        if rolled != (snapshot.openers, snapshot.clickers):
            snapshot = None  # the rollup moved on since: not refreshed yet
    if snapshot is None:
        reach = _reach_source(session, issue.id, mark) if individual else None
        figures = _segment_figures(session, issue, reach)
    else:
        figures = {
            row.segment_id: (row.recipients, row.delivered, row.openers, row.clickers)
            for row in session.scalars(
                select(SegmentCount).where(SegmentCount.issue_id == issue.id)
            )
        }
        if individual:
            opened = _segment_delta(session, issue, fresh_open)
            clicked = _segment_delta(session, issue, fresh_click)
            figures = {
                key: (
                    recipients,
                    delivered,
                    (openers or 0) + opened[key],
                    (clickers or 0) + clicked[key],
                )
                for key, (recipients, delivered, openers, clickers) in figures.items()
            }
        stats.segments_as_of = snapshot.computed_at
        stats.segments_statuses_changed = snapshot.statuses != _signature(stats.statuses)
    zero = 0 if individual else None
    for segment in sorted(issue.segments, key=lambda s: s.name):
        recipients, delivered, openers, clickers = figures.get(segment.id, (0, 0, zero, zero))
        if not individual:
            openers = clickers = None
        stats.segments.append(SegmentRow(segment, recipients, delivered, openers, clickers))


def _signature(statuses: dict[DeliveryStatus, int]) -> str:
    return ",".join(f"{status.value}={count}" for status, count in sorted(statuses.items()))


def _rolled_reach(session: Session, issue_id: int) -> tuple[int, int]:
    rolled: dict[str, int] = {
        kind: int(count)
        for kind, count in session.execute(
            select(UniqueCount.kind, UniqueCount.count).where(
                UniqueCount.issue_id == issue_id,
                UniqueCount.kind.in_(("open", "click")),
                UniqueCount.link_key == NO_LINK,
            )
        )
    }
    return rolled.get("open", 0), rolled.get("click", 0)


def refresh_segment_figures(session: Session, issue: Issue) -> None:
    """Helper: compute the issue's segment table from the rollups and store it (no commit)."""
    individual = issue.newsletter.tracking_mode is not TrackingMode.ANONYMOUS
    reach = _reach_source(session, issue.id, 0, tail=False) if individual else None
    figures = _segment_figures(session, issue, reach)
    zero = 0 if individual else None
    session.execute(delete(SegmentCount).where(SegmentCount.issue_id == issue.id))
    session.add_all(
        SegmentCount(
            issue_id=issue.id,
            segment_id=segment.id,
            recipients=recipients,
            delivered=delivered,
            openers=openers,
            clickers=clickers,
        )
        for segment in issue.segments
        for recipients, delivered, openers, clickers in [
            figures.get(segment.id, (0, 0, zero, zero))
        ]
    )
    snapshot = session.get(SegmentSnapshot, issue.id)
    if snapshot is None:
        snapshot = SegmentSnapshot(issue_id=issue.id)
        session.add(snapshot)
    snapshot.computed_at = utcnow()
    snapshot.statuses = _signature(_statuses(session, issue.id))
    snapshot.openers, snapshot.clickers = _rolled_reach(session, issue.id) if individual else (0, 0)
    session.flush()


def _segment_figures_stale(session: Session, issue: Issue, *, max_age: bool) -> bool:
    snapshot = session.get(SegmentSnapshot, issue.id)
    if snapshot is None:
        return True
    if issue.newsletter.tracking_mode is not TrackingMode.ANONYMOUS and (
        snapshot.openers,
        snapshot.clickers,
    ) != _rolled_reach(session, issue.id):
        return True
    if snapshot.statuses != _signature(_statuses(session, issue.id)):
        return True
    return max_age and snapshot.computed_at < utcnow() - SEGMENT_MAX_AGE


def _refresh_segment_figures(session: Session, touched: set[int]) -> None:
    """Refresh the segment tables that are stale: issues whose openers or clickers were just
    folded first, then those within their reach window whose deliveries changed status or
    whose table is older than ``SEGMENT_MAX_AGE``; at most ``SEGMENT_REFRESHES_PER_RUN``."""
    now = utcnow()
    longest = session.scalar(select(func.max(Newsletter.tracking_retention_days))) or 0
    recent = select(Issue).where(
        Issue.status.in_((IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT)),
        Issue.send_started_at >= now - dt.timedelta(days=longest),
    )
    candidates = {issue.id: issue for issue in session.scalars(recent)}
    if touched:
        candidates.update(
            (i.id, i) for i in session.scalars(select(Issue).where(Issue.id.in_(touched)))
        )
    ordered = sorted(candidates.values(), key=lambda i: (i.id not in touched, i.id))
    refreshed = 0
    for issue in ordered:
        if refreshed >= SEGMENT_REFRESHES_PER_RUN:
            break
        if not issue.segments:
            continue
        limit = reach_limit(issue, issue.newsletter.tracking_retention_days)
        if issue.id not in touched and (limit is None or limit <= now):
            continue  # past its reach window: the table is final
        if _segment_figures_stale(session, issue, max_age=True):
            refresh_segment_figures(session, issue)
            refreshed += 1


def purge_reach(session: Session, newsletter: Newsletter, cutoff: dt.datetime) -> int:
    """Helper of the retention purge: delete the reach rows (which name deliveries, hence
    people) first seen before ``cutoff`` for the newsletter's issues. Unique counts
    (``stats_uniques``) stay; segment tables, computed from those rows, are settled first
    and stay as they are (the rollup no longer refreshes an issue past its reach window).
    """
    issue_ids = select(Issue.id).where(Issue.newsletter_id == newsletter.id)
    doomed = and_(Reach.issue_id.in_(issue_ids), Reach.first_at < cutoff)
    affected = session.scalars(select(Reach.issue_id).where(doomed).distinct()).all()
    for issue in session.scalars(select(Issue).where(Issue.id.in_(affected))):
        if issue.segments and _segment_figures_stale(session, issue, max_age=False):
            refresh_segment_figures(session, issue)
    result = session.execute(delete(Reach).where(doomed))
    return int(getattr(result, "rowcount", 0) or 0)


# --- Lists behind the figures --------------------------------------------------------

LIST_FILTERS = (
    "ouverts",
    "cliqueurs",
    "lien",
    "desinscrits",
    "plaintes",
    "statut",
    "destinataires",
)


def recipients(
    session: Session,
    issue: Issue,
    what: str,
    *,
    link_id: int | None = None,
    status: str | None = None,
    segment: Segment | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[tuple[Delivery, Subscriber | None]]:
    """A page of the deliveries behind a figure (keyset on delivery id), with their subscriber.

    Read from the events table itself (index on delivery id), so a list is exact even
    before the rollup has caught up.
    """
    condition = _list_condition(what, link_id, status)
    statement = (
        select(Delivery, Subscriber)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue.id, condition)
        .order_by(Delivery.id)
        .limit(limit)
    )
    if segment is not None:
        statement = statement.where(
            Delivery.subscriber_id.in_(select(Subscriber.id).where(segment_members(segment)))
        )
    if after:
        statement = statement.where(Delivery.id > after)
    return [(delivery, subscriber) for delivery, subscriber in session.execute(statement)]


def _list_condition(what: str, link_id: int | None, status: str | None) -> ColumnElement[bool]:
    human = Event.is_machine.is_(False)
    events: dict[str, tuple[ColumnElement[bool], ...]] = {
        "ouverts": (human, Event.kind.in_(HUMAN_REACH)),
        "cliqueurs": (human, Event.kind == EventKind.CLICK),
        "lien": (human, Event.kind == EventKind.CLICK, Event.link_id == (link_id or 0)),
        "desinscrits": (Event.kind == EventKind.UNSUBSCRIBE,),
        "plaintes": (Event.kind == EventKind.COMPLAINT,),
    }
    if what in events:
        return exists().where(Event.delivery_id == Delivery.id, *events[what])
    if what == "statut" and status in set(DeliveryStatus):
        return Delivery.status == DeliveryStatus(str(status))
    if what == "destinataires":
        return Delivery.id.is_not(None)
    raise ValueError(what)


# --- Across issues -------------------------------------------------------------------


@dataclass
class TrendRow:
    stats: IssueStats
    growth: int | None  # audience change since the previous issue of the same newsletter


def trends(session: Session, issues: Sequence[Issue]) -> list[TrendRow]:
    """Headline figures of ``issues`` (oldest first) and the audience change between them."""
    rows: list[TrendRow] = []
    previous: dict[int, int] = {}
    for issue in issues:
        stats = issue_stats(session, issue, detail=False)
        before = previous.get(issue.newsletter_id)
        rows.append(TrendRow(stats, None if before is None else stats.audience - before))
        previous[issue.newsletter_id] = stats.audience
    return rows


@dataclass
class GrowthRow:
    segment: Segment
    counts: list[int]  # members at the end of each month


def month_ends(months: int, today: dt.date | None = None) -> list[dt.datetime]:
    """The ends (exclusive, UTC midnight on the 1st) of the last ``months`` months."""
    today = today or utcnow().date()
    year, month = today.year, today.month + 1
    ends = []
    for _ in range(months):
        if month > 12:
            year, month = year + 1, month - 12
        ends.append(dt.datetime(year, month, 1, tzinfo=dt.UTC))
        month -= 1
        if month < 1:
            year, month = year - 1, 12
    return list(reversed(ends))


def segment_growth(
    session: Session, segments: Iterable[Segment], ends: Sequence[dt.datetime]
) -> list[GrowthRow]:
    """Members of each segment at each date: static segments from membership dates (joined
    before, not left before); rule segments from the subscription dates of those who match
    the rule today (an approximation: attributes may have changed)."""
    rows = []
    for segment in segments:
        columns: list[Any]
        if segment.kind is SegmentKind.RULE:
            try:
                rule = compile_rule(segment.rule)
            except RuleError:
                rule = false()
            columns = [func.count(case((Subscriber.created_at < end, 1))) for end in ends]
            statement = select(*columns).where(rule)
        else:
            columns = [
                func.count(
                    case(
                        (
                            and_(
                                Membership.created_at < end,
                                or_(
                                    Membership.unsubscribed_at.is_(None),
                                    Membership.unsubscribed_at >= end,
                                ),
                            ),
                            1,
                        )
                    )
                )
                for end in ends
            ]
            statement = select(*columns).where(Membership.segment_id == segment.id)
        counts = [int(value or 0) for value in session.execute(statement).one()]
        rows.append(GrowthRow(segment, counts))
    return rows
