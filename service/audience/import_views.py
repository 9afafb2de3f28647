"""Subscriber import (upload, column mapping, dry run, progress, report) and export pages.

Roles: importing writes personal data and decides consent, so it is for admins and
publishers (who already decide who receives what). Exporting reads personal data:
admins and publishers, and analysts too, whose job (DESIGN §1, journey 4) is to
study the audience and who are handed exports; editors compose content and have
no need for the address book (GDPR data minimisation). Every export is audited.
"""

import tempfile
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from sqlalchemy import select
from wtforms import BooleanField, RadioField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from service.accounts.models import Role
from service.accounts.permissions import roles_required
from service.audience import exports, imports
from service.audience.models import Import, ImportStatus, Segment, SegmentKind
from service.audience.search import FILTERS, search_clauses
from service.audit.services import record
from service.config import Config
from service.db import Session

bp = Blueprint("imports", __name__, url_prefix="/abonnes/import")

IMPORTERS = (Role.ADMIN, Role.PUBLISHER)
EXPORTERS = (Role.ADMIN, Role.PUBLISHER, Role.ANALYST)
RUNNING = frozenset({ImportStatus.CHECKING, ImportStatus.IMPORTING})
STATUS_LABELS = {
    ImportStatus.UPLOADED: _l("Colonnes à vérifier"),
    ImportStatus.CHECKING: _l("Vérification en cours"),
    ImportStatus.CHECKED: _l("Vérifié, prêt à importer"),
    ImportStatus.IMPORTING: _l("Import en cours"),
    ImportStatus.DONE: _l("Terminé"),
    ImportStatus.FAILED: _l("Échec"),
}


class UploadForm(FlaskForm):  # type: ignore[misc]
    file = FileField(
        _l("Fichier des abonnés"),
        description=_l(
            "CSV (séparateur point-virgule ou virgule, UTF-8 ou Windows-1252), XLSX ou ODS. "
            "La première ligne donne les noms des colonnes."
        ),
    )


class OptionsForm(FlaskForm):  # type: ignore[misc]
    existing = RadioField(
        _l("Personnes déjà abonnées"),
        choices=[
            SelectChoice("update", _l("Mettre à jour leurs coordonnées avec celles du fichier")),
            SelectChoice("skip", _l("Garder leurs coordonnées telles quelles")),
        ],
        default="update",
    )
    consent_basis = TextAreaField(
        _l("Base du consentement"),
        description=_l(
            "Par exemple : « Inscrits au séminaire du 12 mars, case cochée sur le formulaire ». "
            "Sans elle, les personnes sont en attente de confirmation dans les segments à "
            "double confirmation."
        ),
        validators=[Optional(), Length(max=500)],
    )
    all_or_nothing = BooleanField(
        _l("Tout ou rien : n'importer personne si une seule ligne est invalide")
    )


def _config() -> Config:
    config: Config = current_app.extensions["lettrine_config"]
    return config


def _user_id() -> int:
    return int(current_user.id)


def _import(import_id: int) -> Import:
    found = Session.get(Import, import_id)
    if found is None:
        abort(404)
    return found


def _static_segments() -> list[Segment]:
    return list(
        Session.scalars(
            select(Segment).where(Segment.kind == SegmentKind.STATIC).order_by(Segment.name)
        )
    )


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "import_status_label": lambda status: STATUS_LABELS[ImportStatus(status)],
        "outcome_counts": imports.counts_with_labels,
    }


@bp.route("/")
@roles_required(*IMPORTERS)
def index() -> ResponseReturnValue:
    recent = list(Session.scalars(select(Import).order_by(Import.id.desc()).limit(20)))
    return render_template("imports/index.html", form=UploadForm(), imports=recent)


@bp.route("/", methods=["POST"])
@roles_required(*IMPORTERS)
def upload() -> ResponseReturnValue:
    form = UploadForm()
    storage = form.file.data
    if not form.validate_on_submit() or storage is None or not storage.filename:
        flash(_("Choisissez un fichier à importer."), "error")
        return redirect(url_for("imports.index"))
    folder = _config().instance_path / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False) as handle:
        storage.save(handle)
    try:
        created = imports.create_import(
            Session(), _config(), Path(handle.name), storage.filename, _user_id()
        )
    except imports.FileError as error:
        flash(str(error), "error")
        recent = list(Session.scalars(select(Import).order_by(Import.id.desc()).limit(20)))
        return render_template("imports/index.html", form=form, imports=recent), 400
    return redirect(url_for("imports.mapping", import_id=created.id))


def _mapping_page(
    record_: Import, form: OptionsForm, mapping: dict[str, str], status: int = 200
) -> ResponseReturnValue:
    try:
        rows = imports.preview(_config(), record_)
    except imports.FileError as error:
        flash(str(error), "error")
        return redirect(url_for("imports.index"))
    return render_template(
        "imports/mapping.html",
        record=record_,
        form=form,
        rows=rows,
        mapping=mapping,
        choices=imports.CHOICES,
        segments=_static_segments(),
        selected={int(i) for i in record_.options.get("segment_ids", [])},
    ), status


@bp.route("/<int:import_id>/colonnes")
@roles_required(*IMPORTERS)
def mapping(import_id: int) -> ResponseReturnValue:
    record_ = _import(import_id)
    if record_.status in RUNNING:
        return redirect(url_for("imports.show", import_id=import_id))
    options = record_.options
    form = OptionsForm(
        data={
            "existing": options.get("existing", "update"),
            "consent_basis": options.get("consent_basis", ""),
            "all_or_nothing": options.get("all_or_nothing", False),
        }
    )
    return _mapping_page(record_, form, dict(record_.mapping))


@bp.route("/<int:import_id>/colonnes", methods=["POST"])
@roles_required(*IMPORTERS)
def save_mapping(import_id: int) -> ResponseReturnValue:
    record_ = _import(import_id)
    form = OptionsForm()
    chosen = {
        str(index): request.form.get(f"col-{index}", imports.IGNORE)
        for index in range(len(record_.headers))
    }
    if not form.validate_on_submit():
        return _mapping_page(record_, form, chosen, 400)
    try:
        imports.start_check(
            Session(),
            record_,
            chosen,
            {
                "segment_ids": [v for v in request.form.getlist("segments") if v.isdigit()],
                "existing": form.existing.data,
                "consent_basis": form.consent_basis.data,
                "all_or_nothing": form.all_or_nothing.data,
            },
            _user_id(),
        )
    except imports.ImportOptionsError as error:
        Session.rollback()
        flash(str(error), "error")
        return _mapping_page(_import(import_id), form, chosen, 400)
    return redirect(url_for("imports.show", import_id=import_id))


def _segment_names(record_: Import) -> list[Segment]:
    ids = record_.options.get("segment_ids", [])
    return list(Session.scalars(select(Segment).where(Segment.id.in_(ids)))) if ids else []


@bp.route("/<int:import_id>")
@roles_required(*IMPORTERS)
def show(import_id: int) -> ResponseReturnValue:
    record_ = _import(import_id)
    report = imports.report_path(_config(), record_)
    return render_template(
        "imports/show.html",
        record=record_,
        running=record_.status in RUNNING,
        segments=_segment_names(record_),
        has_report=report.exists() and record_.status not in RUNNING,
        form=FlaskForm(),
    )


@bp.route("/<int:import_id>/progression")
@roles_required(*IMPORTERS)
def progress(import_id: int) -> ResponseReturnValue:
    """The fragment the progress page polls (htmx); once finished, the page reloads."""
    record_ = _import(import_id)
    response = Response(
        render_template("imports/_progress.html", record=record_, running=record_.status in RUNNING)
    )
    if record_.status not in RUNNING:
        response.headers["HX-Refresh"] = "true"
    return response


@bp.route("/<int:import_id>/lancer", methods=["POST"])
@roles_required(*IMPORTERS)
def launch(import_id: int) -> ResponseReturnValue:
    record_ = _import(import_id)
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        imports.start_import(Session(), record_, _user_id())
    except imports.ImportOptionsError as error:
        flash(str(error), "error")
    return redirect(url_for("imports.show", import_id=import_id))


@bp.route("/<int:import_id>/rapport.csv")
@roles_required(*IMPORTERS)
def report(import_id: int) -> ResponseReturnValue:
    record_ = _import(import_id)
    path = imports.report_path(_config(), record_)
    if record_.status in RUNNING or not path.exists():
        abort(404)
    name = f"rapport-import-{record_.id}.csv"
    return send_file(path, mimetype=exports.CSV_MIMETYPE, as_attachment=True, download_name=name)


# ------------------------------------------------------------------ export


@bp.route("/export")
@roles_required(*EXPORTERS)
def export_page() -> ResponseReturnValue:
    return render_template("imports/export.html", segments=_static_segments())


def _search() -> list[Any]:
    """The list page's filters, when the export is of a search (free text, place,
    status, or a rule segment) rather than of a whole list segment."""
    args = {k: (request.args.get(k) or "").strip() for k in FILTERS}
    segment = Session.get(Segment, int(args["segment"])) if args["segment"].isdigit() else None
    searching = any(args[k] for k in ("q", "statut", "commune", "epci")) or (
        segment is not None and segment.kind is SegmentKind.RULE
    )
    return search_clauses(Session(), args) if searching else []


def _export_segment() -> Segment | None:
    raw = request.args.get("segment") or ""
    if not raw or _search():
        return None
    segment = Session.get(Segment, int(raw)) if raw.isdigit() else None
    if segment is None or segment.kind != SegmentKind.STATIC:
        abort(404)
    return segment


def _audit_export(segment: Segment | None, file_format: str) -> None:
    record(
        Session(),
        _user_id(),
        "subscribers.exported",
        "segment" if segment else None,
        segment.id if segment else None,
        {
            "format": file_format,
            "segment": segment.name if segment else None,
            **(
                {"filters": {k: v for k in FILTERS if (v := request.args.get(k))}}
                if _search()
                else {}
            ),
        },
    )
    Session.commit()  # audited before the first byte leaves


def _export_name(segment: Segment | None, extension: str) -> str:
    return f"abonnes-{segment.slug if segment else 'tous'}.{extension}"


@bp.route("/export/abonnes.csv")
@roles_required(*EXPORTERS)
def export_csv() -> ResponseReturnValue:
    segment = _export_segment()
    _audit_export(segment, "csv")
    rows = exports.subscriber_rows(Session(), segment, _search())
    response = Response(
        stream_with_context(exports.csv_chunks(rows, exports.header())),
        mimetype=exports.CSV_MIMETYPE,
    )
    name = _export_name(segment, "csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.route("/export/abonnes.xlsx")
@roles_required(*EXPORTERS)
def export_xlsx() -> ResponseReturnValue:
    segment = _export_segment()
    _audit_export(segment, "xlsx")
    rows = exports.subscriber_rows(Session(), segment, _search())
    handle = exports.xlsx_file(rows, exports.header(), segment.name if segment else _("Abonnés"))
    response = Response(exports.file_chunks(handle), mimetype=exports.XLSX_MIMETYPE)
    name = _export_name(segment, "xlsx")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
