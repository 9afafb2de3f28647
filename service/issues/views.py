"""The issue editor: list, compose with blocks, preview, test, review."""

import email
import email.policy
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
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import MultiDict

from emails import (
    HeaderInjectionError,
    Personaliser,
    Recipient,
    RenderError,
    build_template,
    compile_variant,
)
from emails.blocks import REGISTRY, BlockValidationError, get_kind, to_formdata
from emails.checks import Finding
from emails.formatting import parse_local
from service.accounts.models import Role, User
from service.accounts.permissions import ALL_STAFF, roles_required
from service.assets import services as assets
from service.audience.models import Segment
from service.audit.labels import actor_name, audit_label
from service.audit.models import AuditEntry
from service.audit.services import history
from service.db import Session, utcnow
from service.delivery import services as delivery
from service.delivery.window import Window
from service.extensions import limiter
from service.issues import services
from service.issues.forms import (
    CommentForm,
    NewIssueForm,
    SettingsForm,
    TestSendForm,
    VersionForm,
    add_empty_rows,
    block_form,
    parse_version,
)
from service.issues.models import Block, Issue, IssueStatus
from service.issues.rendering import issue_data, presend_checks, render_settings
from service.issues.states import TransitionError
from service.newsletters.models import Newsletter

bp = Blueprint("issues", __name__, url_prefix="/numeros")

EDITORS = (Role.ADMIN, Role.PUBLISHER, Role.EDITOR)
PUBLISHERS = (Role.ADMIN, Role.PUBLISHER)
PREVIEW_POLICY = (
    "sandbox; default-src 'none'; img-src 'self' data: https:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'"
)


STATUS_LABELS = {
    IssueStatus.DRAFT: _l("Brouillon"),
    IssueStatus.IN_REVIEW: _l("En relecture"),
    IssueStatus.APPROVED: _l("Approuvé"),
    IssueStatus.SCHEDULED: _l("Programmé"),
    IssueStatus.SENDING: _l("En cours d'envoi"),
    IssueStatus.PAUSED: _l("En pause"),
    IssueStatus.SENT: _l("Envoyé"),
    IssueStatus.CANCELLED: _l("Annulé"),
}


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "status_label": lambda status: STATUS_LABELS[IssueStatus(status)],
        "audit_label": audit_label,
    }


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _issue(issue_id: int) -> Issue:
    issue = Session.get(Issue, issue_id)
    if issue is None:
        abort(404)
    return issue


def _block(issue: Issue, block_id: int) -> Block:
    block = next((b for b in issue.blocks if b.id == block_id), None)
    if block is None:
        abort(404)
    return block


def _segments() -> list[Segment]:
    return list(Session.scalars(select(Segment).order_by(Segment.name)))


def _segment_ids() -> list[int]:
    return [int(v) for v in request.form.getlist("segments") if v.isdigit()]


@bp.route("/")
@roles_required(*ALL_STAFF)
def index() -> ResponseReturnValue:
    query = (request.args.get("q") or "").strip()
    status = request.args.get("statut") or ""
    statement = select(Issue).order_by(Issue.updated_at.desc())
    if query:
        like = f"%{query}%"
        statement = statement.where(or_(Issue.title.ilike(like), Issue.subject.ilike(like)))
    if status in IssueStatus.__members__.values():
        statement = statement.where(Issue.status == IssueStatus(status))
    issues = list(Session.scalars(statement.limit(200)))
    form = NewIssueForm()
    form.newsletter_id.choices = [(n.id, n.name) for n in Session.scalars(select(Newsletter))]
    return render_template(
        "issues/index.html",
        issues=issues,
        query=query,
        status=status,
        form=form,
        statuses=list(IssueStatus),
    )


@bp.route("/nouveau", methods=["POST"])
@roles_required(*EDITORS)
def create() -> ResponseReturnValue:
    form = NewIssueForm()
    form.newsletter_id.choices = [(n.id, n.name) for n in Session.scalars(select(Newsletter))]
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(str(error), "error")
        return redirect(url_for("issues.index"))
    issue = services.create_issue(Session(), form.newsletter_id.data, form.title.data, _user())
    flash(_("Numéro créé : ajoutez-lui des blocs."), "success")
    return redirect(url_for("issues.edit", issue_id=issue.id))


def _findings(issue: Issue) -> tuple[list[Finding], str | None]:
    try:
        return presend_checks(issue, current_app.extensions["lettrine_config"]), None
    except (RenderError, BlockValidationError, HeaderInjectionError) as error:
        return [], str(error)


def _editor(
    issue: Issue,
    *,
    settings_form: SettingsForm | None = None,
    status: int = 200,
    selected_segments: set[int] | None = None,
    **extra: Any,
) -> ResponseReturnValue:
    if settings_form is None:
        settings_form = SettingsForm(
            data={
                "version": issue.version,
                "title": issue.title,
                "subject": issue.subject,
                "preheader": issue.preheader,
            }
        )
    findings, render_error = _findings(issue)
    segment = request.args.get("segment") or ""
    width = "mobile" if request.args.get("largeur") == "mobile" else "desktop"
    return render_template(
        "issues/edit.html",
        issue=issue,
        settings_form=settings_form,
        version_form=VersionForm(data={"version": issue.version}),
        comment_form=CommentForm(data={"version": issue.version}),
        test_form=TestSendForm(data={"segment": segment}),
        kinds=REGISTRY,
        segments=_segments(),
        selected_segments=(
            selected_segments if selected_segments is not None else {s.id for s in issue.segments}
        ),
        findings=findings,
        errors=sum(1 for f in findings if f.severity == "error"),
        render_error=render_error,
        segment=segment,
        width=width,
        history=_history(issue),
        can_publish=_user().role in PUBLISHERS,
        editable=issue.status in services.EDITABLE,
        sent_back=_last_comment(issue),
        window_notice=_window_notice(issue) if issue.status is IssueStatus.APPROVED else None,
        **(
            _progress_context(issue)
            if issue.status
            in {IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT, IssueStatus.CANCELLED}
            else {"counts": None}
        ),
        **extra,
    ), status


def _last_comment(issue: Issue) -> tuple[AuditEntry, str] | None:
    """The publisher's comment when the issue was last sent back, while still in draft."""
    if issue.status is not IssueStatus.DRAFT:
        return None
    for entry, name in _history(issue):
        if entry.action == "issue.sent_back":
            return entry, name
        if entry.action in {"issue.submitted", "issue.approved"}:
            return None
    return None


def _history(issue: Issue) -> list[tuple[AuditEntry, str]]:
    entries = history(Session(), "issue", issue.id)
    names = {u.id: u.name for u in Session.scalars(select(User))}
    return [(entry, actor_name(entry.actor_id, names)) for entry in reversed(entries)]


@bp.route("/<int:issue_id>")
@roles_required(*EDITORS)
def edit(issue_id: int) -> ResponseReturnValue:
    return _editor(_issue(issue_id))


@bp.route("/<int:issue_id>/reglages", methods=["POST"])
@roles_required(*EDITORS)
def save_settings(issue_id: int) -> ResponseReturnValue:
    issue = _issue(issue_id)
    form = SettingsForm()
    if not form.validate_on_submit():
        return _editor(issue, settings_form=form, status=400, selected_segments=set(_segment_ids()))
    try:
        services.update_settings(
            Session(),
            issue,
            _user(),
            expected_version=parse_version(form.version.data),
            title=form.title.data,
            subject=form.subject.data,
            preheader=form.preheader.data or "",
            segment_ids=_segment_ids(),
        )
    except services.StaleIssueError as error:
        Session.rollback()
        flash(str(error), "error")
        current = _issue(issue_id)
        form.version.data = current.version  # saving again, knowingly, goes through
        return _editor(
            current, settings_form=form, status=409, selected_segments=set(_segment_ids())
        )
    except services.IssueError as error:
        flash(str(error), "error")
        return redirect(url_for("issues.edit", issue_id=issue_id))
    flash(_("Réglages enregistrés."), "success")
    return redirect(url_for("issues.edit", issue_id=issue_id))


def _block_page(
    issue: Issue,
    kind: str,
    form: Any,
    *,
    block: Block | None,
    version: int | None,
    selected: set[int],
    status: int = 200,
) -> ResponseReturnValue:
    return render_template(
        "issues/block.html",
        issue=issue,
        kind=get_kind(kind),
        form=form,
        block=block,
        version=version,
        segments=_segments(),
        selected_segments=selected,
        version_form=VersionForm(data={"version": version}),
    ), status


@bp.route("/<int:issue_id>/blocs/nouveau/<kind>", methods=["GET", "POST"])
@roles_required(*EDITORS)
def new_block(issue_id: int, kind: str) -> ResponseReturnValue:
    issue = _issue(issue_id)
    if kind not in REGISTRY:
        abort(404)
    return _block_editor(issue, kind, None)


@bp.route("/<int:issue_id>/blocs/<int:block_id>", methods=["GET", "POST"])
@roles_required(*EDITORS)
def edit_block(issue_id: int, block_id: int) -> ResponseReturnValue:
    issue = _issue(issue_id)
    block = _block(issue, block_id)
    return _block_editor(issue, block.kind, block)


def _uploaded(formdata: MultiDict[str, str]) -> MultiDict[str, str]:
    """Files chosen in the block form become stored assets whose URLs fill the fields."""
    config = current_app.extensions["lettrine_config"]
    data = formdata.copy()
    for name, storage in request.files.items(multi=True):
        try:
            if not storage or not storage.filename:
                continue
            prefix = name.removesuffix("file")
            kind: assets.Kind = "image" if prefix == "image-" else "document"
            asset = assets.store_upload(Session(), storage, kind=kind, user_id=_user().id)
        finally:
            storage.close()  # spooled to a temporary file for large uploads
        data.setlist(f"{prefix}url", [assets.public_url(config, asset)])
        data.setlist(f"{prefix}size", [str(asset.size)])
        if kind == "document":
            data.setlist(f"{prefix}format", [assets.format_name(asset)])
    return data


def _block_editor(issue: Issue, kind: str, block: Block | None) -> ResponseReturnValue:
    if request.method == "GET":
        form = block_form(kind, to_formdata(block.data) if block else None)
        add_empty_rows(form)
        selected = {s.id for s in block.segments} if block else set()
        return _block_page(issue, kind, form, block=block, version=issue.version, selected=selected)
    version = parse_version(request.form.get("version"))
    selected = set(_segment_ids())
    try:
        formdata = _uploaded(request.form)
    except assets.UploadError as error:  # keep everything typed so far
        form = block_form(kind, request.form)
        form.validate()
        add_empty_rows(form)
        flash(str(error), "error")
        return _block_page(
            issue, kind, form, block=block, version=version, selected=selected, status=400
        )
    form = block_form(kind, formdata)
    if request.form.get("action") == "add-row":
        add_empty_rows(form)
        return _block_page(issue, kind, form, block=block, version=version, selected=selected)
    return _save_block(issue, kind, block, form, formdata, version, selected)


def _save_block(  # noqa: PLR0917 - one request's worth of state
    issue: Issue,
    kind: str,
    block: Block | None,
    form: Any,
    formdata: MultiDict[str, str],
    version: int | None,
    selected: set[int],
) -> ResponseReturnValue:
    image_error = _image_url_error(formdata)
    try:
        if image_error:
            raise BlockValidationError(kind, {"image": {"url": [image_error]}})
        data = get_kind(kind).validate_form(form)
        saved = services.save_block(
            Session(),
            issue,
            _user(),
            kind=kind,
            data=data,
            segment_ids=sorted(selected),
            expected_version=version,
            block=block,
        )
    except BlockValidationError:
        if image_error:
            form.validate()
            form.image.form.url.errors = [*form.image.form.url.errors, image_error]
        add_empty_rows(form)
        flash(_("Le bloc n'a pas été enregistré : corrigez les champs signalés."), "error")
        return _block_page(
            issue, kind, form, block=block, version=version, selected=selected, status=400
        )
    except services.StaleIssueError as error:
        Session.rollback()
        flash(str(error), "error")
        add_empty_rows(form)
        current = _issue(issue.id)
        # The form now carries the current version: saving again, knowingly, goes through.
        return _block_page(
            current, kind, form, block=block, version=current.version, selected=selected, status=409
        )
    except services.IssueError as error:
        flash(str(error), "error")
        return redirect(url_for("issues.edit", issue_id=issue.id))
    flash(_("Bloc enregistré."), "success")
    return redirect(url_for("issues.edit", issue_id=issue.id, _anchor=f"bloc-{saved.id}"))


def _image_url_error(formdata: MultiDict[str, str]) -> str | None:
    url = (formdata.get("image-url") or "").strip()
    if not url or url.startswith(current_app.extensions["lettrine_config"].base_url + "/"):
        return None
    return assets.is_public_http_url(url)


@bp.route("/<int:issue_id>/blocs/<int:block_id>/deplacer", methods=["POST"])
@roles_required(*EDITORS)
def move_block(issue_id: int, block_id: int) -> ResponseReturnValue:
    issue = _issue(issue_id)
    delta = -1 if request.form.get("sens") == "haut" else 1
    try:
        services.move_block(
            Session(),
            issue,
            _user(),
            block_id=block_id,
            delta=delta,
            expected_version=parse_version(request.form.get("version")),
        )
    except services.IssueError as error:
        Session.rollback()
        flash(str(error), "error")
    return redirect(url_for("issues.edit", issue_id=issue_id, _anchor=f"bloc-{block_id}"))


@bp.route("/<int:issue_id>/blocs/ordre", methods=["POST"])
@roles_required(*EDITORS)
def reorder(issue_id: int) -> ResponseReturnValue:
    issue = _issue(issue_id)
    ids = [int(v) for v in request.form.getlist("ordre") if v.isdigit()]
    try:
        services.reorder_blocks(
            Session(), issue, _user(), ids, parse_version(request.form.get("version"))
        )
    except services.IssueError as error:
        Session.rollback()
        return {"error": str(error)}, 409
    return {"version": issue.version}


@bp.route("/<int:issue_id>/blocs/<int:block_id>/supprimer", methods=["GET", "POST"])
@roles_required(*EDITORS)
def delete_block(issue_id: int, block_id: int) -> ResponseReturnValue:
    issue = _issue(issue_id)
    block = _block(issue, block_id)
    if request.method == "GET":
        return render_template(
            "issues/confirm.html",
            issue=issue,
            block=block,
            kind=get_kind(block.kind),
            form=VersionForm(data={"version": issue.version}),
        )
    try:
        services.delete_block(
            Session(), issue, _user(), block, parse_version(request.form.get("version"))
        )
    except services.IssueError as error:
        Session.rollback()
        flash(str(error), "error")
        return redirect(url_for("issues.edit", issue_id=issue_id))
    flash(_("Bloc supprimé."), "success")
    return redirect(url_for("issues.edit", issue_id=issue_id))


@bp.route("/<int:issue_id>/dupliquer", methods=["POST"])
@roles_required(*EDITORS)
def duplicate(issue_id: int) -> ResponseReturnValue:
    copy_ = services.duplicate_issue(Session(), _issue(issue_id), _user())
    flash(_("Numéro dupliqué : voici la copie, en brouillon."), "success")
    return redirect(url_for("issues.edit", issue_id=copy_.id))


@bp.route("/<int:issue_id>/supprimer", methods=["GET", "POST"])
@roles_required(*EDITORS)
def delete(issue_id: int) -> ResponseReturnValue:
    issue = _issue(issue_id)
    if request.method == "GET":
        return render_template(
            "issues/confirm.html",
            issue=issue,
            block=None,
            kind=None,
            form=VersionForm(data={"version": issue.version}),
        )
    try:
        services.delete_issue(Session(), issue, _user(), parse_version(request.form.get("version")))
    except services.IssueError as error:
        flash(str(error), "error")
        return redirect(url_for("issues.edit", issue_id=issue_id))
    flash(_("Brouillon supprimé."), "success")
    return redirect(url_for("issues.index"))


@bp.route("/<int:issue_id>/apercu")
@roles_required(*EDITORS)
def preview(issue_id: int) -> ResponseReturnValue:
    """The real email, untracked, for the sandboxed iframe (or as text)."""
    issue = _issue(issue_id)
    config = current_app.extensions["lettrine_config"]
    segment = request.args.get("segment") or None
    data = issue_data(issue, config=config)
    settings = render_settings(config, issue.id)
    try:
        variant = compile_variant(data, [segment] if segment else None)
        template = build_template(data, variant, settings, tracked=False)
    except (RenderError, BlockValidationError, HeaderInjectionError) as error:
        return Response(str(error), status=422, mimetype="text/plain")
    raw = Personaliser(data, template, settings).render(
        Recipient(0, "prenom.nom@exemple.fr", "Prénom", "Nom")
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    wanted = "plain" if request.args.get("format") == "texte" else "html"
    part = message.get_body((wanted,))
    body = part.get_content() if part is not None else ""
    if wanted == "plain":
        return Response(body, mimetype="text/plain")
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _user_key() -> str:
    return f"test-send:{current_user.get_id()}"


@bp.route("/<int:issue_id>/test", methods=["POST"])
@roles_required(*EDITORS)
# Test sends go to any address, signed by the agency: a cap per person keeps a stolen
# account from turning them into a mailing tool.
@limiter.limit("30 per hour", key_func=_user_key)
def send_test(issue_id: int) -> ResponseReturnValue:
    issue = _issue(issue_id)
    form = TestSendForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        sent = services.send_test(
            Session(),
            issue,
            _user(),
            current_app.extensions["lettrine_config"],
            raw_addresses=form.addresses.data or "",
            segment_slug=form.segment.data or None,
        )
    except (services.IssueError, HeaderInjectionError, RenderError) as error:
        flash(str(error), "error")
        return _editor(issue, status=400, test_addresses=form.addresses.data)
    flash(_("Message de test envoyé à %(to)s.", to=", ".join(sent)), "success")
    return redirect(url_for("issues.edit", issue_id=issue_id, _anchor="test"))


def _transition(issue_id: int, action: str) -> ResponseReturnValue:
    issue = _issue(issue_id)
    form = CommentForm()
    if not form.validate_on_submit():
        abort(400)
    _apply_transition(issue, action, form)
    return redirect(url_for("issues.edit", issue_id=issue_id, _anchor="relecture"))


def _apply_transition(issue: Issue, action: str, form: CommentForm) -> None:
    try:
        if parse_version(form.version.data) != issue.version:
            raise services.StaleIssueError(
                "Ce numéro a changé depuis l'ouverture de la page : relisez-le avant de décider."
            )
        if action == "submit":
            findings, render_error = _findings(issue)
            errors = sum(1 for f in findings if f.severity == "error") + (1 if render_error else 0)
            services.submit_for_review(Session(), issue, _user(), errors)
            flash(_("Numéro soumis pour relecture."), "success")
        elif action == "approve":
            services.approve(Session(), issue, _user())
            flash(_("Numéro approuvé : il peut être programmé ou envoyé."), "success")
        else:
            services.send_back(Session(), issue, _user(), form.comment.data or "")
            flash(_("Numéro renvoyé au rédacteur avec votre commentaire."), "success")
    except TransitionError:
        Session.rollback()
        flash(_("Cette action n'est pas possible dans l'état actuel du numéro."), "error")
    except services.IssueError as error:
        Session.rollback()
        flash(str(error), "error")


@bp.route("/<int:issue_id>/soumettre", methods=["POST"])
@roles_required(*EDITORS)
def submit(issue_id: int) -> ResponseReturnValue:
    return _transition(issue_id, "submit")


@bp.route("/<int:issue_id>/approuver", methods=["POST"])
@roles_required(*PUBLISHERS)
def approve(issue_id: int) -> ResponseReturnValue:
    return _transition(issue_id, "approve")


@bp.route("/<int:issue_id>/renvoyer", methods=["POST"])
@roles_required(*PUBLISHERS)
def send_back(issue_id: int) -> ResponseReturnValue:
    return _transition(issue_id, "send_back")


# --- Sending (publishers) ---------------------------------------------------------------


@bp.route("/<int:issue_id>/envoyer", methods=["POST"])
@roles_required(*PUBLISHERS)
def send(issue_id: int) -> ResponseReturnValue:
    """Send an approved issue now, or schedule it (wall-clock time in Paris)."""
    issue = _issue(issue_id)
    form = VersionForm()
    if not form.validate_on_submit():
        abort(400)
    raw = (request.form.get("at") or "").strip()
    at = None
    if raw:
        try:
            at = parse_local(raw.replace(" ", "T")[:16])
        except ValueError:
            flash(_("Date d'envoi non reconnue : « %(value)s ».", value=raw), "error")
            return redirect(url_for("issues.edit", issue_id=issue_id, _anchor="envoi"))
    try:
        count = delivery.start_sending(Session(), issue, _user(), at=at)
    except (delivery.DeliveryError, TransitionError) as error:
        Session.rollback()
        flash(
            str(error) or _("Cette action n'est pas possible dans l'état actuel du numéro."),
            "error",
        )
        return redirect(url_for("issues.edit", issue_id=issue_id, _anchor="envoi"))
    if at is not None and issue.status is IssueStatus.SCHEDULED:
        flash(_("Envoi programmé."), "success")
    else:
        flash(_("Envoi lancé vers %(count)d destinataires.", count=count), "success")
    return redirect(url_for("issues.edit", issue_id=issue_id, _anchor="envoi"))


@bp.route("/<int:issue_id>/controle", methods=["POST"])
@roles_required(*PUBLISHERS)
def control(issue_id: int) -> ResponseReturnValue:
    """Pause, resume or cancel a sending (acts between two messages)."""
    issue = _issue(issue_id)
    form = VersionForm()
    if not form.validate_on_submit():
        abort(400)
    action = request.form.get("action")
    done = {
        "pause": _("Envoi mis en pause : les messages en cours de remise partent, puis plus rien."),
        "reprendre": _("Envoi repris."),
        "annuler": _("Envoi annulé : les messages non partis ne le seront pas."),
    }
    if action not in done:
        abort(400)
    try:
        if action == "annuler":
            delivery.cancel(Session(), issue, _user())
        else:
            delivery.set_paused(Session(), issue, _user(), paused=action == "pause")
    except (TransitionError, StaleDataError):
        # StaleDataError: a worker changed the issue meanwhile (it finished, say).
        Session.rollback()
        flash(_("Cette action n'est pas possible dans l'état actuel du numéro."), "error")
    else:
        flash(done[action], "success")
    return redirect(url_for("issues.edit", issue_id=issue_id, _anchor="envoi"))


@bp.route("/<int:issue_id>/progression")
@roles_required(*EDITORS)
def progress(issue_id: int) -> ResponseReturnValue:
    """The live progress fragment (htmx polls it while the issue is sending)."""
    issue = _issue(issue_id)
    return render_template("issues/_progress.html", issue=issue, **_progress_context(issue))


def _window_notice(issue: Issue) -> str | None:
    """Said before sending: outside the newsletter's window, messages will wait."""
    opens = Window.of(issue.newsletter).next_open(utcnow())
    if opens is None:
        return None
    notice: str = _(
        "Hors de la plage d'envoi de la lettre : les messages partiront le %(date)s.",
        date=format_datetime(opens, "short"),
    )
    return notice


def _progress_context(issue: Issue) -> dict[str, Any]:
    counts = delivery.progress(Session(), issue.id)
    rate, eta = delivery.pace(Session(), issue.id, counts)
    return {"counts": counts, "rate": rate, "eta": eta}


@bp.route("/<int:issue_id>/inconnus", methods=["GET", "POST"])
@roles_required(*PUBLISHERS)
def unknown(issue_id: int) -> ResponseReturnValue:
    """Messages whose outcome is unknown: an operator confirms them or sends them again."""
    issue = _issue(issue_id)
    form = VersionForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        action = request.form.get("action")
        if action not in {"confirmer", "renvoyer"}:
            abort(400)
        ids = [int(v) for v in request.form.getlist("delivery") if v.isdigit()]
        if not ids:
            flash(_("Cochez au moins un message."), "error")
            return redirect(url_for("issues.unknown", issue_id=issue_id))
        try:
            done = delivery.resolve_unknown(
                Session(), issue, _user(), ids, resend=action == "renvoyer"
            )
        except TransitionError:
            Session.rollback()
            flash(_("Cette action n'est pas possible dans l'état actuel du numéro."), "error")
            return redirect(url_for("issues.unknown", issue_id=issue_id))
        if action == "renvoyer":
            flash(_("%(count)d message(s) remis dans la file d'envoi.", count=done), "success")
        else:
            flash(_("%(count)d message(s) confirmé(s) comme remis.", count=done), "success")
        return redirect(url_for("issues.unknown", issue_id=issue_id))
    return render_template(
        "issues/unknown.html",
        issue=issue,
        rows=delivery.unknown_deliveries(Session(), issue.id),
        version_form=VersionForm(data={"version": issue.version}),
    )
