"""The account emails as rendered by ``emails.system`` (pure: no app, no database)."""

import datetime as dt
import email
import email.policy
from email.headerregistry import Address

import pytest
from jinja2 import TemplateNotFound, UndefinedError

from emails.system import build_system_message, render_system_email

INVITATION = {
    "name": "Claire <Dumont>",
    "inviter_name": "Anne & Co",
    "role_label": "Rédaction",
    "link": "https://lettrine.example.org/mot-de-passe/nouveau/abc.def.ghi",
    "valid_for": "7 jours",
    "base_url": "https://lettrine.example.org",
}
RESET = {
    "name": "Claire Dumont",
    "email": "claire@agence.example.org",
    "link": "https://lettrine.example.org/mot-de-passe/nouveau/abc.def.ghi",
    "valid_for": "1 heure",
    "forgot_url": "https://lettrine.example.org/mot-de-passe/oublie",
    "base_url": "https://lettrine.example.org",
}


@pytest.mark.parametrize(
    ("name", "context"), [("invitation", INVITATION), ("password_reset", RESET)]
)
def test_every_system_email_has_subject_text_and_html(name: str, context: dict[str, str]) -> None:
    subject, text, html = render_system_email(name, **context)
    assert subject
    assert "\n" not in subject
    assert context["link"] in text
    assert html is not None
    assert f'href="{context["link"]}"' in html
    assert '<html lang="fr">' in html
    assert "<script" not in html


def test_html_is_escaped_and_text_is_not() -> None:
    subject, text, html = render_system_email("invitation", **INVITATION)
    assert subject == "Anne & Co vous invite à rejoindre Lettrine"
    assert "Bonjour Claire <Dumont>," in text
    assert "Bonjour Claire &lt;Dumont&gt;," in (html or "")
    assert "Anne &amp; Co" in (html or "")


def test_a_missing_value_is_an_error_not_a_blank() -> None:
    context = dict(INVITATION)
    del context["link"]
    with pytest.raises(UndefinedError):
        render_system_email("invitation", **context)


@pytest.mark.parametrize("name", ["../system/invitation", "invitation/../invitation", "", "A"])
def test_email_names_are_plain_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a system email name"):
        render_system_email(name, **INVITATION)


def test_an_unknown_email_is_an_error() -> None:
    with pytest.raises(TemplateNotFound):
        render_system_email("absent", **INVITATION)


def test_message_structure() -> None:
    rendered = render_system_email("password_reset", **RESET)
    message = build_system_message(
        rendered,
        sender=Address("Lettrine", "no-reply", "lettrine.example.org"),
        recipient=Address("Claire Dumont", "claire", "agence.example.org"),
        now=dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC),
    )
    raw = message.as_bytes()
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Date"] == "Thu, 26 Nov 2026 09:30:00 +0000"
    assert parsed["Message-ID"].endswith("@lettrine.example.org>")
    assert [part.get_content_type() for part in parsed.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert all(
        part["Content-Transfer-Encoding"] == "quoted-printable" for part in parsed.iter_parts()
    )


def test_line_breaks_never_reach_a_header() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        Address("Claire\r\nBcc: victime@example.org", "claire", "agence.example.org")
    context = dict(RESET, name="Claire\nDumont")
    subject, _text, _html = render_system_email("password_reset", **context)
    assert "\n" not in subject
