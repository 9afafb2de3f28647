"""The demo issue rendered as an email: structure of the HTML and of the text part."""

import email
import email.policy
import re
from dataclasses import replace
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup

from emails import (
    IssueData,
    Personaliser,
    Recipient,
    RenderSettings,
    build_template,
    collect_links,
    compile_variant,
    resolve,
    variant_key,
)
from tests.emails.conftest import BASE

CLAIRE = Recipient(
    delivery_id=101,
    email="claire.dumont@mairie-lievin.example.fr",
    first_name="Claire",
    last_name="Dumont",
)


def _message(
    demo: IssueData,
    settings: RenderSettings,
    segments: list[str] | None,
    recipient: Recipient = CLAIRE,
) -> EmailMessage:
    variant = compile_variant(demo, segments)
    raw = Personaliser(demo, build_template(demo, variant, settings), settings).render(recipient)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _parts(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content()


def test_html_structure(demo: IssueData, settings: RenderSettings) -> None:
    _text, html = _parts(_message(demo, settings, ["elus"]))
    soup = BeautifulSoup(html, "html.parser")

    assert soup.html is not None
    assert soup.html["lang"] == "fr"
    assert soup.title is not None
    assert soup.title.string == demo.subject
    preheader = soup.body.find("div") if soup.body else None
    assert preheader is not None
    assert preheader.get_text(strip=True) == demo.preheader
    assert "display:none" in str(preheader["style"]).replace(" ", "")
    assert soup.find("h1").get_text(strip=True) == demo.title  # type: ignore[union-attr]
    assert "Bonjour Claire Dumont," in soup.get_text()
    # Rich text arrives as HTML, not as escaped tags.
    assert "&lt;p&gt;" not in html
    assert "le commerce de demain" in [s.get_text() for s in soup.find_all("strong")]
    headings = [h.get_text(strip=True) for h in soup.find_all("h2")]
    assert "Agenda" in headings
    assert "Ressources" in headings
    # No third-party host anywhere: every link and image is ours.
    for tag, attr in (("a", "href"), ("img", "src"), ("link", "href"), ("script", "src")):
        for node in soup.find_all(tag):
            url = str(node.get(attr))
            assert url.startswith(BASE + "/"), f"{tag} {url}"
    assert "googleapis" not in html
    assert "@import" not in html
    for image in soup.find_all("img"):
        assert image.has_attr("alt")


def test_every_link_is_tracked_to_a_stored_url(demo: IssueData, settings: RenderSettings) -> None:
    _text, html = _parts(_message(demo, settings, ["elus"]))
    soup = BeautifulSoup(html, "html.parser")
    links = {link.position: link for link in collect_links(demo)}
    targets: set[str] = set()
    for anchor in soup.find_all("a"):
        path = urlsplit(str(anchor["href"])).path
        if path.startswith("/c/"):
            token = settings.signer.verify(path[3:])
            assert token is not None
            assert token.kind == "delivery_link"
            assert token.id == CLAIRE.delivery_id
            targets.add(resolve(links[token.position], settings))
    agenda = next(b for b in demo.blocks if b.kind == "agenda")
    resources = next(b for b in demo.blocks if b.kind == "resources")
    expected = {item["url"] for item in resources.data["items"]}
    expected |= {e["registration_url"] for e in agenda.data["events"] if e["registration_url"]}
    expected |= {settings.calendar_url(agenda.id, e["uid"]) for e in agenda.data["events"]}
    expected.add(str(demo.newsletter.website_url))
    assert expected <= targets


def test_footer_links_and_pixel(demo: IssueData, settings: RenderSettings) -> None:
    _text, html = _parts(_message(demo, settings, ["elus"]))
    soup = BeautifulSoup(html, "html.parser")
    by_text = {a.get_text(strip=True): str(a["href"]) for a in soup.find_all("a")}
    open_token, unsub, prefs = settings.signer.system_tokens(CLAIRE.delivery_id)
    assert by_text["Se désinscrire"] == f"{BASE}/u/{unsub}"
    assert by_text["Gérer mes préférences"] == f"{BASE}/p/{prefs}"
    assert by_text["Voir cette lettre dans votre navigateur"] == settings.view_online_url
    footer = soup.get_text(" ")
    assert "24 rue des Ateliers" in footer
    assert "Vous recevez cette lettre" in footer
    pixel = soup.find("img", src=re.compile(r"/o/"))
    assert pixel is not None
    assert pixel["src"] == f"{BASE}/o/{open_token}.gif"
    assert pixel["alt"] == ""


def test_blocks_limited_to_a_segment(demo: IssueData, settings: RenderSettings) -> None:
    restricted = next(b for b in demo.blocks if b.segments)
    title = restricted.data["title"]
    assert title not in _parts(_message(demo, settings, ["elus"]))[1]
    text, html = _parts(_message(demo, settings, sorted(restricted.segments)))
    assert title in html
    assert title in text
    assert variant_key(demo, ["elus"]) == "all"
    assert variant_key(demo, sorted(restricted.segments)) == str(restricted.id)


def test_text_part(demo: IssueData, settings: RenderSettings) -> None:
    text, _html = _parts(_message(demo, settings, ["elus"]))
    assert "<" not in text.replace("« ", "").replace(" »", "")
    assert "Bonjour Claire Dumont," in text
    for block in demo.blocks:
        if block.kind == "news" and not block.segments:
            assert f"== {block.data['title']} ==" in text
    assert "Samedi 16 janvier 2027, 9 h 30 – 12 h 30" in text
    assert "Lieu : " in text
    assert re.search(r"PDF, \d+,\d Mo", text)
    references = re.findall(r"^\[(\d+)\] (\S+)$", text, re.M)
    assert references
    assert [int(n) for n, _url in references] == list(range(1, len(references) + 1))
    for number, url in references:
        assert url.startswith(f"{BASE}/c/")
        assert f"[{number}]" in text.split("Liens :")[0]
    _open, unsub, prefs = settings.signer.system_tokens(CLAIRE.delivery_id)
    assert f"Se désinscrire : {BASE}/u/{unsub}" in text
    assert f"Gérer mes préférences : {BASE}/p/{prefs}" in text
    long_lines = [line for line in text.splitlines() if len(line) > 78 and "://" not in line]
    assert long_lines == []


@pytest.mark.parametrize("mode", ["off", "anonymous"])
def test_tracking_modes(demo: IssueData, settings: RenderSettings, mode: str) -> None:
    issue = replace(demo, newsletter=replace(demo.newsletter, tracking_mode=mode))
    first = _parts(_message(issue, settings, ["elus"]))[1]
    other = Recipient(delivery_id=202, email="karim.benali@cc-ternois.example.fr")
    second = _parts(_message(issue, settings, ["elus"], other))[1]
    resources = next(b for b in issue.blocks if b.kind == "resources")
    if mode == "off":
        assert resources.data["items"][0]["url"] in first
        assert "/o/" not in first
        assert "/c/" not in first
    else:
        assert "/c/" in first
        assert resources.data["items"][0]["url"] not in first
    strip = re.compile(r"/[up]/[\w-]{20}")  # unsubscribe and preferences stay personal
    assert strip.sub("", first).replace("Bonjour Claire Dumont,", "Bonjour,") == strip.sub(
        "", second
    )
