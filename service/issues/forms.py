import re
from collections.abc import Iterable

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import Form, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields import FieldList
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from emails.blocks import get_kind
from emails.mime import HEADER_BREAKING


class NewIssueForm(FlaskForm):  # type: ignore[misc]
    newsletter_id = SelectField(_l("Lettre"), coerce=int)
    title = StringField(
        _l("Titre du numéro"),
        validators=[DataRequired(_l("Donnez un titre au numéro.")), Length(max=200)],
    )


class SettingsForm(FlaskForm):  # type: ignore[misc]
    version = HiddenField()
    title = StringField(
        _l("Titre"), validators=[DataRequired(_l("Donnez un titre au numéro.")), Length(max=200)]
    )
    subject = StringField(
        _l("Objet du message"),
        description=_l("Ce que les destinataires voient dans leur boîte (78 caractères au plus)."),
        validators=[DataRequired(_l("L'objet est vide.")), Length(max=200)],
    )
    preheader = StringField(
        _l("Texte d'aperçu"),
        description=_l("Affiché après l'objet par la plupart des messageries."),
        validators=[Optional(), Length(max=200)],
    )

    def validate_title(self, field: StringField) -> None:
        _one_line(field)

    def validate_subject(self, field: StringField) -> None:
        _one_line(field)

    def validate_preheader(self, field: StringField) -> None:
        _one_line(field)


def _one_line(field: StringField) -> None:
    # These go into email headers (or next to them): no line breaks of any kind.
    if HEADER_BREAKING.search(field.data or ""):
        raise ValidationError(
            _l("Une seule ligne ici : retours à la ligne et caractères de contrôle refusés.")
        )


class VersionForm(FlaskForm):  # type: ignore[misc]
    """Buttons that change the issue: CSRF, and the version the page was built from."""

    version = HiddenField()


class CommentForm(VersionForm):
    comment = TextAreaField(
        _l("Commentaire pour le rédacteur"), validators=[Optional(), Length(max=2000)]
    )


class TestSendForm(FlaskForm):  # type: ignore[misc]
    addresses = TextAreaField(
        _l("Adresses de test"),
        description=_l("Jusqu'à 10 adresses, séparées par des virgules ou des retours à la ligne."),
    )
    segment = HiddenField()


def parse_version(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() else None


_ROW = re.compile(r"^(?P<list>[a-z_]+)-(?P<index>\d+)-(?P<rest>.+)$")


def _list_fields(form_class: type[Form]) -> set[str]:
    return {
        name
        for name in dir(form_class)
        if getattr(getattr(form_class, name), "field_class", None) is FieldList
    }


def compact_rows(formdata: MultiDict[str, str], list_names: Iterable[str]) -> MultiDict[str, str]:
    """Drop the blank rows a form offers for adding an item, and renumber the others."""
    lists = set(list_names)
    rows: dict[str, dict[int, list[tuple[str, str]]]] = {}
    out: MultiDict[str, str] = MultiDict()
    for key, value in formdata.items(multi=True):
        match = _ROW.match(key)
        if match and match["list"] in lists:
            rows.setdefault(match["list"], {}).setdefault(int(match["index"]), []).append(
                (match["rest"], value)
            )
        else:
            out.add(key, value)
    for name, by_index in rows.items():
        kept = [
            fields
            for _index, fields in sorted(by_index.items())
            if any(value.strip() for rest, value in fields if rest not in {"uid", "sequence"})
        ]
        for new_index, fields in enumerate(kept):
            for rest, value in fields:
                out.add(f"{name}-{new_index}-{rest}", value)
    return out


def block_form(kind: str, formdata: MultiDict[str, str] | None = None) -> Form:
    form_class = get_kind(kind).form
    if formdata is None:
        return form_class()
    return form_class(formdata=compact_rows(formdata, _list_fields(form_class)))


def add_empty_rows(form: Form) -> None:
    """One blank row at the end of each list, to add an item without JavaScript."""
    for field in form:
        if isinstance(field, FieldList):
            field.append_entry()
