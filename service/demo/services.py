"""Load the demo content (``service.demo.content``) into the database.

``load_demo`` is the one use case; it flushes and leaves the commit to its
caller (the CLI command, a test). The subscribers are drawn from a seeded
``random.Random``: the same names, addresses and statuses on every machine, so
screenshots, statistics and bug reports agree.
"""

import copy
import dataclasses
import datetime as dt
import random
import re
import unicodedata
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from service.accounts.models import Role, User
from service.accounts.services import hash_password, normalise_email
from service.audience.models import (
    Membership,
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
)
from service.demo import content
from service.issues.models import Block, Issue, IssueStatus
from service.newsletters.models import Newsletter


@dataclasses.dataclass(frozen=True, slots=True)
class DemoSubscriber:
    email: str
    civility: str
    first_name: str
    last_name: str
    organisation: str
    function: str
    commune: str
    epci: str
    attributes: dict[str, str]
    # Slugs of the static segments the subscriber belongs to, first one first.
    segments: tuple[str, ...]
    status: SubscriberStatus = SubscriberStatus.ACTIVE
    consent_source: str = content.IMPORT_SOURCE
    consent_at: dt.datetime | None = None
    consent_ip: str | None = None
    confirmed_at: dt.datetime | None = None
    unsubscribed_at: dt.datetime | None = None


def load_demo(session: Session) -> bool:
    """Create the demo newsletter, its first issue, audience and logins.

    Returns False and touches nothing when the demo newsletter already exists,
    so running it twice is harmless. Demo users, segments and subscribers that
    already exist (same email or slug) are reused rather than duplicated.
    """
    slug = content.NEWSLETTER["slug"]
    if session.scalar(select(Newsletter.id).where(Newsletter.slug == slug)) is not None:
        return False

    users = _ensure_users(session)
    segments = _ensure_segments(session)

    newsletter = Newsletter(**content.NEWSLETTER)
    issue = Issue(
        newsletter=newsletter,
        status=IssueStatus.DRAFT,
        created_by_id=users[Role.EDITOR].id,
        segments=[segments[slug] for slug, *_ in content.STATIC_SEGMENTS],
        blocks=[
            Block(
                position=position,
                kind=spec.kind,
                # A private copy: the ORM or a later edit must never mutate the module's data.
                data=copy.deepcopy(spec.data),
                segments=[segments[slug] for slug in spec.segments],
            )
            for position, spec in enumerate(content.ISSUE_BLOCKS)
        ],
        **content.ISSUE,
    )
    session.add_all([newsletter, issue])
    session.flush()

    _insert_subscribers(session, segments, build_subscribers())
    session.flush()
    return True


def build_subscribers(seed: int = content.SUBSCRIBER_SEED) -> list[DemoSubscriber]:
    """Draw the fictitious audience, deterministically for a given seed."""
    # Reproducible demo data, not security: a seeded PRNG is the point.
    rng = random.Random(seed)  # noqa: S311
    taken: set[str] = set()
    people = [
        _draw_person(rng, segment, taken)
        for segment, quota in content.SUBSCRIBER_QUOTAS.items()
        for _ in range(quota)
    ]

    odd_ones = rng.sample(range(len(people)), content.PENDING_COUNT + content.UNSUBSCRIBED_COUNT)
    pending = set(odd_ones[: content.PENDING_COUNT])
    unsubscribed = set(odd_ones[content.PENDING_COUNT :])

    result = []
    for index, person in enumerate(people):
        if index in pending:
            start, span = content.PENDING_WINDOW
            result.append(
                dataclasses.replace(
                    person,
                    status=SubscriberStatus.PENDING,
                    consent_source=content.FORM_SOURCE,
                    consent_at=_instant(rng, start, span),
                    consent_ip=content.FORM_IP,
                )
            )
            continue
        start, span = content.CONSENT_WINDOW
        consent_at = _instant(rng, start, span)
        confirmed = dataclasses.replace(person, consent_at=consent_at, confirmed_at=consent_at)
        if index in unsubscribed:
            confirmed = dataclasses.replace(
                confirmed,
                status=SubscriberStatus.UNSUBSCRIBED,
                unsubscribed_at=consent_at + dt.timedelta(days=rng.randint(20, 300)),
            )
        result.append(confirmed)
    return result


def slugify(text: str) -> str:
    """ASCII, lower-case, hyphen-separated: "Saint-Pol-sur-Ternoise" -> "saint-pol-sur-ternoise"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _ensure_users(session: Session) -> dict[Role, User]:
    emails = [normalise_email(email) for email, _, _ in content.DEMO_USERS]
    existing = {
        user.email: user for user in session.scalars(select(User).where(User.email.in_(emails)))
    }
    users: dict[Role, User] = {}
    for (_, name, role), email in zip(content.DEMO_USERS, emails, strict=True):
        user = existing.get(email)
        if user is None:
            # One hash per user: each gets its own salt even with the shared password.
            user = User(
                email=email,
                name=name,
                role=role,
                password_hash=hash_password(content.DEMO_PASSWORD),
            )
            session.add(user)
        users[role] = user
    session.flush()  # the issue needs the editor's id
    return users


def _ensure_segments(session: Session) -> dict[str, Segment]:
    wanted: list[dict[str, Any]] = [
        {"slug": slug, "name": name, "description": description, "is_public": is_public}
        for slug, name, description, is_public in content.STATIC_SEGMENTS
    ]
    wanted += [
        {
            "slug": slug,
            "name": name,
            "description": description,
            "kind": SegmentKind.RULE,
            "rule": copy.deepcopy(rule),
        }
        for slug, name, description, rule in content.RULE_SEGMENTS
    ]
    slugs = [fields["slug"] for fields in wanted]
    segments = {
        segment.slug: segment
        for segment in session.scalars(select(Segment).where(Segment.slug.in_(slugs)))
    }
    for fields in wanted:
        if fields["slug"] not in segments:
            segment = Segment(**{"kind": SegmentKind.STATIC, **fields})
            session.add(segment)
            segments[segment.slug] = segment
    session.flush()  # memberships are inserted by segment id
    return segments


def _insert_subscribers(
    session: Session, segments: dict[str, Segment], people: list[DemoSubscriber]
) -> None:
    """Insert subscribers and memberships in two set-based statements."""
    existing = set(
        session.scalars(
            select(Subscriber.email).where(Subscriber.email.in_([p.email for p in people]))
        )
    )
    fresh = [person for person in people if person.email not in existing]
    if not fresh:
        return

    # Every row has the same keys, so the ORM sends one batched INSERT and
    # hands the ids back in parameter order.
    rows = [
        {
            "email": person.email,
            "civility": person.civility,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "organisation": person.organisation,
            "function": person.function,
            "commune": person.commune,
            "epci": person.epci,
            "attributes": dict(person.attributes),
            "status": person.status,
            "language": "fr",
            "consent_source": person.consent_source,
            "consent_at": person.consent_at,
            "consent_ip": person.consent_ip,
            "consent_text_version": content.CONSENT_TEXT_VERSION,
            "confirmed_at": person.confirmed_at,
        }
        for person in fresh
    ]
    ids = session.scalars(
        insert(Subscriber).returning(Subscriber.id, sort_by_parameter_order=True), rows
    ).all()

    memberships = [
        {
            "subscriber_id": subscriber_id,
            "segment_id": segments[slug].id,
            "status": _membership_status(person.status),
            "confirmed_at": person.confirmed_at,
            "unsubscribed_at": person.unsubscribed_at,
        }
        for subscriber_id, person in zip(ids, fresh, strict=True)
        for slug in person.segments
    ]
    session.execute(insert(Membership), memberships)


def _membership_status(status: SubscriberStatus) -> MembershipStatus:
    # A membership mirrors its subscriber: an unconfirmed sign-up is pending in
    # its segments too, and someone who left is out of all of them.
    if status is SubscriberStatus.PENDING:
        return MembershipStatus.PENDING
    if status is SubscriberStatus.UNSUBSCRIBED:
        return MembershipStatus.UNSUBSCRIBED
    return MembershipStatus.ACTIVE


def _draw_person(rng: random.Random, segment: str, taken: set[str]) -> DemoSubscriber:
    """Draw one person of ``segment`` whose address is not in ``taken`` yet (then add it)."""
    profiles = content.PROFILES[segment]
    communes = [
        (epci, commune, de_commune)
        for epci, (_, names) in content.TERRITORY.items()
        for commune, de_commune in names
    ]
    while True:
        female = rng.random() < 0.5
        first_name = rng.choice(content.FIRST_NAMES_F if female else content.FIRST_NAMES_M)
        last_name = rng.choice(content.LAST_NAMES)
        epci, commune, de_commune = rng.choice(communes)
        profile = rng.choices(profiles, weights=[p.weight for p in profiles])[0]
        masculine, feminine = rng.choice(profile.titles)
        trade = rng.choice(content.SHOP_TRADES)

        organisation = profile.organisation.format(
            de_commune=de_commune, epci=epci, trade=trade, surname=last_name
        )
        domain = profile.domain.format(
            commune=slugify(commune),
            epci=content.TERRITORY[epci][0],
            org=slugify(organisation),
        )
        email = normalise_email(f"{slugify(first_name)}.{slugify(last_name)}@{domain}")
        if email not in taken:
            break
    taken.add(email)

    title = feminine if female else masculine
    attributes: dict[str, str] = {}
    function = title
    if profile.function is not None:
        function = profile.function[1] if female else profile.function[0]
        attributes["mandat"] = title

    segments = [segment]
    for first, only_title, extra, probability in content.ALSO_IN:
        if first == segment and only_title in (None, masculine) and rng.random() < probability:
            segments.append(extra)

    return DemoSubscriber(
        email=email,
        civility="Mme" if female else "M.",
        first_name=first_name,
        last_name=last_name,
        organisation=organisation,
        function=function,
        commune=commune,
        epci=epci,
        attributes=attributes,
        segments=tuple(segments),
    )


def _instant(rng: random.Random, start: dt.datetime, span: dt.timedelta) -> dt.datetime:
    """A deterministic instant in [start, start + span), to the minute."""
    minutes = rng.randrange(int(span.total_seconds()) // 60)
    return start + dt.timedelta(minutes=minutes)
