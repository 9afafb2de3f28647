from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, IntegerField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, InputRequired, Length, ValidationError
from wtforms.widgets import HiddenInput

from service.accounts.models import Role
from service.forms import sendable_address

MIN_PASSWORD_LENGTH = 12
# The login form accepts up to this many characters: a longer password could never be typed in.
MAX_PASSWORD_LENGTH = 200

ROLE_LABELS = {
    Role.ADMIN: _l("Administration"),
    Role.PUBLISHER: _l("Publication"),
    Role.EDITOR: _l("Rédaction"),
    Role.ANALYST: _l("Analyse"),
}
ROLE_HELP = {
    Role.ADMIN: _l("gère les utilisateurs, les lettres et les listes"),
    Role.PUBLISHER: _l("relit, approuve et envoie les numéros"),
    Role.EDITOR: _l("rédige les numéros"),
    Role.ANALYST: _l("consulte les statistiques"),
}


def _role_choices() -> list[SelectChoice]:
    return [SelectChoice(role.value, ROLE_LABELS[role]) for role in Role]


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _single_line(_form: FlaskForm, field: StringField) -> None:
    # Names end up in e-mail headers: no control characters (CR/LF above all).
    if field.data and any(ord(char) < 32 or ord(char) == 127 for char in field.data):
        raise ValidationError(_l("Le nom ne doit tenir que sur une ligne."))


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField(
        _l("Adresse e-mail"),
        validators=[DataRequired(_l("Indiquez votre adresse e-mail.")), Length(max=254)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        _l("Mot de passe"),
        validators=[
            DataRequired(_l("Indiquez votre mot de passe.")),
            Length(max=MAX_PASSWORD_LENGTH),
        ],
        render_kw={"autocomplete": "current-password"},
    )


class InviteForm(FlaskForm):  # type: ignore[misc]
    name = StringField(
        _l("Nom"),
        validators=[
            DataRequired(_l("Indiquez le nom de la personne à inviter.")),
            Length(max=120, message=_l("Le nom ne doit pas dépasser 120 caractères.")),
            _single_line,
        ],
        filters=[_strip],
        render_kw={"autocomplete": "off"},
    )
    email = EmailField(
        _l("Adresse e-mail"),
        validators=[
            DataRequired(_l("Indiquez l'adresse e-mail de la personne à inviter.")),
            Length(max=254, message=_l("L'adresse ne doit pas dépasser 254 caractères.")),
            sendable_address,
        ],
        filters=[_strip],
        render_kw={"autocomplete": "off"},
    )
    role = SelectField(
        _l("Rôle"),
        choices=_role_choices,
        default=Role.EDITOR.value,
        validate_choice=True,
        invalid_choice_message=_l("Choisissez un rôle dans la liste."),
    )


class UserForm(FlaskForm):  # type: ignore[misc]
    """An action on one account (deactivate, reactivate, resend the invitation)."""

    user_id = IntegerField(
        widget=HiddenInput(),
        validators=[InputRequired(_l("Compte inconnu."))],
    )


class RoleForm(UserForm):
    role = SelectField(
        _l("Rôle"),
        choices=_role_choices,
        validate_choice=True,
        invalid_choice_message=_l("Choisissez un rôle dans la liste."),
    )


class ForgotPasswordForm(FlaskForm):  # type: ignore[misc]
    # No address syntax check: the answer is the same for any input anyway.
    email = EmailField(
        _l("Adresse e-mail"),
        validators=[
            DataRequired(_l("Indiquez votre adresse e-mail.")),
            Length(max=254, message=_l("L'adresse ne doit pas dépasser 254 caractères.")),
        ],
        render_kw={"autocomplete": "username", "autofocus": True},
    )


class SetPasswordForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField(
        _l("Nouveau mot de passe"),
        validators=[
            DataRequired(_l("Choisissez un mot de passe.")),
            Length(
                min=MIN_PASSWORD_LENGTH,
                message=_l(
                    "Le mot de passe doit compter au moins %(count)d caractères.",
                    count=MIN_PASSWORD_LENGTH,
                ),
            ),
            Length(
                max=MAX_PASSWORD_LENGTH,
                message=_l(
                    "Le mot de passe ne doit pas dépasser %(count)d caractères.",
                    count=MAX_PASSWORD_LENGTH,
                ),
            ),
        ],
        render_kw={"autocomplete": "new-password", "autofocus": True},
    )
    confirm = PasswordField(
        _l("Confirmation du mot de passe"),
        validators=[
            DataRequired(_l("Saisissez le mot de passe une seconde fois.")),
            EqualTo("password", _l("Les deux mots de passe ne correspondent pas.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )
