"""Every UI string (French source) has its English translation, compiled."""

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "service/translations/en/LC_MESSAGES/messages"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "_l": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}


def _source_strings() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT / "service"), METHODS, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_ui_string_is_translated_to_english() -> None:
    with CATALOGUE.with_suffix(".po").open("rb") as handle:
        catalogue = read_po(handle, locale="en")
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in catalogue
        if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string)
    }
    missing = sorted(_source_strings() - translated)
    assert not missing, "run `make translations` and translate: " + "; ".join(missing)


def test_compiled_catalogue_is_up_to_date() -> None:
    with CATALOGUE.with_suffix(".po").open("rb") as handle:
        po = {_key(m.id) for m in read_po(handle, locale="en") if m.id and m.string}
    with CATALOGUE.with_suffix(".mo").open("rb") as handle:
        mo = {_key(m.id) for m in read_mo(handle) if m.id}
    assert po == mo, "run `make translations` to compile the catalogue"


def _key(message_id: str | tuple[str, ...] | list[str]) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]
