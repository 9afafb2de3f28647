from collections.abc import Iterable, Mapping
from typing import Any

from wtforms import Form, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from emails.blocks import BlockKind, LinkSpec, register
from emails.richtext import LinkRef, anchors, sanitise, to_paragraphs


class TextForm(Form):  # type: ignore[misc]
    title = StringField(
        "Titre (facultatif)",
        validators=[Optional(), Length(max=200, message="200 caractères au plus.")],
    )
    html = TextAreaField("Texte", validators=[DataRequired("Le texte est vide.")])


@register
class TextBlock(BlockKind):
    name = "text"
    label = "Texte"
    form = TextForm

    def clean(self, form_data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "title": (form_data.get("title") or "").strip() or None,
            "html": sanitise(form_data["html"]),
        }

    def links(self, data: Mapping[str, Any]) -> Iterable[LinkSpec]:
        return [LinkSpec(url, "link", label) for url, label in anchors(data["html"])]

    def texts(self, data: Mapping[str, Any]) -> Iterable[str]:
        return [data.get("title") or "", data["html"]]

    def text(self, data: Mapping[str, Any], ref: LinkRef) -> list[str]:
        out = [f"== {data['title']} =="] if data.get("title") else []
        return out + to_paragraphs(data["html"], ref)
