import re
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    IntegerField,
    RadioField,
    SelectChoice,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from service.forms import sendable_address
from service.newsletters.models import TrackingMode
from service.newsletters.services import COLOR_RE

# CR and LF would start a new mail header (header injection); other controls have no
# business in a header either.
HEADER_BREAKING_RE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")

TRACKING_CHOICES = [
    SelectChoice(TrackingMode.INDIVIDUAL.value, _l("Individuel")),
    SelectChoice(TrackingMode.ANONYMOUS.value, _l("Anonyme")),
    SelectChoice(TrackingMode.OFF.value, _l("Désactivé")),
]
TRACKING_HELP = {
    TrackingMode.INDIVIDUAL.value: _l(
        "Ouvertures et clics rattachés à chaque abonné, pendant la durée de conservation."
    ),
    TrackingMode.ANONYMOUS.value: _l(
        "Ouvertures et clics comptés par numéro, sans savoir qui a ouvert ou cliqué."
    ),
    TrackingMode.OFF.value: _l("Liens directs et aucun pixel : pas de statistiques de lecture."),
}


def single_line(_form: Any, field: Field) -> None:
    if HEADER_BREAKING_RE.search(field.data or ""):
        raise ValidationError(
            _l("Une seule ligne ici : retours à la ligne et caractères de contrôle refusés.")
        )


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class NewsletterForm(FlaskForm):  # type: ignore[misc]
    name = StringField(
        _l("Nom de la lettre"),
        filters=[_strip],
        validators=[DataRequired(_l("Donnez un nom à la lettre.")), Length(max=120), single_line],
    )
    sender_name = StringField(
        _l("Nom de l'expéditeur"),
        description=_l("Affiché dans la boîte des abonnés, par exemple « Agence d'urbanisme »."),
        filters=[_strip],
        validators=[
            DataRequired(_l("Indiquez le nom de l'expéditeur.")),
            Length(max=120),
            single_line,
        ],
    )
    sender_email = EmailField(
        _l("Adresse de l'expéditeur"),
        description=_l("Une adresse du domaine de l'organisme, autorisée par son SPF et DKIM."),
        filters=[_strip],
        validators=[
            DataRequired(_l("Indiquez l'adresse de l'expéditeur.")),
            single_line,
            sendable_address,
            Length(max=254),
        ],
    )
    reply_to = EmailField(
        _l("Adresse de réponse"),
        description=_l("Facultative : où arrivent les réponses, si ce n'est pas l'expéditeur."),
        filters=[_strip],
        validators=[
            Optional(),
            single_line,
            sendable_address,
            Length(max=254),
        ],
    )
    legal_footer = TextAreaField(
        _l("Mentions en pied de lettre"),
        description=_l("Pourquoi l'abonné reçoit cette lettre, mentions légales."),
        filters=[_strip],
        validators=[Optional(), Length(max=2000)],
    )
    postal_address = TextAreaField(
        _l("Adresse postale de l'organisme"),
        description=_l("Obligatoire dans chaque envoi."),
        filters=[_strip],
        validators=[
            DataRequired(_l("Indiquez l'adresse postale de l'organisme.")),
            Length(max=500),
        ],
    )
    logo = FileField(
        _l("Logo"),
        description=_l(
            "Image PNG, JPEG, GIF ou WebP de 5 Mo au plus ; 600 pixels de large suffisent."
        ),
        render_kw={"accept": "image/png,image/jpeg,image/gif,image/webp"},
    )
    remove_logo = BooleanField(_l("Retirer le logo actuel"))
    main_color = StringField(
        _l("Couleur principale"),
        description=_l("Au format #rrggbb, par exemple #1d4f91 ; le texte blanc s'affiche dessus."),
        filters=[_strip, _lower],
        validators=[
            DataRequired(_l("Indiquez la couleur principale.")),
            Regexp(
                COLOR_RE,
                message=_l("Couleur attendue au format #rrggbb (six chiffres hexadécimaux)."),
            ),
        ],
        render_kw={"spellcheck": "false", "autocomplete": "off"},
    )
    tracking_mode = RadioField(
        _l("Mesure d'audience"),
        choices=TRACKING_CHOICES,
        validators=[InputRequired(_l("Choisissez un mode de mesure d'audience."))],
    )
    tracking_retention_days = IntegerField(
        _l("Conservation des données de mesure (jours)"),
        description=_l(
            "Au-delà, les ouvertures et clics ne sont plus rattachés aux abonnés (1 à 3 650 jours)."
        ),
        validators=[
            InputRequired(_l("Indiquez une durée en jours.")),
            NumberRange(1, 3650, _l("Durée entre 1 et 3 650 jours.")),
        ],
    )
    send_window_start = TimeField(
        _l("Envoyer à partir de"),
        description=_l("Heure de Paris. Laissez vide pour envoyer à toute heure."),
        validators=[Optional()],
    )
    send_window_end = TimeField(
        _l("et jusqu'à"),
        description=_l("Les messages non partis à cette heure attendent le créneau suivant."),
        validators=[Optional()],
    )
    send_weekdays_only = BooleanField(_l("Pas d'envoi le samedi ni le dimanche"))
    send_skip_holidays = BooleanField(_l("Pas d'envoi les jours fériés (France)"))

    def validate(self, extra_validators: Any = None) -> bool:
        valid: bool = super().validate(extra_validators)
        start, end = self.send_window_start, self.send_window_end
        # Here, not as field validators: an empty field stops its own validation chain.
        if (start.data is None) != (end.data is None) and not (start.errors or end.errors):
            end.errors = [
                *end.errors,
                _l("Indiquez les deux heures de la plage d'envoi, ou aucune."),
            ]
            valid = False
        elif start.data is not None and end.data is not None and end.data <= start.data:
            end.errors = [*end.errors, _l("L'heure de fin doit suivre l'heure de début.")]
            valid = False
        return valid
