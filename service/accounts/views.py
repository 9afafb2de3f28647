from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import login_user, logout_user

from service.accounts import services
from service.accounts.forms import LoginForm
from service.accounts.models import User
from service.accounts.permissions import public, staff_required
from service.db import Session
from service.extensions import limiter, login_manager
from service.i18n import LOCALES

bp = Blueprint("accounts", __name__)


@login_manager.user_loader  # type: ignore[untyped-decorator]
def _load_user(user_id: str) -> User | None:
    if not user_id.isdigit():
        return None
    user = Session.get(User, int(user_id))
    return user if user is not None and user.active else None


def _safe_next(target: str | None) -> str:
    """Only same-site paths: ``next`` must never become an open redirect."""
    if not target:
        return url_for("dashboard.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.home")
    if "\\" in target:
        return url_for("dashboard.home")
    return target


def _submitted_account() -> str:
    return "login:" + (request.form.get("email") or "").strip().lower()


def _failed(response: Response) -> bool:
    return response.status_code == 401


@bp.route("/login", methods=["GET", "POST"])
@public
# Failed attempts only: per client address, and per account whatever the address.
@limiter.limit("10 per minute;50 per hour", methods=["POST"], deduct_when=_failed)
@limiter.limit(
    "10 per 15 minutes", methods=["POST"], key_func=_submitted_account, deduct_when=_failed
)
def login() -> ResponseReturnValue:
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = services.authenticate(Session(), form.email.data or "", form.password.data or "")
        if user is not None:
            session.clear()
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        # Same words whether the account exists, is disabled or the password is wrong.
        error = _("Adresse e-mail ou mot de passe incorrect.")
    status = 401 if error else 200
    return render_template("accounts/login.html", form=form, error=error), status


@bp.route("/logout", methods=["POST"])
@staff_required
def logout() -> ResponseReturnValue:
    logout_user()
    session.clear()
    return redirect(url_for("accounts.login"))


@bp.route("/lang/<code>", methods=["POST"])
@public
def set_language(code: str) -> ResponseReturnValue:
    if code in LOCALES:
        session["lang"] = code
    return redirect(_safe_next(request.form.get("next")))
