from collections.abc import Iterable, Mapping
from typing import Any

from wtforms import Form, FormField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from emails.blocks import BlockKind, ImageSpec, LinkSpec, http_url, register
from emails.richtext import LinkRef, anchors, sanitise, to_paragraphs


class ImageForm(Form):  # type: ignore[misc]
    url = StringField("Adresse de l'image", validators=[Optional(), http_url])
    alt = StringField(
        "Texte alternatif",
        description="Décrit l'image pour qui ne la voit pas ; laissez vide si elle est décorative.",
        validators=[Optional(), Length(max=300, message="300 caractères au plus.")],
    )
    size = IntegerField("Poids (octets)", validators=[Optional(), NumberRange(min=0)])


class LinkForm(Form):  # type: ignore[misc]
    url = StringField("Adresse du lien", validators=[Optional(), http_url])
    label = StringField(
        "Texte du lien", validators=[Optional(), Length(max=120, message="120 caractères au plus.")]
    )


class NewsForm(Form):  # type: ignore[misc]
    title = StringField(
        "Titre",
        validators=[
            DataRequired("Donnez un titre à l'actualité."),
            Length(max=200, message="200 caractères au plus."),
        ],
    )
    html = TextAreaField("Texte", validators=[DataRequired("Le texte de l'actualité est vide.")])
    image = FormField(ImageForm, label="Image (facultative)")
    link = FormField(LinkForm, label="Lien (facultatif)")

    def validate(self, extra_validators: Any = None) -> bool:
        ok = bool(super().validate(extra_validators))
        link = self.link.form  # not self.link.label: that is the FormField's own label
        if link.url.data and not (link.label.data or "").strip():
            link.label.errors = [
                *link.label.errors,
                "Indiquez le texte du lien (par exemple « Lire l'article »).",
            ]
            ok = False
        if link.label.data and not (link.url.data or "").strip():
            link.url.errors = [*link.url.errors, "Indiquez l'adresse du lien."]
            ok = False
        return ok


@register
class NewsBlock(BlockKind):
    name = "news"
    label = "Actualité"
    form = NewsForm

    def clean(self, form_data: Mapping[str, Any]) -> dict[str, Any]:
        image = form_data.get("image") or {}
        link = form_data.get("link") or {}
        return {
            "title": form_data["title"].strip(),
            "html": sanitise(form_data["html"]),
            "image": (
                {
                    "url": image["url"].strip(),
                    "alt": (image.get("alt") or "").strip(),
                    "size": image.get("size"),
                }
                if image.get("url")
                else None
            ),
            "link": (
                {"url": link["url"].strip(), "label": link["label"].strip()}
                if link.get("url")
                else None
            ),
        }

    def links(self, data: Mapping[str, Any]) -> Iterable[LinkSpec]:
        found = [LinkSpec(url, "link", label) for url, label in anchors(data["html"])]
        if data.get("link"):
            found.append(LinkSpec(data["link"]["url"], "link", data["link"]["label"]))
        return found

    def images(self, data: Mapping[str, Any]) -> Iterable[ImageSpec]:
        image = data.get("image")
        return [ImageSpec(image["url"], image.get("alt") or "", image.get("size"))] if image else []

    def texts(self, data: Mapping[str, Any]) -> Iterable[str]:
        return [data["title"], data["html"], (data.get("link") or {}).get("label") or ""]

    def text(self, data: Mapping[str, Any], ref: LinkRef) -> list[str]:
        out = [f"== {data['title']} ==", *to_paragraphs(data["html"], ref)]
        if data.get("link"):
            out.append(f"{data['link']['label']} [{ref(data['link']['url'])}]")
        return out
