import math
from urllib.parse import quote

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.datastructures import FileStorage

from service.accounts.models import Role
from service.accounts.permissions import roles_required
from service.assets import services as assets
from service.assets.models import Asset
from service.db import Session
from service.newsletters import services
from service.newsletters.forms import TRACKING_CHOICES, TRACKING_HELP, NewsletterForm
from service.newsletters.models import Newsletter, TrackingMode

bp = Blueprint("newsletters", __name__, url_prefix="/lettres")


def _get(newsletter_id: int) -> Newsletter:
    newsletter = Session.get(Newsletter, newsletter_id)
    if newsletter is None:
        abort(404)
    return newsletter


def _logo_url(asset_id: int | None) -> str | None:
    asset = Session.get(Asset, asset_id) if asset_id is not None else None
    return None if asset is None else assets.public_path(asset)


def _contrast_warning(color: str | None) -> str | None:
    if not color or not services.COLOR_RE.match(color):
        return None
    ratio = services.white_text_contrast(color)
    if ratio >= services.AA_CONTRAST:
        return None
    return str(
        _(
            "Le texte blanc sur cette couleur est peu lisible : contraste de %(ratio)s:1, "
            "4,5:1 au moins est demandé (WCAG AA). Choisissez une couleur plus foncée.",
            # Rounded down: a failing 4.46 must not read as the required 4,5.
            ratio=f"{math.floor(ratio * 10) / 10:.1f}".replace(".", ","),
        )
    )


def _swatch(color: str | None) -> str | None:
    """A data: image of white text on the colour (inline styles are barred by the CSP)."""
    if not color or not services.COLOR_RE.match(color):
        return None
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' width='200' height='40'>"
        f"<rect width='200' height='40' rx='6' fill='{color}'/>"
        "<text x='100' y='26' font-family='sans-serif' font-size='16' fill='#ffffff' "
        "text-anchor='middle'>Lettrine</text></svg>"
    )
    return "data:image/svg+xml," + quote(svg)


def _settings(form: NewsletterForm, logo_asset_id: int | None) -> services.NewsletterSettings:
    return services.NewsletterSettings(
        name=form.name.data,
        sender_name=form.sender_name.data,
        sender_email=form.sender_email.data,
        reply_to=form.reply_to.data or None,
        legal_footer=form.legal_footer.data or "",
        postal_address=form.postal_address.data,
        main_color=form.main_color.data,
        tracking_mode=TrackingMode(form.tracking_mode.data),
        tracking_retention_days=form.tracking_retention_days.data,
        logo_asset_id=logo_asset_id,
        send_window_start=form.send_window_start.data,
        send_window_end=form.send_window_end.data,
        send_weekdays_only=form.send_weekdays_only.data,
        send_skip_holidays=form.send_skip_holidays.data,
    )


def _chosen_logo(form: NewsletterForm) -> FileStorage | None:
    data = form.logo.data
    return data if isinstance(data, FileStorage) and data.filename else None


def _store_logo(form: NewsletterForm, current: int | None) -> tuple[bool, int | None]:
    """Store the logo chosen in the form, if any: (ok, logo asset id to keep)."""
    if (upload := _chosen_logo(form)) is None:
        return True, None if form.remove_logo.data else current
    try:
        asset = assets.store_upload(Session(), upload, kind="image", user_id=current_user.id)
    except assets.UploadError as error:
        form.logo.errors = [*form.logo.errors, str(error)]
        return False, current
    return True, asset.id


def _render(
    form: NewsletterForm, newsletter: Newsletter | None, status: int = 200
) -> ResponseReturnValue:
    if form.errors and _chosen_logo(form) is not None and not form.logo.errors:
        # Browsers never send a file twice: say so rather than lose it silently.
        form.logo.errors = [_("Le logo n'a pas été enregistré : choisissez-le à nouveau.")]
    logo_id = newsletter.logo_asset_id if newsletter is not None else None
    return render_template(
        "newsletters/form.html",
        form=form,
        newsletter=newsletter,
        logo_url=_logo_url(logo_id),
        tracking_help=TRACKING_HELP,
        contrast_warning=_contrast_warning(form.main_color.data),
        swatch=_swatch(form.main_color.data),
    ), status


@bp.route("/")
@roles_required(Role.ADMIN)
def index() -> ResponseReturnValue:
    newsletters = services.list_newsletters(Session())
    return render_template(
        "newsletters/index.html",
        newsletters=newsletters,
        tracking_labels={choice.value: choice.label for choice in TRACKING_CHOICES},
    )


@bp.route("/nouvelle", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def create() -> ResponseReturnValue:
    form = NewsletterForm()
    if not form.is_submitted():
        form.main_color.data = "#1d4f91"
        form.tracking_mode.data = TrackingMode.INDIVIDUAL.value
        form.tracking_retention_days.data = 365
    if not form.validate_on_submit():
        return _render(form, None, 422 if form.is_submitted() else 200)
    stored, logo_id = _store_logo(form, None)
    if not stored:
        return _render(form, None, 422)
    newsletter = services.create_newsletter(
        Session(), _settings(form, logo_id), actor_id=current_user.id
    )
    flash(_("Lettre « %(name)s » créée.", name=newsletter.name), "success")
    if warning := _contrast_warning(newsletter.main_color):
        flash(warning, "warning")
    return redirect(url_for("newsletters.edit", newsletter_id=newsletter.id))


@bp.route("/<int:newsletter_id>", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit(newsletter_id: int) -> ResponseReturnValue:
    newsletter = _get(newsletter_id)
    form = NewsletterForm(obj=newsletter)
    if not form.is_submitted():
        form.tracking_mode.data = newsletter.tracking_mode.value
    if not form.validate_on_submit():
        return _render(form, newsletter, 422 if form.is_submitted() else 200)
    stored, logo_id = _store_logo(form, newsletter.logo_asset_id)
    if not stored:
        return _render(form, newsletter, 422)
    services.update_newsletter(
        Session(), newsletter, _settings(form, logo_id), actor_id=current_user.id
    )
    flash(_("Réglages enregistrés."), "success")
    if warning := _contrast_warning(newsletter.main_color):
        flash(warning, "warning")
    return redirect(url_for("newsletters.edit", newsletter_id=newsletter.id))
