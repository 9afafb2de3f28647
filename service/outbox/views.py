from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from service.accounts.models import Role
from service.accounts.permissions import roles_required
from service.db import Session
from service.outbox import services
from service.outbox.models import OutboxMessage

bp = Blueprint("outbox", __name__, url_prefix="/outbox")

OUTBOX_ROLES = (Role.ADMIN, Role.PUBLISHER, Role.EDITOR)

# Caught e-mails are untrusted HTML: served with a sandbox CSP so that even opened
# directly they run no script, load nothing remote and get an opaque origin.
EMAIL_HTML_POLICY = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "font-src 'self' data:; frame-ancestors 'self'"
)


@bp.before_request
def _enabled() -> None:
    if not current_app.extensions["lettrine_config"].outbox_enabled:
        abort(404)


def _get(message_id: int) -> OutboxMessage:
    message = Session.get(OutboxMessage, message_id)
    if message is None:
        abort(404)
    return message


@bp.route("/")
@roles_required(*OUTBOX_ROLES)
def index() -> ResponseReturnValue:
    page = request.args.get("page", 1, type=int) or 1
    messages, total = services.list_messages(Session(), page)
    config = current_app.extensions["lettrine_config"]
    return render_template(
        "outbox/index.html",
        smtp_address=f"{config.smtp_host}:{config.smtp_port}",
        messages=messages,
        total=total,
        page=page,
        pages=max(1, -(-total // services.PAGE_SIZE)),
    )


@bp.route("/<int:message_id>")
@roles_required(*OUTBOX_ROLES)
def detail(message_id: int) -> ResponseReturnValue:
    message = _get(message_id)
    parsed = services.parse(message.raw)
    return render_template(
        "outbox/detail.html",
        message=message,
        parsed=parsed,
        tracked_links=services.tracked_links(parsed.html or ""),
    )


@bp.route("/<int:message_id>/html")
@roles_required(*OUTBOX_ROLES)
def html(message_id: int) -> ResponseReturnValue:
    parsed = services.parse(_get(message_id).raw)
    if parsed.html is None:
        abort(404)
    response = Response(services.without_open_pixel(parsed.html), mimetype="text/html")
    response.headers["Content-Security-Policy"] = EMAIL_HTML_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.route("/<int:message_id>/raw")
@roles_required(*OUTBOX_ROLES)
def raw(message_id: int) -> ResponseReturnValue:
    message = _get(message_id)
    return Response(
        message.raw,
        mimetype="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="message-{message.id}.eml"'},
    )


@bp.route("/clear", methods=["POST"])
@roles_required(Role.ADMIN)
def clear() -> ResponseReturnValue:
    removed = services.clear(Session())
    flash(_("%(count)d message(s) supprimé(s).", count=removed), "success")
    return redirect(url_for("outbox.index"))
