"""The block-kind registry: one module per kind declares its form (field schema
and validation), its MJML partial, its links and its text rendering.

Adding a kind touches one module here and one template in ``templates/blocks/``.
"""

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from werkzeug.datastructures import MultiDict
from wtforms import Form
from wtforms.validators import ValidationError

from emails.richtext import LinkRef


class BlockValidationError(Exception):
    """Field-level errors, French messages, keyed like the form fields."""

    def __init__(self, kind: str, errors: Mapping[str, Any]) -> None:
        super().__init__(f"invalid {kind} block: {dict(errors)}")
        self.kind = kind
        self.errors = errors


@dataclass(frozen=True)
class LinkSpec:
    url: str
    kind: str  # link | resource | calendar
    label: str


@dataclass(frozen=True)
class ImageSpec:
    url: str
    alt: str
    size: int | None


def http_url(form: Form, field: Any) -> None:  # noqa: ARG001 - WTForms validator signature
    """http(s) only, with a host: « www.exemple.fr » is refused with a hint."""
    value = (field.data or "").strip()
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        if not parts.scheme or "." in parts.scheme:
            raise ValidationError(
                f"Adresse incomplète : ajoutez https:// au début (https://{value})."
            )
        raise ValidationError("Seules les adresses web en https:// ou http:// sont acceptées.")
    if not parts.netloc or any(c in value for c in ' \r\n\t"<>'):
        raise ValidationError("Adresse web invalide.")


class BlockKind:
    name: ClassVar[str]
    label: ClassVar[str]
    form: ClassVar[type[Form]]

    @property
    def template(self) -> str:
        return f"blocks/{self.name}.mjml"

    def validate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``data`` (JSON shape) with the kind's form; return the cleaned data."""
        form = self.form(formdata=to_formdata(data))
        if not form.validate():
            raise BlockValidationError(self.name, form.errors)
        return self.clean(form.data)

    def validate_form(self, form: Form) -> dict[str, Any]:
        if not form.validate():
            raise BlockValidationError(self.name, form.errors)
        return self.clean(form.data)

    def clean(self, form_data: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def updated(
        self,
        previous: Mapping[str, Any] | None,  # noqa: ARG002 - used by kinds that override it
        data: dict[str, Any],
    ) -> dict[str, Any]:
        """Hook when stored data is replaced (the agenda bumps SEQUENCE here)."""
        return data

    def duplicated(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The data for a copy of the block (the agenda gives its events new UIDs)."""
        return copy.deepcopy(dict(data))

    def links(self, data: Mapping[str, Any]) -> Iterable[LinkSpec]:  # noqa: ARG002
        return ()

    def images(self, data: Mapping[str, Any]) -> Iterable[ImageSpec]:  # noqa: ARG002
        return ()

    def texts(self, data: Mapping[str, Any]) -> Iterable[str]:  # noqa: ARG002
        """Every piece of free text, for the pre-send checks."""
        return ()

    def text(self, data: Mapping[str, Any], ref: LinkRef) -> list[str]:
        """Paragraphs of the text part (wrapped later)."""
        raise NotImplementedError


def to_formdata(data: Mapping[str, Any], prefix: str = "") -> MultiDict[str, str]:
    """JSON block data → the flat names an HTML form posts (events-0-title…)."""
    flat: MultiDict[str, str] = MultiDict()

    def walk(value: Any, name: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, f"{name}-{key}" if name else str(key))
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                walk(item, f"{name}-{index}")
        elif value is None:
            return
        elif isinstance(value, bool):
            if value:
                flat.add(name, "y")
        else:
            flat.add(name, str(value))

    walk(data, prefix)
    return flat


REGISTRY: dict[str, BlockKind] = {}


def register(cls: type[BlockKind]) -> type[BlockKind]:
    REGISTRY[cls.name] = cls()
    return cls


def get_kind(name: str) -> BlockKind:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BlockValidationError(name, {"kind": [f"Type de bloc inconnu : {name}."]}) from None


def _load() -> None:
    # Importing the modules registers the kinds.
    from emails.blocks import agenda, news, resources, text  # noqa: F401, PLC0415


_load()

__all__ = [
    "REGISTRY",
    "BlockKind",
    "BlockValidationError",
    "ImageSpec",
    "LinkSpec",
    "get_kind",
    "http_url",
    "register",
    "to_formdata",
]
