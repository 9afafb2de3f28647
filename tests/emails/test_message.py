"""A message built for one recipient parses back into exactly the expected
headers and parts; recipients never share personal URLs."""

import email
import email.policy
import re
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emails import (
    HeaderInjectionError,
    IssueData,
    Personaliser,
    Recipient,
    RenderSettings,
    build_template,
    compile_variant,
)
from emails.dkim import DkimSigner, public_key_record
from service.config import Config, ConfigError
from service.issues.rendering import dkim_signer
from tests.emails.conftest import BASE

EXPECTED_HEADERS = [
    "From",
    "Reply-To",
    "Subject",
    "List-Id",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
    "To",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
]


def _personaliser(
    issue: IssueData, settings: RenderSettings, *, tracked: bool = True
) -> Personaliser:
    template = build_template(issue, compile_variant(issue, ["elus"]), settings, tracked=tracked)
    return Personaliser(issue, template, settings, clock=lambda: 1_800_000_000.0)


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_headers_and_parts(demo: IssueData, settings: RenderSettings) -> None:
    recipient = Recipient(7, "jerome.lefevre@mairie-bruay.example.fr", "Jérôme", "Lefèvre")
    raw = _personaliser(demo, settings).render(recipient)
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, as SMTP wants
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = _parse(raw)

    assert list(message.keys()) == EXPECTED_HEADERS
    assert message["From"] == "AULA — Agence d'urbanisme de l'Artois <lettre@aula.example.org>"
    assert message["Reply-To"] == "contact@aula.example.org"
    assert message["Subject"] == demo.subject
    assert "=?utf-8?" in raw.split(b"\r\n\r\n")[0].decode()  # RFC 2047 for the accents
    assert message["To"] == "Jérôme Lefèvre <jerome.lefevre@mairie-bruay.example.fr>"
    assert message["Date"] == "Fri, 15 Jan 2027 08:00:00 +0000"
    assert message["Message-ID"] == f"<{demo.id}.7@lettre.aula.example.org>"
    assert message["List-Id"] == "La Lettre de l'AULA <lettre-aula.lettre.aula.example.org>"
    _open, unsub, _prefs = settings.signer.system_tokens(7)
    assert message["List-Unsubscribe"] == (
        f"<{BASE}/u/{unsub}>, <mailto:desinscription+{unsub}@lettre.aula.example.org>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"

    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert not part.defects
    assert not message.defects
    assert "Bonjour Jérôme Lefèvre," in parts[0].get_content()
    assert "Bonjour Jérôme Lefèvre," in parts[1].get_content()


def test_two_recipients_never_share_personal_urls(
    demo: IssueData, settings: RenderSettings
) -> None:
    personaliser = _personaliser(demo, settings)
    urls = []
    for delivery_id in (1, 2):
        raw = personaliser.render(Recipient(delivery_id, f"r{delivery_id}@commune.example.fr"))
        message = _parse(raw)
        body = "".join(part.get_content() for part in message.iter_parts())
        found = set(re.findall(rf"{BASE}/[copu]/[\w-]+", body + message["List-Unsubscribe"]))
        assert len(found) > 20
        urls.append(found)
    assert urls[0].isdisjoint(urls[1])
    first, second = (_parse(personaliser.render(Recipient(i, "x@y.example.fr"))) for i in (1, 2))
    assert first["Message-ID"] != second["Message-ID"]


def test_names_from_imports_cannot_inject_headers(
    demo: IssueData, settings: RenderSettings
) -> None:
    personaliser = _personaliser(demo, settings)
    raw = personaliser.render(
        Recipient(3, "a@b.example.fr", "Anne\r\nBcc: victim@example.com", "X")
    )
    message = _parse(raw)
    assert "Bcc" not in message
    assert message["To"] == '"Anne Bcc: victim@example.com X" <a@b.example.fr>'
    with pytest.raises(HeaderInjectionError):
        personaliser.render(Recipient(4, "a@b.example.fr\r\nBcc: victim@example.com"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Lettre\r\nBcc: victim@example.com"),
        ("sender_name", "AULA\nBcc: victim@example.com"),
        ("reply_to", "contact@aula.example.org\r\nX-Evil: 1"),
    ],
)
def test_header_fields_with_newlines_are_refused(
    demo: IssueData, settings: RenderSettings, field: str, value: str
) -> None:
    if field == "subject":
        issue = replace(demo, subject=value)
    else:
        issue = replace(demo, newsletter=replace(demo.newsletter, **{field: value}))
    with pytest.raises(HeaderInjectionError, match="retours à la ligne"):
        build_template(issue, compile_variant(issue, None), settings)


def test_test_sends_carry_no_tracking(demo: IssueData, settings: RenderSettings) -> None:
    raw = _personaliser(demo, settings, tracked=False).render(Recipient(5, "t@aula.example.org"))
    html = _parse(raw).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "/c/" not in html
    assert "/o/" not in html
    assert "https://www.aula.example.org" in html


def _dkim_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_dkim_signature_verifies_with_dkimpy(demo: IssueData, settings: RenderSettings) -> None:
    pem = _dkim_key()
    record = public_key_record(pem).encode()
    signer = DkimSigner("aula.example.org", "lettre2027", pem)
    raw = _personaliser(demo, settings).render(Recipient(9, "elu@mairie-lens.example.fr", "Élise"))
    signed = signer.sign(raw)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"lettre2027._domainkey.aula.example.org."
        return record

    assert dkim.verify(signed, dnsfunc=dns)
    header = _parse(signed)["DKIM-Signature"]
    covered = re.search(r"h=([^;]+);", header).group(1).lower().split(":")  # type: ignore[union-attr]
    for name in (
        "from",
        "subject",
        "date",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ):
        assert name in covered
    tampered = signed.replace(b"Subject: ", b"Subject: RE: ", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_long_public_urls_are_quoted_printable_encoded(
    demo: IssueData, settings: RenderSettings
) -> None:
    base = "https://newsletters.agence-urbanisme-artois.example.org/lettre=aula"
    long = replace(settings, base_url=base)
    raw = _personaliser(demo, long).render(Recipient(11, "a@b.example.fr"))
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # QP line limit
    html = _parse(raw).get_body(("html",)).get_content()  # type: ignore[union-attr]
    _open, unsub, _prefs = long.signer.system_tokens(11)
    assert f'href="{base}/u/{unsub}"' in html
    assert len(re.findall(rf'href="{re.escape(base)}/c/[\w-]{{20}}"', html)) >= 15


def test_dkim_settings(tmp_path: Path, config: Config) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(_dkim_key())
    assert dkim_signer(config) is None
    signer = dkim_signer(
        replace(config, dkim_domain="aula.example.org", dkim_selector="s1", dkim_key_path=key_file)
    )
    assert signer is not None
    assert signer.selector == "s1"
    with pytest.raises(ConfigError, match="together"):
        dkim_signer(replace(config, dkim_domain="aula.example.org"))
    with pytest.raises(ConfigError, match="cannot read"):
        dkim_signer(
            replace(config, dkim_domain="a.fr", dkim_selector="s", dkim_key_path=tmp_path / "no")
        )


def test_dkim_oversigning_refuses_added_headers(demo: IssueData, settings: RenderSettings) -> None:
    pem = _dkim_key()
    record = public_key_record(pem).encode()
    signed = DkimSigner("aula.example.org", "s", pem).sign(
        _personaliser(demo, settings).render(Recipient(12, "a@b.example.fr"))
    )

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return record

    assert dkim.verify(signed, dnsfunc=dns)
    for extra in (b"Subject: Urgent: votre compte\r\n", b"Reply-To: pirate@example.com\r\n"):
        assert not dkim.verify(extra + signed, dnsfunc=dns), extra


def test_text_areas_with_crlf_never_put_a_bare_cr_on_the_wire(
    demo: IssueData, settings: RenderSettings
) -> None:
    agenda = next(b for b in demo.blocks if b.kind == "agenda")
    events = [{**agenda.data["events"][0], "description": "Ligne 1\r\nLigne 2\rLigne 3"}]
    blocks = [replace(agenda, data={**agenda.data, "events": events})]
    issue = replace(
        demo,
        blocks=blocks,
        newsletter=replace(
            demo.newsletter, postal_address="AULA\r\n24 rue des Ateliers\r\nBéthune"
        ),
    )
    raw = _personaliser(issue, settings).render(Recipient(13, "a@b.example.fr"))
    assert not re.search(rb"\r(?!\n)|(?<!\r)\n", raw)
    html = _parse(raw).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "AULA, 24 rue des Ateliers, Béthune" in html


@pytest.mark.parametrize("breaker", ["\u2028", "\x85", "\x0b", "\x00"])
def test_any_line_breaking_character_is_refused_in_headers(
    demo: IssueData, settings: RenderSettings, breaker: str
) -> None:
    issue = replace(demo, subject=f"Lettre{breaker}Bcc: victim@example.com")
    with pytest.raises(HeaderInjectionError):
        build_template(issue, compile_variant(issue, None), settings)


def test_pixel_of_a_49_character_base_fits_a_qp_line(
    demo: IssueData, settings: RenderSettings
) -> None:
    base = "https://lettre.aula.example.org/" + "b" * 17
    assert len(base) == 49
    raw = _personaliser(demo, replace(settings, base_url=base)).render(
        Recipient(14, "a@b.example.fr")
    )
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
