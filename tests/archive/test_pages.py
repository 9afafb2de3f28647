"""The public archive over HTTP: the issue page readers reach from « Voir en ligne »,
the index, 404s, CSP and caching."""

import datetime as dt
import re
from email.utils import format_datetime
from html import unescape

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from emails.tokens import TokenSigner
from service.issues.models import IssueStatus
from service.newsletters.models import Newsletter, TrackingMode
from tests.archive.conftest import PUBLIC_URL, RESTRICTED_URL, SECOND_TITLE, SENT_AT, Archive
from tests.factories import IssueFactory, NewsletterFactory, UserFactory
from tests.helpers import login

SECRET = "test-secret-key"  # tests/conftest.py make_config
BASE = "http://lettrine.test"


def hrefs(html: str) -> list[str]:
    return [str(a["href"]) for a in BeautifulSoup(html, "html.parser").find_all("a")]


def test_sent_issue_page_shows_its_blocks_with_the_real_urls(
    client: FlaskClient, archive: Archive
) -> None:
    response = client.get(f"/archives/{archive.first.id}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert '<html lang="fr"' in page
    assert "<title>La lettre — Le commerce de demain</title>" in page
    for text in ("Le commerce de demain", "Édito", "Atelier à Liévin", "Plénière à Lens"):
        assert text in page
    links = hrefs(page)
    assert PUBLIC_URL in links  # the real target, not a tracked redirect
    assert "https://www.agence.example.org" in links
    assert f"{BASE}/archives/lettres/lettre-agence" in links
    assert f"{BASE}/inscription" in links
    # « Ajouter à mon agenda » leads to the public .ics of the event, which answers.
    calendars = [href for href in links if href.startswith(f"{BASE}/agenda/")]
    assert len(calendars) == 2
    ics = client.get(calendars[0].removeprefix(BASE))
    assert ics.status_code == 200
    assert b"UID:atelier-lievin@test" in ics.get_data()
    # Sent without a schedule: the page carries the day it went out.
    assert "Mardi 12 janvier 2027" in page


def test_issue_page_carries_nothing_of_a_reader(client: FlaskClient, archive: Archive) -> None:
    page = client.get(f"/archives/{archive.first.id}").get_data(as_text=True)
    reader = archive.reader
    for personal in (reader.email, reader.first_name, reader.last_name, "Bonjour"):
        assert personal is not None
        assert personal not in page
    signer = TokenSigner(SECRET)
    delivery_id = archive.delivery.id
    tokens = [*signer.system_tokens(delivery_id), *signer.link_tokens(delivery_id, 8)]
    tokens += [signer.issue_open_token(archive.first.id)]
    tokens += [signer.issue_link_token(archive.first.id, p) for p in range(8)]
    for token in tokens:
        assert token not in page
    for href in hrefs(page):  # no tracked link, pixel, preferences or unsubscribe link
        assert not re.match(rf"{re.escape(BASE)}/(c|o|u|p|preferences)/", href), href
    assert ".gif" not in page
    assert not re.search(r"x[0-9a-f]{12}[A-Z]\d*Z", page), "a renderer marker was left"
    # The email's footer links are replaced by the subscription page.
    assert "Se désinscrire" not in page
    assert "Gérer mes préférences" not in page
    assert "Recevoir cette lettre par e-mail" in page


@pytest.mark.parametrize("mode", list(TrackingMode))
def test_links_are_untracked_whatever_the_tracking_mode(
    client: FlaskClient, db_session: Session, archive: Archive, mode: TrackingMode
) -> None:
    archive.newsletter.tracking_mode = mode
    db_session.commit()
    page = client.get(f"/archives/{archive.first.id}").get_data(as_text=True)
    assert PUBLIC_URL in hrefs(page)
    assert "/c/" not in page
    assert "/o/" not in page


def test_blocks_limited_to_segments_are_not_public(client: FlaskClient, archive: Archive) -> None:
    page = client.get(f"/archives/{archive.first.id}").get_data(as_text=True)
    assert "Séminaire réservé aux élus" not in page
    assert RESTRICTED_URL not in page
    assert "Réunion à huis clos" not in page
    assert "Agenda des élus" not in page


def test_issues_that_are_not_sent_are_not_found(client: FlaskClient, archive: Archive) -> None:
    missing = client.get("/archives/999999")
    assert missing.status_code == 404
    assert "Page introuvable" in missing.get_data(as_text=True)
    for status, issue in archive.hidden.items():
        response = client.get(f"/archives/{issue.id}")
        assert response.status_code == 404, status
        # The same answer as for an id that never existed: nothing to learn.
        assert response.get_data() == missing.get_data()
    for url in (
        "/archives/0",
        "/archives/2147483648",
        "/archives/" + "9" * 400,
        "/archives/abc",
        "/archives/-1",
        "/archives/1.5",
        "/archives/lettres/inconnue",
        "/archives/lettres/" + "x" * 5000,
        "/archives/lettres/inconnue/atom.xml",
        "/archives/lettres/inconnue/agenda.ics",
        "/archives/lettres/lettre-agence?page=99",
        "/archives/lettres/lettre-agence?page=-3",
    ):
        assert client.get(url).status_code == 404, url


@pytest.mark.parametrize("status", [IssueStatus.SENDING, IssueStatus.PAUSED])
def test_an_issue_being_sent_is_public(
    client: FlaskClient, db_session: Session, archive: Archive, status: IssueStatus
) -> None:
    archive.first.status = status
    db_session.commit()
    assert client.get(f"/archives/{archive.first.id}").status_code == 200


def test_issue_page_csp_allows_inline_style_and_no_script(
    client: FlaskClient, archive: Archive
) -> None:
    response = client.get(f"/archives/{archive.first.id}")
    csp = response.headers["Content-Security-Policy"]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["style-src"] == ["'unsafe-inline'"]
    assert "script-src" not in directives  # falls back to default-src 'none'
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["form-action"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert "'unsafe-eval'" not in csp
    page = response.get_data(as_text=True)
    assert "<script" not in page.lower()
    assert not re.search(r"\son[a-z]+\s*=", page, re.IGNORECASE)
    assert "javascript:" not in page.lower()
    # The other archive pages keep the app's strict policy.
    index = client.get("/archives/lettres/lettre-agence")
    assert "style-src 'self'" in index.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in index.headers["Content-Security-Policy"]


def test_issue_page_is_cacheable_and_revalidates(client: FlaskClient, archive: Archive) -> None:
    response = client.get(f"/archives/{archive.first.id}")
    etag = response.headers["ETag"]
    assert response.headers["Last-Modified"] == format_datetime(SENT_AT, usegmt=True)
    assert "public" in response.headers["Cache-Control"]
    assert "max-age=300" in response.headers["Cache-Control"]
    # The ETag names what the page is made from: asking again with it gets a 304.
    again = client.get(f"/archives/{archive.first.id}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    since = format_datetime(SENT_AT + dt.timedelta(hours=1), usegmt=True)
    assert (
        client.get(
            f"/archives/{archive.first.id}", headers={"If-Modified-Since": since}
        ).status_code
        == 304
    )
    assert (
        client.get(
            f"/archives/{archive.first.id}", headers={"If-None-Match": '"autre"'}
        ).status_code
        == 200
    )


def test_index_goes_straight_to_the_only_newsletter(client: FlaskClient, archive: Archive) -> None:
    response = client.get("/archives")
    assert response.status_code == 302
    assert response.headers["Location"] == "/archives/lettres/lettre-agence"


def test_index_lists_every_newsletter_with_published_issues(
    client: FlaskClient, archive: Archive
) -> None:
    other = NewsletterFactory(slug="lettre-elus", name="La Lettre des élus")
    IssueFactory(newsletter=other, status=IssueStatus.SENT, send_started_at=SENT_AT)
    NewsletterFactory(slug="jamais", name="Lettre jamais envoyée")
    response = client.get("/archives")
    assert response.status_code == 200
    page = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    assert page.h1 is not None
    assert page.h1.get_text() == "Archives des lettres d'information"
    names = [a.get_text() for a in page.select("ul.archive-newsletters a")]
    assert names == ["La Lettre de l'Agence", "La Lettre des élus"]  # most recent first
    assert "2 numéros, dernier le 19 janvier 2027" in " ".join(page.get_text().split())
    assert "Lettre jamais envoyée" not in page.get_text()


def test_newsletter_page_lists_public_issues_newest_first(
    client: FlaskClient, archive: Archive
) -> None:
    response = client.get("/archives/lettres/lettre-agence")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["ETag"]
    html = response.get_data(as_text=True)
    page = BeautifulSoup(html, "html.parser")
    assert page.html is not None
    assert page.html["lang"] == "fr"
    assert page.h1 is not None
    assert page.h1.get_text() == "Archives de La Lettre de l'Agence"
    titles = [h2.get_text(strip=True) for h2 in page.select(".archive-issues h2")]
    assert titles == [SECOND_TITLE, "Le commerce de demain"]
    assert "Pas encore public" not in html
    text = " ".join(page.get_text().split())
    assert "2 numéros publiés, du plus récent au plus ancien." in text
    assert "n° 1 · 12 janvier 2027" in text
    assert "Quatre ateliers en 2027" in text
    first = page.select(".archive-issues a")[1]
    assert first["href"] == f"/archives/{archive.first.id}"
    alternates = {
        str(link["type"]): str(link["href"]) for link in page.select('head link[rel="alternate"]')
    }
    assert alternates == {
        "application/atom+xml": "/archives/lettres/lettre-agence/atom.xml",
        "text/calendar": "/archives/lettres/lettre-agence/agenda.ics",
    }
    assert "<script" not in html
    # Conditional request: nothing new, nothing sent.
    etag = response.headers["ETag"]
    cached = client.get("/archives/lettres/lettre-agence", headers={"If-None-Match": etag})
    assert cached.status_code == 304


def test_newsletter_page_is_paginated(
    client: FlaskClient, db_session: Session, archive: Archive
) -> None:
    for n in range(23):
        IssueFactory(
            newsletter=archive.newsletter,
            number=100 + n,
            title=f"Ancien numéro {100 + n}",
            status=IssueStatus.SENT,
            send_started_at=SENT_AT - dt.timedelta(days=30 * (n + 1)),
        )
    first = BeautifulSoup(
        client.get("/archives/lettres/lettre-agence").get_data(as_text=True), "html.parser"
    )
    assert len(first.select(".archive-issues li")) == 20
    pager = first.select_one('nav[aria-label="Pages des archives"]')
    assert pager is not None
    assert "Page 1 sur 2" in pager.get_text()
    older = pager.select_one('a[rel="next"]')
    assert older is not None
    assert older.get_text() == "Numéros plus anciens"
    second = BeautifulSoup(client.get(str(older["href"])).get_data(as_text=True), "html.parser")
    titles = [h2.get_text(strip=True) for h2 in second.select(".archive-issues h2")]
    assert titles == [f"Ancien numéro {100 + n}" for n in range(18, 23)]  # the oldest last


def test_back_office_links_a_sent_issue_to_its_archive_page(
    client: FlaskClient, archive: Archive
) -> None:
    UserFactory(email="redaction@agence.example.org")
    login(client, "redaction@agence.example.org")
    page = client.get(f"/numeros/{archive.first.id}").get_data(as_text=True)
    link = BeautifulSoup(page, "html.parser").find("a", string="Voir dans les archives")
    assert link is not None
    assert link["href"] == f"/archives/{archive.first.id}"
    draft = client.get(f"/numeros/{archive.hidden[IssueStatus.DRAFT].id}").get_data(as_text=True)
    assert "Voir dans les archives" not in draft


def test_issue_page_follows_changes_of_the_newsletter(
    client: FlaskClient, db_session: Session, archive: Archive
) -> None:
    """Pages are kept rendered per version: a changed footer is a new version."""
    issue_id, newsletter_id = archive.first.id, archive.newsletter.id
    before = client.get(f"/archives/{issue_id}")
    assert "en tant que partenaire de l'agence" in unescape(before.get_data(as_text=True))
    newsletter = db_session.get(Newsletter, newsletter_id)
    assert newsletter is not None
    newsletter.legal_footer = "Nouvelle mention légale de l'agence."
    db_session.commit()
    after = client.get(f"/archives/{issue_id}", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert "Nouvelle mention légale de l'agence." in unescape(after.get_data(as_text=True))
