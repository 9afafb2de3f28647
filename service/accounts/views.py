import logging
from email.message import EmailMessage
from functools import partial
from typing import Protocol
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from sqlalchemy.orm import Session as OrmSession

from service.accounts import notifications, services
from service.accounts.forms import (
    ROLE_HELP,
    ROLE_LABELS,
    ForgotPasswordForm,
    InviteForm,
    LoginForm,
    RoleForm,
    SetPasswordForm,
    UserForm,
)
from service.accounts.models import Role, User
from service.accounts.permissions import public, roles_required, staff_required
from service.accounts.tokens import InvalidTokenError, Purpose, read_token
from service.config import Config
from service.db import Session
from service.delivery.sender import SendError
from service.extensions import limiter, login_manager
from service.i18n import LOCALES

log = logging.getLogger(__name__)

bp = Blueprint("accounts", __name__)

# The invitation whose email just failed: the users page offers to send it again, once.
UNSENT_INVITATION = "accounts.unsent_invitation"


@login_manager.user_loader  # type: ignore[untyped-decorator]
def _load_user(session_id: str) -> User | None:
    user_id, _, fingerprint = session_id.partition(":")
    if not user_id.isdigit():
        return None
    user = Session.get(User, int(user_id))
    if user is None or not user.active or user.get_id() != session_id or not fingerprint:
        return None
    return user


def _config() -> Config:
    config: Config = current_app.extensions["lettrine_config"]
    return config


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


# --- Users (administrators only) -------------------------------------------------------
# Actions name their account in the form body, not the URL: every action is a POST
# carrying its CSRF token, and the URL map stays free of per-user routes.

REFUSALS = {
    services.SelfChangeError: _l(
        "Vous ne pouvez ni retirer votre propre rôle d'administration ni désactiver votre "
        "propre compte : demandez-le à un autre administrateur."
    ),
    services.LastAdminError: _l(
        "Il doit toujours rester au moins un compte d'administration actif."
    ),
    services.NotInvitedError: _l(
        "Ce compte n'attend pas d'invitation : il est désactivé ou actif."
    ),
}


def _users_page(invite_form: InviteForm) -> ResponseReturnValue:
    unsent = None
    if isinstance(unsent_id := session.pop(UNSENT_INVITATION, None), int):
        candidate = Session.get(User, unsent_id)
        if candidate is not None and candidate.active and not candidate.has_usable_password:
            unsent = candidate
    return render_template(
        "accounts/users.html",
        users=services.list_users(Session()),
        form=invite_form,
        unsent=unsent,
        roles=list(Role),
        role_labels=ROLE_LABELS,
        role_help=ROLE_HELP,
    )


@bp.route("/utilisateurs")
@roles_required(Role.ADMIN)
def users() -> ResponseReturnValue:
    return _users_page(InviteForm())


@bp.route("/utilisateurs/inviter", methods=["POST"])
@roles_required(Role.ADMIN)
def invite_user() -> ResponseReturnValue:
    form = InviteForm()
    if not form.validate_on_submit():
        return _users_page(form)
    try:
        user = services.invite_user(
            Session(),
            actor_id=current_user.id,
            email=form.email.data or "",
            name=form.name.data or "",
            role=Role(form.role.data),
        )
    except services.EmailTakenError:
        form.email.errors = [_("Un compte existe déjà avec cette adresse.")]
        return _users_page(form)
    except services.NotAllowedError:
        abort(403)
    return _send_invitation(user, _("Invitation envoyée à %(email)s.", email=user.email))


@bp.route("/utilisateurs/renvoyer-invitation", methods=["POST"])
@roles_required(Role.ADMIN)
def resend_invitation() -> ResponseReturnValue:
    user = _act(UserForm(), services.resend_invitation)
    if user is None:
        return redirect(url_for("accounts.users"))
    return _send_invitation(user, _("Invitation renvoyée à %(email)s.", email=user.email))


@bp.route("/utilisateurs/role", methods=["POST"])
@roles_required(Role.ADMIN)
def change_role() -> ResponseReturnValue:
    form = RoleForm()

    def change(session: OrmSession, *, actor_id: int | None, user_id: int) -> User:
        # Only called once the form is valid: the role is one of ours.
        role = Role(form.role.data)
        return services.change_role(session, actor_id=actor_id, user_id=user_id, role=role)

    user = _act(form, change)
    if user is not None:
        flash(
            _(
                "%(name)s a désormais le rôle « %(role)s ».",
                name=user.name,
                role=ROLE_LABELS[user.role],
            ),
            "success",
        )
    return redirect(url_for("accounts.users"))


@bp.route("/utilisateurs/desactiver", methods=["POST"])
@roles_required(Role.ADMIN)
def deactivate_user() -> ResponseReturnValue:
    user = _act(UserForm(), services.deactivate_user)
    if user is not None:
        flash(_("Le compte de %(name)s est désactivé.", name=user.name), "success")
    return redirect(url_for("accounts.users"))


@bp.route("/utilisateurs/reactiver", methods=["POST"])
@roles_required(Role.ADMIN)
def reactivate_user() -> ResponseReturnValue:
    user = _act(UserForm(), services.reactivate_user)
    if user is not None:
        flash(_("Le compte de %(name)s est réactivé.", name=user.name), "success")
    return redirect(url_for("accounts.users"))


class _UserAction(Protocol):
    def __call__(self, session: OrmSession, *, actor_id: int | None, user_id: int) -> User: ...


def _act(form: UserForm, use_case: _UserAction) -> User | None:
    """Run an action on the account the form names; flash why when it is refused."""
    if not form.validate_on_submit():
        flash(_("La demande est incomplète : rechargez la page et recommencez."), "error")
        return None
    try:
        return use_case(Session(), actor_id=current_user.id, user_id=form.user_id.data)
    except services.UserNotFoundError:
        abort(404)
    except services.NotAllowedError:
        abort(403)
    except (services.SelfChangeError, services.LastAdminError, services.NotInvitedError) as error:
        flash(str(REFUSALS[type(error)]), "error")
        return None


def _send_invitation(user: User, success: str) -> ResponseReturnValue:
    """Send once the account is committed; a failure leaves the account, and says so."""
    config = _config()
    message = notifications.invitation_message(config, user, current_user.name)
    try:
        notifications.send(config, user.email, message)
    except SendError as error:
        log.warning("invitation for user %s not sent: %s", user.id, error)
        session[UNSENT_INVITATION] = user.id
    else:
        flash(success, "success")
    return redirect(url_for("accounts.users"))


# --- Forgotten password, and choosing a password from a link ---------------------------


def _submitted_reset_address() -> str:
    return "reset:" + services.normalise_email(request.form.get("email") or "")


@bp.route("/mot-de-passe/oublie", methods=["GET", "POST"])
@public
# Per client address, and per account whatever the address (nobody gets mail-bombed).
@limiter.limit("5 per 15 minutes", methods=["POST"])
@limiter.limit("5 per hour", methods=["POST"], key_func=_submitted_reset_address)
def forgot_password() -> ResponseReturnValue:
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        return render_template("accounts/forgot_password.html", form=form)
    response = redirect(url_for("accounts.login"))
    user = services.user_for_reset(Session(), form.email.data or "")
    if user is not None:
        config = _config()
        message = notifications.reset_message(config, user)
        # Sent once the answer has gone out: an existing account must not make the
        # answer slower (the time an SMTP exchange takes would tell it exists).
        response.call_on_close(partial(_send_reset, config, user.id, user.email, message))
    # Same words, same redirect, whether or not the address has an account.
    flash(
        _(
            "Si cette adresse correspond à un compte, un e-mail vient d'y être envoyé avec "
            "un lien pour choisir un nouveau mot de passe. Ce lien est valable une heure."
        ),
        "success",
    )
    return response


def _send_reset(config: Config, user_id: int, recipient: str, message: EmailMessage) -> None:
    try:
        notifications.send(config, recipient, message)
    except SendError as error:
        # Nobody is waiting on the page any more: the log is where this is seen.
        log.error("password reset email for user %s not sent: %s", user_id, error)


@bp.route("/mot-de-passe/nouveau/<token>", methods=["GET", "POST"])
@public
@limiter.limit("10 per 15 minutes", methods=["POST"])
def set_password(token: str) -> ResponseReturnValue:
    try:
        claims = read_token(_config().secret_key, token)
        user = services.user_for_token(Session(), claims)
    except InvalidTokenError:
        return _invalid_link()
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            user = services.set_password_with_token(Session(), claims, form.password.data or "")
        except InvalidTokenError:  # the same link, used a moment ago
            return _invalid_link()
        session.clear()
        login_user(user)
        flash(
            _("Votre mot de passe est enregistré. Bienvenue, %(name)s !", name=user.name), "success"
        )
        return redirect(url_for("dashboard.home"))
    return render_template(
        "accounts/set_password.html",
        form=form,
        user=user,
        invitation=claims.purpose is Purpose.INVITE,
    )


def _invalid_link() -> ResponseReturnValue:
    return render_template("accounts/link_invalid.html"), 400
