from collections.abc import Iterable, Mapping
from typing import Any

from wtforms import FieldList, Form, FormField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from emails.blocks import BlockKind, LinkSpec, http_url, register
from emails.formatting import format_label
from emails.richtext import LinkRef


class ResourceForm(Form):  # type: ignore[misc]
    title = StringField(
        "Titre", validators=[Optional(), Length(max=200, message="200 caractères au plus.")]
    )
    description = TextAreaField(
        "Description",
        validators=[Optional(), Length(max=1000, message="1 000 caractères au plus.")],
    )
    url = StringField("Fichier ou adresse", validators=[Optional(), http_url])
    format = StringField(
        "Format", validators=[Optional(), Length(max=12, message="12 caractères au plus.")]
    )
    size = IntegerField(
        "Poids (octets)",
        validators=[Optional(), NumberRange(min=0, message="Le poids ne peut pas être négatif.")],
    )

    def validate(self, extra_validators: Any = None) -> bool:
        ok = bool(super().validate(extra_validators))
        if (self.title.data or self.url.data) and not self.title.data:
            self.title.errors = [*self.title.errors, "Donnez un titre à la ressource."]
            ok = False
        if self.title.data and not self.url.data:
            self.url.errors = [
                *self.url.errors,
                "Indiquez le fichier ou l'adresse de la ressource.",
            ]
            ok = False
        return ok


class ResourcesForm(Form):  # type: ignore[misc]
    title = StringField(
        "Titre",
        default="Ressources",
        validators=[DataRequired("Donnez un titre au bloc."), Length(max=200)],
    )
    items = FieldList(FormField(ResourceForm), label="Ressource", min_entries=1)

    def validate(self, extra_validators: Any = None) -> bool:
        ok = bool(super().validate(extra_validators))
        if not any(entry.title.data for entry in self.items):
            self.items.errors = ["Ajoutez au moins une ressource."]
            ok = False
        return ok


# Formats that are read in the browser rather than saved.
_PAGES = {"HTML", "HTM", "PAGE", "SITE", "WEB"}


def _action(item: Mapping[str, Any]) -> str:
    """« Télécharger » for a file (a format that is not a web page, or a size), else
    « Consulter »: a web page is read, not downloaded."""
    fmt = item.get("format")
    return "Télécharger" if item.get("size") or (fmt and fmt not in _PAGES) else "Consulter"


@register
class ResourcesBlock(BlockKind):
    name = "resources"
    label = "Ressources"
    form = ResourcesForm

    def clean(self, form_data: Mapping[str, Any]) -> dict[str, Any]:
        items = [
            {
                "title": item["title"].strip(),
                "description": (item.get("description") or "").strip(),
                "url": item["url"].strip(),
                "format": (item.get("format") or "").strip().upper() or None,
                "size": item.get("size"),
            }
            for item in form_data["items"]
            if item.get("title")
        ]
        return {"title": form_data["title"].strip(), "items": items}

    def links(self, data: Mapping[str, Any]) -> Iterable[LinkSpec]:
        return [LinkSpec(item["url"], "resource", item["title"]) for item in data["items"]]

    def texts(self, data: Mapping[str, Any]) -> Iterable[str]:
        return [
            data["title"],
            *(f"{i['title']} {i.get('description') or ''}" for i in data["items"]),
        ]

    def text(self, data: Mapping[str, Any], ref: LinkRef) -> list[str]:
        out = [f"== {data['title']} =="]
        for item in data["items"]:
            label = format_label(item.get("format"), item.get("size"))
            head = f"* {item['title']}" + (f" ({label})" if label else "")
            lines = [head]
            if item.get("description"):
                lines.append(f"  {item['description']}")
            lines.append(f"  {_action(item)} [{ref(item['url'])}]")
            out.append("\n".join(lines))
        return out
