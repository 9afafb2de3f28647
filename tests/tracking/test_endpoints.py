"""The tracking endpoints through real requests: exact redirects, 404 for anything
tampered, the newsletter's tracking mode, truncated addresses, machine hits."""

import datetime as dt
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import resolve
from emails.render import collect_links
from service.issues.rendering import issue_data, render_settings
from service.newsletters.models import Newsletter, TrackingMode
from service.tracking import ingest, services
from service.tracking.ingest import PIXEL
from service.tracking.models import Event, EventKind
from tests.tracking.conftest import Sent, config_of, demo_issue, send_issue

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
HUMAN = {"User-Agent": FIREFOX}


def _events(db_session: Session) -> list[Event]:
    return list(db_session.scalars(select(Event).order_by(Event.id)))


def test_every_link_of_the_received_message_leads_to_its_stored_url(
    app: Flask, client: FlaskClient, db_session: Session, sent: Sent
) -> None:
    """The tracked URLs the recipient really got, followed one by one: each goes to
    exactly the URL the email would have linked to without tracking."""
    settings = render_settings(config_of(app), sent.issue.id)
    expected = [resolve(link, settings) for link in collect_links(issue_data(sent.issue))]
    clicks = [url for url in sent.tracked_urls() if "/c/" in url]
    assert len(clicks) == len(expected) == len(sent.links) >= 10
    targets = []
    for url in clicks:
        response = client.get(urlsplit(url).path, headers=HUMAN)
        assert response.status_code == 302
        targets.append(response.headers["Location"])
    assert sorted(targets) == sorted(expected)
    assert [link.url for link in sent.links] == expected
    assert any(t.startswith("http://lettrine.test/agenda/") for t in targets)  # calendar
    events = _events(db_session)
    assert len(events) == len(clicks)
    assert {e.kind for e in events} == {EventKind.CLICK}
    assert {e.delivery_id for e in events} == {sent.delivery.id}
    assert {e.link_id for e in events} == {link.id for link in sent.links}
    # Every link of one delivery within a second: a scanner, not a reader.
    assert all(e.is_machine for e in events)


def test_one_human_click(client: FlaskClient, db_session: Session, sent: Sent) -> None:
    response = client.get(sent.click_path(2), headers=HUMAN)
    assert response.status_code == 302
    assert response.headers["Location"] == sent.links[2].url
    (event,) = _events(db_session)
    assert (event.kind, event.issue_id, event.delivery_id, event.link_id) == (
        EventKind.CLICK,
        sent.issue.id,
        sent.delivery.id,
        sent.links[2].id,
    )
    assert not event.is_machine
    assert event.user_agent_family == "Firefox"


def test_pixel(client: FlaskClient, db_session: Session, sent: Sent) -> None:
    pixel = next(url for url in sent.tracked_urls() if "/o/" in url)
    response = client.get(urlsplit(pixel).path, headers=HUMAN)
    assert response.status_code == 200
    assert response.data == PIXEL
    assert response.mimetype == "image/gif"
    assert response.headers["Cache-Control"] == "no-store"
    (event,) = _events(db_session)
    assert (event.kind, event.delivery_id, event.link_id) == (
        EventKind.OPEN,
        sent.delivery.id,
        None,
    )
    assert not event.is_machine


def _tampered(sent: Sent, other: Sent) -> dict[str, str]:
    good = sent.click_path(1)[3:]
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    # A genuine token of the other issue's delivery, at a position only the demo issue has.
    foreign = other.signer.link_tokens(other.delivery.id, 6)[5]
    unknown_delivery = sent.signer.link_tokens(10**9, 1)[0]
    unsubscribe = sent.signer.system_tokens(sent.delivery.id)[1]
    return {
        "changed signature": f"/c/{flipped}",
        "link of another issue": f"/c/{foreign}",
        "unknown delivery": f"/c/{unknown_delivery}",
        "open token as a link": f"/c/{sent.signer.system_tokens(sent.delivery.id)[0]}",
        "unsubscribe token as a link": f"/c/{unsubscribe}",
        "url parameter": f"/c/{good}?url=https://evil.example.org/",
        "next parameter": f"/c/{good}?next=//evil.example.org",
        "protocol-relative": "/c//evil.example.org",
        "backslashes": "/c/\\\\evil.example.org",
        "encoded slashes": "/c/%2F%2Fevil.example.org",
        "encoded backslashes": "/c/%5C%5Cevil.example.org",
        "token then encoded slash": f"/c/{good}%2F%2Fevil.example.org",
        "over-long token": f"/c/{good * 200}",
        "truncated token": f"/c/{good[:-1]}",
        "not base64": "/c/" + "!" * 20,
        "non-ASCII": "/c/" + "é" * 20,
    }


@pytest.mark.parametrize(
    "case",
    [
        "changed signature",
        "link of another issue",
        "unknown delivery",
        "open token as a link",
        "unsubscribe token as a link",
        "url parameter",
        "next parameter",
        "protocol-relative",
        "backslashes",
        "encoded slashes",
        "encoded backslashes",
        "token then encoded slash",
        "over-long token",
        "truncated token",
        "not base64",
        "non-ASCII",
    ],
)
def test_tampered_links_get_the_404_page(
    client: FlaskClient, db_session: Session, sent: Sent, other: Sent, case: str
) -> None:
    response = client.get(_tampered(sent, other)[case], headers=HUMAN)
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert "Page introuvable" in response.get_data(as_text=True)
    assert _events(db_session) == []


def test_the_other_issue_still_redirects_to_its_own_link(
    client: FlaskClient, sent: Sent, other: Sent
) -> None:
    response = client.get(other.click_path(0), headers=HUMAN)
    assert response.headers["Location"] == "https://autre.example.org/"


@pytest.mark.parametrize(
    ("stored", "location"),
    [
        ("javascript:alert(1)", None),
        ("https://example.org/a\r\nSet-Cookie: x=1", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("https://example.org/une page", "https://example.org/une%20page"),
        ("https://example.org/été?q=à", "https://example.org/%C3%A9t%C3%A9?q=%C3%A0"),
        ("mailto:contact@agence.example.org", "mailto:contact@agence.example.org"),
    ],
)
def test_only_safe_stored_urls_are_redirected_to(
    client: FlaskClient, db_session: Session, sent: Sent, stored: str, location: str | None
) -> None:
    sent.links[0].url = stored
    db_session.commit()
    response = client.get(sent.click_path(0), headers=HUMAN)
    assert response.status_code == (302 if location else 404)
    assert response.headers.get("Location") == location


@pytest.mark.parametrize(
    "path",
    [
        "/o/AAAAAAAAAAAAAAAAAAAAAAAA.gif",
        "/o/" + "A" * 20 + ".gif",
        "/o/" + "x" * 5000 + ".gif",
    ],
)
def test_garbage_pixels_are_gifs_that_record_nothing(
    client: FlaskClient, db_session: Session, sent: Sent, path: str
) -> None:
    response = client.get(path, headers=HUMAN)
    assert response.status_code == 200
    assert response.data == PIXEL
    assert _events(db_session) == []


def test_link_token_as_a_pixel_records_nothing(
    client: FlaskClient, db_session: Session, sent: Sent
) -> None:
    assert client.get(f"/o/{sent.click_path(0)[3:]}.gif").data == PIXEL
    assert _events(db_session) == []


# --- Tracking modes --------------------------------------------------------------------------


def test_anonymous_mode_keeps_no_delivery(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    issue = demo_issue(db_session, TrackingMode.ANONYMOUS)
    sent = send_issue(db_session, config_of(app), issue, sent_ago=dt.timedelta(hours=1))
    urls = sent.tracked_urls()
    # The message itself carries per-issue tokens only: no way to tell recipients apart.
    tokens = [sent.signer.verify(urlsplit(u).path[3:].removesuffix(".gif")) for u in urls]
    assert {t.kind for t in tokens if t is not None} == {"issue_link", "issue_open"}
    assert None not in tokens
    pixel = next(url for url in urls if "/o/" in url)
    link = next(url for url in urls if "/c/" in url)
    assert client.get(urlsplit(pixel).path, headers=HUMAN).data == PIXEL
    response = client.get(urlsplit(link).path, headers=HUMAN)
    assert response.headers["Location"] == sent.links[0].url
    # A per-recipient link sent before the switch to anonymous: counted, not attributed.
    assert client.get(sent.click_path(1), headers=HUMAN).status_code == 302
    events = _events(db_session)
    assert [e.kind for e in events] == [EventKind.OPEN, EventKind.CLICK, EventKind.CLICK]
    assert {e.delivery_id for e in events} == {None}
    assert {e.issue_id for e in events} == {issue.id}
    assert [e.link_id for e in events] == [None, sent.links[0].id, sent.links[1].id]


def test_off_mode_redirects_but_records_nothing(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    issue = demo_issue(db_session, TrackingMode.OFF)
    sent = send_issue(db_session, config_of(app), issue, sent_ago=dt.timedelta(hours=1))
    assert sent.tracked_urls() == []  # nothing rewritten in the email
    # Links of a copy sent while tracking was on still lead where they should.
    response = client.get(sent.click_path(0), headers=HUMAN)
    assert response.status_code == 302
    assert response.headers["Location"] == sent.links[0].url
    assert client.get(sent.open_path(), headers=HUMAN).data == PIXEL
    assert _events(db_session) == []


# --- Addresses, machines, floods ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
    ],
)
def test_addresses_are_truncated(
    client: FlaskClient, db_session: Session, sent: Sent, address: str, stored: str
) -> None:
    client.get(
        sent.open_path(),
        headers={**HUMAN, "X-Forwarded-For": "198.51.100.9"},  # no trusted proxy: ignored
        environ_base={"REMOTE_ADDR": address},
    )
    (event,) = _events(db_session)
    assert event.ip_truncated == stored


def test_machine_hits_are_flagged(
    app: Flask, client: FlaskClient, db_session: Session, sent: Sent
) -> None:
    response = client.head(sent.click_path(0), headers=HUMAN)  # a scanner's HEAD
    assert response.status_code == 302
    client.get(sent.open_path(), headers={"User-Agent": ""})  # no user agent
    client.get(sent.open_path(), headers={"User-Agent": "Mozilla/5.0"})  # Apple's proxy
    gmail = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    client.get(sent.open_path(), headers={"User-Agent": gmail})
    assert [(e.is_machine, e.user_agent_family) for e in _events(db_session)] == [
        (True, "Firefox"),
        (True, "Inconnu"),
        (True, "Apple Mail Privacy"),
        (False, "Gmail"),
    ]


def test_hits_before_or_right_after_sending_are_machines(
    app: Flask, client: FlaskClient, db_session: Session, sent: Sent, other: Sent
) -> None:
    queued = send_issue(db_session, config_of(app), sent.issue, sent_ago=None)
    just_sent = send_issue(db_session, config_of(app), other.issue, sent_ago=dt.timedelta(0))
    client.get(queued.click_path(0), headers=HUMAN)
    client.get(just_sent.click_path(0), headers=HUMAN)
    assert [e.is_machine for e in _events(db_session)] == [True, True]


def test_floods_from_one_address_are_answered_but_not_all_recorded(
    client: FlaskClient, db_session: Session, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "IP_LIMIT", 5)
    for _ in range(12):
        assert client.get(sent.open_path(), headers=HUMAN).status_code == 200
        assert client.get(sent.click_path(0), headers=HUMAN).status_code == 302
    assert len(_events(db_session)) == 5


def test_the_mode_is_read_at_hit_time(
    client: FlaskClient, db_session: Session, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Switching a newsletter to « off » stops recording for copies already sent (within
    ``ISSUE_TTL``, the per-process cache of an issue's mode: 0 here)."""
    monkeypatch.setattr(ingest, "ISSUE_TTL", 0.0)
    client.get(sent.open_path(), headers=HUMAN)
    newsletter = db_session.get(Newsletter, sent.issue.newsletter_id)
    assert newsletter is not None
    newsletter.tracking_mode = TrackingMode.OFF
    db_session.commit()
    client.get(sent.open_path(), headers=HUMAN)
    assert client.get(sent.click_path(0), headers=HUMAN).status_code == 302
    assert len(_events(db_session)) == 1
