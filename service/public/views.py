"""Public pages: no login. Everything here answers for anyone on the internet."""

import logging
import unicodedata
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from itsdangerous import BadSignature

from emails.calendar import calendar
from service.accounts.permissions import public
from service.audience import subscriptions
from service.audience.models import Segment, Subscriber, SubscriberStatus
from service.config import Config
from service.db import Session, utcnow
from service.extensions import csrf, limiter
from service.issues.models import Block
from service.issues.rendering import calendar_serializer
from service.public import notifications
from service.public.branding import current_brand
from service.public.forms import ActionForm, PreferencesForm, ProfileFields, SubscribeForm

log = logging.getLogger(__name__)

bp = Blueprint("public", __name__)


@bp.route("/agenda/<token>.ics")
@public
def event_ics(token: str) -> ResponseReturnValue:
    """« Ajouter à mon agenda »: one event, current version (SEQUENCE tells calendars)."""
    serializer = calendar_serializer(current_app.extensions["lettrine_config"])
    try:
        block_id, uid = serializer.loads(token)
    except (BadSignature, ValueError, TypeError):
        abort(404)
    block = Session.get(Block, block_id) if isinstance(block_id, int) else None
    if block is None or block.kind != "agenda":
        abort(404)
    event = next((e for e in block.data.get("events", []) if e.get("uid") == uid), None)
    if event is None:
        abort(404)
    body = calendar([event], stamp=block.issue.updated_at)
    return Response(
        body,
        mimetype="text/calendar",
        headers={
            "Content-Disposition": ics_disposition(str(event.get("title") or "")),
            "Cache-Control": "public, max-age=300",
        },
    )


_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae"})  # letters NFKD does not decompose


def ics_disposition(title: str) -> str:
    """An attachment named after the event: « atelier-a-lievin.ics » for old clients
    (``filename``, ASCII), « atelier-à-liévin.ics » for the others (RFC 6266 / 5987
    ``filename*``). Only letters, digits and dashes: nothing a file system refuses."""

    def slug(text: str, keep: Callable[[str], bool]) -> str:
        words = "".join(c if keep(c) else " " for c in text.casefold()).split()
        return "-".join(words)[:60].strip("-")

    plain = unicodedata.normalize("NFKD", title.casefold().translate(_LIGATURES))
    ascii_name = slug(
        "".join(c for c in plain if not unicodedata.combining(c)),
        lambda c: c.isascii() and c.isalnum(),
    )
    unicode_name = slug(unicodedata.normalize("NFC", title), str.isalnum)
    ascii_name = ascii_name or "evenement"
    unicode_name = unicode_name or ascii_name
    return (
        f'attachment; filename="{ascii_name}.ics"; '
        f"filename*=UTF-8''{quote(unicode_name + '.ics', safe='')}"
    )


# --- Subscription, confirmation, preferences, unsubscribe ------------------------------------
# Answers never tell whether an address is known; links carry signed tokens only
# (see service/audience/subscriptions.py). A GET never changes anything: mail
# scanners open every link they see.


def _config() -> Config:
    config: Config = current_app.extensions["lettrine_config"]
    return config


def _page(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    return render_template(template, brand=current_brand(Session()), **context), status


def _invalid_link(*, confirmation: bool = False) -> ResponseReturnValue:
    # 404 whatever the reason (tampered, expired, gone): nothing to learn from it.
    return _page("public/invalid_link.html", 404, confirmation=confirmation)


def _profile(form: ProfileFields) -> subscriptions.Profile:
    return subscriptions.Profile(
        civility=form.civility.data or None,
        first_name=form.first_name.data,
        last_name=form.last_name.data,
        organisation=form.organisation.data,
        function=form.function.data,
        commune=form.commune.data,
    )


def _segment_choices(segments: list[Segment]) -> list[tuple[int, str]]:
    return [(segment.id, segment.name) for segment in segments]


def _submitted_address() -> str:
    return "subscribe:" + (request.form.get("email") or "").strip().lower()


@bp.route("/lettre.css")
@public
def stylesheet() -> ResponseReturnValue:
    """The brand colour as CSS: the strict CSP allows no inline style."""
    css = render_template("public/brand.css", brand=current_brand(Session()))
    return Response(css, mimetype="text/css", headers={"Cache-Control": "public, max-age=300"})


@bp.route("/inscription", methods=["GET", "POST"])
@public
# Per client address, and per submitted address whatever the client (no mail-bombing).
@limiter.limit("5 per 10 minutes", methods=["POST"])
@limiter.limit("3 per hour", methods=["POST"], key_func=_submitted_address)
def subscribe() -> ResponseReturnValue:
    session = Session()
    brand = current_brand(session)
    segments = subscriptions.public_segments(session)
    form = SubscribeForm()
    form.offer(_segment_choices(segments), required=True)
    if form.is_submitted() and form.website.data:
        log.info("subscription form: honeypot filled, ignored")
        return _page("public/subscribe_done.html")
    if not form.validate_on_submit():
        return _page(
            "public/subscribe.html",
            form=form,
            segments=segments,
            consent=subscriptions.consent_text(brand.controller),
        )
    config = _config()
    pending = subscriptions.request_subscription(
        session,
        config.secret_key,
        subscriptions.SubscriptionRequest(
            email=form.email.data or "",
            profile=_profile(form),
            segment_ids=list(form.segments.data or []),
            ip=subscriptions.truncate_ip(request.remote_addr),
        ),
        now=utcnow(),
    )
    response = make_response(_page("public/subscribe_done.html"))
    if pending is not None:
        message = notifications.confirmation_message(config, brand, pending)
        response.call_on_close(
            partial(
                notifications.send_confirmation,
                config,
                pending.subscriber_id,
                pending.email,
                message,
            )
        )
    return response


@bp.route("/inscription/confirmer/<token>", methods=["GET", "POST"])
@public
@limiter.limit("20 per 10 minutes", methods=["POST"])
def confirm(token: str) -> ResponseReturnValue:
    secret = _config().secret_key
    try:
        about = subscriptions.confirmation_view(Session(), secret, token)
    except subscriptions.InvalidLinkError:
        return _invalid_link(confirmation=True)
    form = ActionForm()
    if not form.validate_on_submit():
        return _page("public/confirm.html", form=form, segment_names=about.segment_names)
    try:
        subscriber_id = subscriptions.confirm_subscription(Session(), secret, token, now=utcnow())
    except subscriptions.InvalidLinkError:
        return _invalid_link(confirmation=True)
    return _page(
        "public/confirmed.html",
        preferences_url=url_for(
            "public.preferences", token=subscriptions.preferences_token(secret, subscriber_id)
        ),
    )


# The short form written into every email footer (emails/mime.py); url_for builds the
# long one, registered first (decorators apply from the bottom up).
@bp.route("/p/<token>", methods=["GET", "POST"])
@bp.route("/preferences/<token>", methods=["GET", "POST"])
@public
@limiter.limit("30 per 10 minutes", methods=["POST"])
def preferences(token: str) -> ResponseReturnValue:
    secret = _config().secret_key
    session = Session()
    try:
        access = subscriptions.preferences_access(session, secret, token)
    except subscriptions.InvalidLinkError:
        return _invalid_link()
    subscriber = access.subscriber
    if subscriber.status not in subscriptions.MANAGEABLE:
        return _page("public/unsubscribed.html", already=True)
    subscriber_id, delivery_id = subscriber.id, access.delivery.id if access.delivery else None

    if request.method == "POST" and request.form.get("action") == "unsubscribe_all":
        if not ActionForm().validate_on_submit():
            abort(400)
        subscriptions.unsubscribe_all(
            session, secret, subscriber_id, delivery_id=delivery_id, now=utcnow()
        )
        return _page("public/unsubscribed.html", already=False)

    segments = subscriptions.public_segments(session)
    form = PreferencesForm(obj=subscriber if request.method == "GET" else None)
    form.offer(_segment_choices(segments), required=False)
    if not form.is_submitted():
        form.civility.data = subscriber.civility or ""
        form.segments.data = subscriptions.chosen_segment_ids(subscriber)
    elif form.validate_on_submit():
        subscriptions.update_preferences(
            session,
            subscriber_id,
            _profile(form),
            form.segments.data or [],
            now=utcnow(),
        )
        flash(_("Vos préférences sont enregistrées."), "success")
        return redirect(url_for("public.preferences", token=token))
    return _page(
        "public/preferences.html",
        form=form,
        segments=segments,
        subscriber=subscriber,
        pending=subscriber.status is SubscriberStatus.PENDING,
        unsubscribe_form=ActionForm(),
    )


@bp.route("/u/<token>", methods=["GET", "POST"])
@csrf.exempt  # type: ignore[untyped-decorator]
@public
def unsubscribe(token: str) -> ResponseReturnValue:
    """One-click unsubscribe (RFC 8058), the List-Unsubscribe URL of every bulletin.

    Exempt from CSRF: mail providers post ``List-Unsubscribe=One-Click`` without
    cookies or token. The unguessable per-delivery token is what authorises it.
    """
    secret = _config().secret_key
    session = Session()
    try:
        delivery = subscriptions.unsubscribe_delivery(session, secret, token)
    except subscriptions.InvalidLinkError:
        return _invalid_link()
    if request.method == "GET":
        subscriber = (
            session.get(Subscriber, delivery.subscriber_id) if delivery.subscriber_id else None
        )
        already = subscriber is None or subscriber.status not in subscriptions.MANAGEABLE
        return _page("public/unsubscribe.html", already=already)
    if request.form.get("List-Unsubscribe") != "One-Click":
        abort(400)
    subscriptions.one_click_unsubscribe(session, secret, token, now=utcnow())
    return _page("public/unsubscribed.html", already=False)
