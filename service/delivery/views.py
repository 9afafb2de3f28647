"""Inbound reports: bounces and complaints posted by the mail server or a provider."""

import hmac

from flask import Blueprint, abort, current_app, request
from flask.typing import ResponseReturnValue

from service.accounts.permissions import public
from service.db import Session
from service.delivery import bounces
from service.extensions import csrf

bp = Blueprint("delivery_hooks", __name__, url_prefix="/webhooks")


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
    report = bounces.process(Session(), config.secret_key, raw)
    return {"kind": report.kind, "delivery": report.delivery_id, "status": report.status}, 202
