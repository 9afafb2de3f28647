"""Inbound reports: bounces and complaints posted by the mail server or a provider,
and the page « Retours de messagerie » that lists them."""

import datetime as dt
import hmac

from flask import Blueprint, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from service.accounts.models import Role
from service.accounts.permissions import public, roles_required
from service.db import Session, utcnow
from service.delivery import bounces, imap
from service.extensions import csrf

bp = Blueprint("delivery_hooks", __name__, url_prefix="/webhooks")
reports_bp = Blueprint("bounces", __name__, url_prefix="/retours")
# Beat reads the mailbox every minute: five minutes without a run means no beat or no worker.
STALE = dt.timedelta(minutes=5)


@bp.route("/bounces", methods=["POST"])
@public  # machines, not people: authenticated by the shared token below
@csrf.exempt  # type: ignore[untyped-decorator]
def bounce() -> ResponseReturnValue:
    """Body: one raw message (a DSN, an ARF report…), as the mail server received it.

    Header ``Authorization: Bearer <BOUNCE_WEBHOOK_TOKEN>``. Answers 202 with the
    classification; anything unknown is accepted and ignored, so senders never retry.
    """
    config = current_app.extensions["lettrine_config"]
    expected = config.bounce_webhook_token
    if not expected:
        abort(404)
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        abort(403)
    raw = request.get_data(cache=False)
    if not raw or len(raw) > 5 * 1024 * 1024:
        abort(400)
    report = bounces.process(Session(), config.secret_key, raw, source="webhook")
    return {"kind": report.kind, "delivery": report.delivery_id, "status": report.status}, 202


@reports_bp.route("/")
@roles_required(Role.ADMIN, Role.PUBLISHER)
def index() -> ResponseReturnValue:
    """The last reports received, and how the bounce mailbox reader is doing."""
    config = current_app.extensions["lettrine_config"]
    state = imap.mailbox_state(Session())
    now = utcnow()
    return render_template(
        "delivery/bounces.html",
        reports=bounces.recent_reports(Session()),
        mailbox=config.bounce_imap,
        webhook=bool(config.bounce_webhook_token),
        state=state,
        running=bool(state and state.lease_until and state.lease_until > now),
        stale=bool(
            config.bounce_imap
            and (state is None or not state.last_run_at or now - state.last_run_at > STALE)
        ),
    )
