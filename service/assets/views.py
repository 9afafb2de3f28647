from typing import cast

from flask import Blueprint, abort, current_app, jsonify, request, send_file
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from service.accounts.models import Role
from service.accounts.permissions import public, roles_required
from service.assets import services
from service.assets.detect import Kind
from service.assets.models import Asset
from service.config import Config
from service.db import Session

bp = Blueprint("assets", __name__, url_prefix=services.MEDIA_PREFIX)

UPLOAD_ROLES = (Role.ADMIN, Role.PUBLISHER, Role.EDITOR)
# A file's URL names its content for good (new content, new asset): cache for a year.
ONE_YEAR = 365 * 24 * 3600
# Documents are opened by whoever downloads them: if a browser ever renders one, it
# gets an opaque origin, no script and nothing loaded.
DOCUMENT_POLICY = "sandbox; default-src 'none'"


def _error(message: str, status: int = 400) -> ResponseReturnValue:
    return jsonify(error=message), status


@bp.route("/", methods=["POST"])
@roles_required(*UPLOAD_ROLES)
def upload() -> ResponseReturnValue:
    """The block editor's upload: form field ``file``, and ``kind`` (image or document)."""
    config: Config = current_app.extensions["lettrine_config"]
    try:
        storage = request.files.get("file")
    except RequestEntityTooLarge:
        return _error(_("Fichier trop volumineux pour être reçu."), 413)
    kind = request.form.get("kind", "image")
    if kind not in services.LIMITS:
        return _error(_("Type d'envoi inconnu : « image » ou « document » attendu."))
    if storage is None or not storage.filename:
        return _error(_("Aucun fichier reçu."))
    try:
        asset = services.store_upload(
            Session(), storage, kind=cast(Kind, kind), user_id=current_user.id
        )
    except services.UploadError as error:
        return _error(str(error))
    return jsonify(services.describe(config, asset))


@bp.route("/<int:asset_id>/<filename>")
@public
def serve(asset_id: int, filename: str) -> ResponseReturnValue:
    """The file itself, for e-mails and subscribers: public, immutable."""
    asset = Session.get(Asset, asset_id)
    if asset is None or asset.filename != filename:
        abort(404)
    path = services.media_path(current_app.extensions["lettrine_config"], asset.sha256)
    if not path.is_file():
        abort(404)
    image = services.is_image(asset)
    response = send_file(
        path,
        mimetype=asset.content_type,
        as_attachment=not image,
        download_name=asset.filename,
        etag=asset.sha256,
        max_age=ONE_YEAR,
        conditional=True,
    )
    # send_file would append a second charset to text types: set the stored type as is.
    response.headers["Content-Type"] = asset.content_type
    response.cache_control.public = True
    response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    if not image:
        response.headers["Content-Security-Policy"] = DOCUMENT_POLICY
    return response
