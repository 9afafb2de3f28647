"""Public subscription use cases: double opt-in, preference centre, unsubscribe.

Everything here answers a person on the internet who holds nothing but an
address or a link, so two rules run through it:

* an answer never tells whether an address is known: the callers show the
  same page whatever these functions did (a suppressed address gets no email,
  an unknown one gets one, and the page is the same);
* links carry signed tokens only. Confirmation and preference links are
  itsdangerous tokens with their own salt and lifetime; the per-delivery
  unsubscribe and preference links are the compact tokens of ``emails.tokens``.

Each use case commits once; the helpers never commit.
"""

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from emails.tokens import TokenSigner
from service.audience.models import (
    Membership,
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
    SuppressionReason,
)
from service.audience.services import is_suppressed, normalise_address, suppress
from service.audit.services import record
from service.delivery.models import Delivery
from service.tracking.models import Event, EventKind

# The consent text is evidence: the version stored with each subscriber names
# exactly these words. Change the text, change the version (and keep the old
# text in the history of this file). It is not run through the translation
# catalogue on purpose: what was consented to must not depend on a catalogue.
CONSENT_TEXT_VERSION = "formulaire-v1"
CONSENT_TEXT = (
    "J'accepte que mon adresse e-mail et les informations saisies dans ce formulaire "
    "(civilité, nom, prénom, organisme, fonction, commune) soient conservées par "
    "{controller}, responsable du traitement, pour m'envoyer les lettres d'information que "
    "j'ai choisies. La date, l'heure et une partie de l'adresse IP de mon inscription sont "
    "gardées comme preuve de ce consentement. Ces données ne servent qu'à ces envois et ne "
    "sont cédées à personne. Je peux me désinscrire à tout moment avec le lien « Se "
    "désinscrire » présent dans chaque lettre ou depuis la page « Gérer mes préférences », et "
    "demander à {controller} l'accès à mes données, leur rectification ou leur effacement."
)
CONSENT_SOURCE = "formulaire"

CONFIRM_SALT = "lettrine.audience.subscription-confirm"
PREFERENCES_SALT = "lettrine.audience.preferences"
CONFIRM_MAX_AGE = dt.timedelta(days=7)
PREFERENCES_MAX_AGE = dt.timedelta(days=30)

# Statuses in which a subscriber manages their own subscriptions; the others
# (unsubscribed, bounced, complained) only ever change through a new opt-in.
MANAGEABLE = frozenset({SubscriberStatus.ACTIVE, SubscriberStatus.PENDING})


class InvalidLinkError(Exception):
    """A link that cannot be used: tampered with, expired, or for something gone.

    ``expired`` is for logs and tests; the page says the same either way."""

    def __init__(self, *, expired: bool = False) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def consent_text(controller: str) -> str:
    return CONSENT_TEXT.format(controller=controller)


def truncate_ip(address: str | None) -> str | None:
    """Only the network is kept: IPv4 /24 (last octet 0), IPv6 /48."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


def public_segments(session: Session) -> list[Segment]:
    """Segments offered to the public. Rule segments are computed, so nobody joins them."""
    return list(
        session.scalars(
            select(Segment)
            .where(Segment.is_public.is_(True), Segment.kind == SegmentKind.STATIC)
            .order_by(Segment.name, Segment.id)
        )
    )


# --- Tokens -------------------------------------------------------------------------------


def _serializer(secret: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=salt)


def _loads(secret: str, salt: str, max_age: dt.timedelta, token: str) -> object:
    try:
        return _serializer(secret, salt).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise InvalidLinkError(expired=True) from None
    except BadSignature:
        raise InvalidLinkError from None


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def confirmation_token(secret: str, subscriber_id: int, segment_ids: Iterable[int]) -> str:
    return _serializer(secret, CONFIRM_SALT).dumps([subscriber_id, sorted(segment_ids)])


def read_confirmation_token(secret: str, token: str) -> tuple[int, list[int]]:
    """(subscriber id, segment ids) of a confirmation link; raises ``InvalidLinkError``."""
    payload = _loads(secret, CONFIRM_SALT, CONFIRM_MAX_AGE, token)
    if not isinstance(payload, list) or len(payload) != 2:
        raise InvalidLinkError
    subscriber_id, segment_ids = payload
    if not (
        isinstance(subscriber_id, int)
        and _is_id(subscriber_id)
        and isinstance(segment_ids, list)
        and all(_is_id(s) for s in segment_ids)
    ):
        raise InvalidLinkError
    return subscriber_id, segment_ids


def preferences_token(secret: str, subscriber_id: int) -> str:
    return _serializer(secret, PREFERENCES_SALT).dumps(subscriber_id)


@dataclass(frozen=True)
class PreferencesAccess:
    subscriber: Subscriber
    # Set when the link came from a bulletin: its issue is credited with an unsubscribe.
    delivery: Delivery | None


def preferences_access(session: Session, secret: str, token: str) -> PreferencesAccess:
    """Whose preferences a link opens: a bulletin's per-delivery token, or one of ours."""
    delivery = None
    verified = TokenSigner(secret).verify(token)
    if verified is not None:
        if verified.kind != "preferences":
            raise InvalidLinkError
        delivery = session.get(Delivery, verified.id)
        if delivery is None or delivery.subscriber_id is None:
            raise InvalidLinkError
        subscriber_id = delivery.subscriber_id
    else:
        payload = _loads(secret, PREFERENCES_SALT, PREFERENCES_MAX_AGE, token)
        if not isinstance(payload, int) or not _is_id(payload):
            raise InvalidLinkError
        subscriber_id = payload
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise InvalidLinkError
    return PreferencesAccess(subscriber, delivery)


def unsubscribe_delivery(session: Session, secret: str, token: str) -> Delivery:
    """The delivery a one-click unsubscribe link names; raises ``InvalidLinkError``."""
    verified = TokenSigner(secret).verify(token)
    if verified is None or verified.kind != "unsubscribe":
        raise InvalidLinkError
    delivery = session.get(Delivery, verified.id)
    if delivery is None:
        raise InvalidLinkError
    return delivery


# --- Subscribing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    civility: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    organisation: str | None = None
    function: str | None = None
    commune: str | None = None

    def apply(self, subscriber: Subscriber, *, keep_existing: bool) -> None:
        """Copy onto ``subscriber``; with ``keep_existing``, blanks do not erase."""
        for name, value in vars(self).items():
            if value or not keep_existing:
                setattr(subscriber, name, value or None)


@dataclass(frozen=True)
class SubscriptionRequest:
    email: str
    profile: Profile
    segment_ids: list[int]
    ip: str | None  # already truncated


@dataclass(frozen=True)
class PendingConfirmation:
    """What the confirmation email needs (built after commit)."""

    subscriber_id: int
    email: str
    display_name: str
    segment_ids: list[int]
    segment_names: list[str]


def request_subscription(
    session: Session, secret: str, request: SubscriptionRequest, *, now: dt.datetime
) -> PendingConfirmation | None:
    try:
        return _request_subscription(session, secret, request, now=now)
    except IntegrityError:
        # The same new address submitted twice at once: the other request created
        # the subscriber; start again and find it.
        session.rollback()
        return _request_subscription(session, secret, request, now=now)


def _request_subscription(
    session: Session, secret: str, request: SubscriptionRequest, *, now: dt.datetime
) -> PendingConfirmation | None:
    """Record a signup as pending; return what to confirm, or None when nothing is to be sent.

    Suppressed addresses are left alone entirely. An active subscriber's details
    are not touched by an anonymous form: only the segments they do not have yet
    become pending. Only public segments can be requested.
    """
    address = normalise_address(request.email)
    if is_suppressed(session, secret, address):
        return None
    requested = set(request.segment_ids)
    wanted = [segment for segment in public_segments(session) if segment.id in requested]

    subscriber = session.scalars(
        select(Subscriber).where(Subscriber.email == address).with_for_update()
    ).first()
    if subscriber is None:
        subscriber = Subscriber(email=address, status=SubscriberStatus.PENDING, attributes={})
        session.add(subscriber)
    was_active = subscriber.status is SubscriberStatus.ACTIVE
    if not was_active:
        request.profile.apply(subscriber, keep_existing=True)
        subscriber.status = SubscriberStatus.PENDING
        subscriber.consent_source = CONSENT_SOURCE
        subscriber.consent_at = now
        subscriber.consent_ip = request.ip
        subscriber.consent_text_version = CONSENT_TEXT_VERSION

    current = {m.segment_id: m for m in subscriber.memberships}
    to_confirm: list[Segment] = []
    for segment in wanted:
        membership = current.get(segment.id)
        if membership is None:
            membership = Membership(segment=segment, status=MembershipStatus.PENDING)
            subscriber.memberships.append(membership)
        elif membership.status is MembershipStatus.ACTIVE:
            continue
        membership.status = MembershipStatus.PENDING
        to_confirm.append(segment)
    if was_active and not to_confirm:
        session.rollback()
        return None
    session.flush()
    record(
        session,
        None,
        "subscriber.subscription_requested",
        "subscriber",
        subscriber.id,
        {
            "segments": [s.id for s in to_confirm],
            "consent_text_version": CONSENT_TEXT_VERSION,
            "ip": request.ip,
        },
    )
    pending = PendingConfirmation(
        subscriber_id=subscriber.id,
        email=subscriber.email,
        display_name=" ".join(p for p in (subscriber.first_name, subscriber.last_name) if p),
        segment_ids=[s.id for s in to_confirm],
        segment_names=[s.name for s in to_confirm],
    )
    session.commit()
    return pending


@dataclass(frozen=True)
class ConfirmationView:
    subscriber: Subscriber
    segment_names: list[str]


def confirmation_view(session: Session, secret: str, token: str) -> ConfirmationView:
    """What a confirmation link is about, for the page shown before the button (no change)."""
    subscriber_id, segment_ids = read_confirmation_token(secret, token)
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or is_suppressed(session, secret, subscriber.email):
        raise InvalidLinkError
    names = list(
        session.scalars(
            select(Segment.name).where(Segment.id.in_(segment_ids)).order_by(Segment.name)
        )
    )
    return ConfirmationView(subscriber, names)


def confirm_subscription(session: Session, secret: str, token: str, *, now: dt.datetime) -> int:
    """Activate the subscriber and the segments the link names. Idempotent.

    Returns the subscriber id. A suppressed address (unsubscribed since the link
    was sent) is never brought back by an old link.
    """
    subscriber_id, segment_ids = read_confirmation_token(secret, token)
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None or is_suppressed(session, secret, subscriber.email):
        raise InvalidLinkError
    changed = subscriber.status is not SubscriberStatus.ACTIVE
    if changed:
        subscriber.status = SubscriberStatus.ACTIVE
        subscriber.confirmed_at = now
    activated: list[int] = []
    for membership in subscriber.memberships:
        if membership.segment_id in segment_ids and membership.status is MembershipStatus.PENDING:
            membership.status = MembershipStatus.ACTIVE
            membership.confirmed_at = now
            membership.unsubscribed_at = None
            activated.append(membership.segment_id)
    if changed or activated:
        record(
            session,
            None,
            "subscriber.subscription_confirmed",
            "subscriber",
            subscriber.id,
            {"segments": activated},
        )
    session.commit()
    return subscriber_id


# --- Preferences and unsubscribing --------------------------------------------------------


def chosen_segment_ids(subscriber: Subscriber) -> list[int]:
    """Segments the subscriber receives or has asked for (ticked in the preference centre)."""
    return [
        m.segment_id
        for m in subscriber.memberships
        if m.status in {MembershipStatus.ACTIVE, MembershipStatus.PENDING}
    ]


def update_preferences(
    session: Session,
    subscriber_id: int,
    profile: Profile,
    segment_ids: Iterable[int],
    *,
    now: dt.datetime,
) -> None:
    """Save the preference centre: details, and one membership per public segment.

    The link proves the mailbox, so an active subscriber's ticks take effect at
    once; a subscriber still to confirm gets pending memberships, activated by
    the confirmation link.
    """
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None or subscriber.status not in MANAGEABLE:
        raise InvalidLinkError
    profile.apply(subscriber, keep_existing=False)
    chosen = set(segment_ids)
    current = {m.segment_id: m for m in subscriber.memberships}
    active = subscriber.status is SubscriberStatus.ACTIVE
    joined, left = [], []
    for segment in public_segments(session):
        membership = current.get(segment.id)
        if segment.id in chosen:
            if membership is None:
                membership = Membership(segment=segment, status=MembershipStatus.UNSUBSCRIBED)
                subscriber.memberships.append(membership)
            wanted = MembershipStatus.ACTIVE if active else MembershipStatus.PENDING
            if membership.status is MembershipStatus.ACTIVE or membership.status is wanted:
                continue
            membership.status = wanted
            membership.unsubscribed_at = None
            if active:
                membership.confirmed_at = now
            joined.append(segment.id)
        elif membership is not None and membership.status is not MembershipStatus.UNSUBSCRIBED:
            membership.status = MembershipStatus.UNSUBSCRIBED
            membership.unsubscribed_at = now
            left.append(segment.id)
    record(
        session,
        None,
        "subscriber.preferences_updated",
        "subscriber",
        subscriber.id,
        {"joined": joined, "left": left},
    )
    session.commit()


def _unsubscribe(
    session: Session, secret: str, subscriber: Subscriber, *, via: str, now: dt.datetime
) -> None:
    """Leave every segment and suppress the address. Does not commit."""
    changed = not is_suppressed(session, secret, subscriber.email)
    if subscriber.status in MANAGEABLE:
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
        changed = True
    for membership in subscriber.memberships:
        if membership.status is not MembershipStatus.UNSUBSCRIBED:
            membership.status = MembershipStatus.UNSUBSCRIBED
            membership.unsubscribed_at = now
            changed = True
    suppress(session, secret, subscriber.email, SuppressionReason.UNSUBSCRIBED)
    if changed:
        record(session, None, "subscriber.unsubscribed", "subscriber", subscriber.id, {"via": via})


def _unsubscribe_event(session: Session, delivery: Delivery, *, now: dt.datetime) -> None:
    """One unsubscribe event per delivery, however often the link is used."""
    exists = session.scalar(
        select(Event.id).where(
            Event.delivery_id == delivery.id, Event.kind == EventKind.UNSUBSCRIBE
        )
    )
    if exists is None:
        session.add(
            Event(
                kind=EventKind.UNSUBSCRIBE,
                issue_id=delivery.issue_id,
                delivery_id=delivery.id,
                occurred_at=now,
            )
        )


def unsubscribe_all(
    session: Session,
    secret: str,
    subscriber_id: int,
    *,
    delivery_id: int | None = None,
    now: dt.datetime,
) -> None:
    """« Me désinscrire de toutes les lettres » from the preference centre. Idempotent."""
    delivery = None
    if delivery_id is not None:
        delivery = session.get(Delivery, delivery_id, with_for_update=True)
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None:
        raise InvalidLinkError
    _unsubscribe(session, secret, subscriber, via="preferences", now=now)
    if delivery is not None:
        _unsubscribe_event(session, delivery, now=now)
    session.commit()


def one_click_unsubscribe(session: Session, secret: str, token: str, *, now: dt.datetime) -> None:
    """RFC 8058: the link's delivery gets one event; its subscriber leaves everything.

    Idempotent. The delivery row is locked first so that two simultaneous posts
    (a mail provider and the person) record one event.
    """
    delivery = unsubscribe_delivery(session, secret, token)
    session.refresh(delivery, with_for_update=True)
    _unsubscribe_event(session, delivery, now=now)
    if delivery.subscriber_id is not None:  # None once erased: the address is suppressed already
        subscriber = session.get(Subscriber, delivery.subscriber_id, with_for_update=True)
        if subscriber is not None:
            _unsubscribe(session, secret, subscriber, via="one-click", now=now)
    session.commit()
