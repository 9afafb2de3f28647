"""Public pages: no login. Everything here answers for anyone on the internet."""

from flask import Blueprint, Response, abort, current_app
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature

from emails.calendar import calendar
from service.accounts.permissions import public
from service.db import Session
from service.issues.models import Block
from service.issues.rendering import calendar_serializer

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
            "Content-Disposition": 'attachment; filename="evenement.ics"',
            "Cache-Control": "public, max-age=300",
        },
    )
