"""Forms of the public pages: subscription, confirmation, preference centre."""

from collections.abc import Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from service.forms import sendable_address

CIVILITIES = (("", _l("Non précisée")), ("Mme", _l("Madame")), ("M.", _l("Monsieur")))


def _choices(pairs: Iterable[tuple[Any, Any]]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _single_line(_form: FlaskForm, field: StringField) -> None:
    # Names end up in e-mail headers: no control characters (CR/LF above all).
    if field.data and any(ord(char) < 32 or ord(char) == 127 for char in field.data):
        raise ValidationError(_l("Ce champ ne doit tenir que sur une ligne."))


class MultiCheckboxField(SelectMultipleField):  # type: ignore[misc]
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _text(label: Any, length: int, autocomplete: str) -> StringField:
    return StringField(
        label,
        validators=[
            Optional(),
            Length(max=length, message=_l("%(max)d caractères au plus.")),
            _single_line,
        ],
        filters=[_strip],
        render_kw={"autocomplete": autocomplete},
    )


class ProfileFields(FlaskForm):  # type: ignore[misc]
    """What a subscriber may tell about themselves (all optional)."""

    civility = SelectField(_l("Civilité"), choices=_choices(CIVILITIES), default="")
    first_name = _text(_l("Prénom"), 100, "given-name")
    last_name = _text(_l("Nom"), 100, "family-name")
    organisation = _text(_l("Organisme"), 200, "organization")
    function = _text(_l("Fonction"), 120, "organization-title")
    commune = _text(_l("Commune"), 120, "address-level2")
    segments = MultiCheckboxField(_l("Lettres et thèmes"), coerce=int, choices=[])

    def offer(self, choices: list[tuple[int, str]], *, required: bool) -> None:
        self.segments.choices = _choices(choices)
        if required and choices:
            self.segments.validators = [
                DataRequired(_l("Choisissez au moins une lettre ou un thème."))
            ]
        else:
            self.segments.validators = [Optional()]


class SubscribeForm(ProfileFields):
    email = EmailField(
        _l("Adresse e-mail"),
        validators=[
            DataRequired(_l("Indiquez votre adresse e-mail.")),
            Length(max=254, message=_l("L'adresse ne doit pas dépasser 254 caractères.")),
            sendable_address,
        ],
        filters=[_strip],
        render_kw={"autocomplete": "email"},
    )
    consent = BooleanField(
        _l("J'accepte ces conditions"),
        validators=[DataRequired(_l("Cochez cette case pour pouvoir vous inscrire."))],
    )
    # Honeypot: hidden from people (CSS class, aria-hidden, out of the tab order);
    # robots that fill every field give themselves away.
    website = StringField(_l("Ne pas remplir ce champ"), render_kw={"autocomplete": "off"})


class PreferencesForm(ProfileFields):
    pass


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button and its CSRF token (confirm, unsubscribe from everything)."""
