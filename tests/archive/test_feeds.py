"""The archive's Atom feed and agenda feed: valid, complete, each thing once."""

import datetime as dt
import xml.etree.ElementTree as ET
from email.utils import format_datetime

import icalendar
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from service.issues.models import Issue, IssueStatus
from service.issues.services import duplicate_issue
from service.newsletters.models import Newsletter
from tests.archive.conftest import SECOND_TITLE, SENT_AT, Archive, event
from tests.factories import BlockFactory, IssueFactory, UserFactory

NS = {"atom": "http://www.w3.org/2005/Atom"}
BASE = "http://lettrine.test"
ATOM_URL = "/archives/lettres/lettre-agence/atom.xml"
AGENDA_URL = "/archives/lettres/lettre-agence/agenda.ics"


def parse(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # noqa: S314 - our own output, parsed to check it


def test_atom_feed_is_valid_and_lists_public_issues(client: FlaskClient, archive: Archive) -> None:
    response = client.get(ATOM_URL)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    body = response.get_data()
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    feed = parse(body)
    assert feed.tag == "{http://www.w3.org/2005/Atom}feed"
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "fr"
    assert feed.findtext("atom:title", namespaces=NS) == "La Lettre de l'Agence"
    feed_id = feed.findtext("atom:id", namespaces=NS) or ""
    assert feed_id.startswith("tag:lettrine.test,")
    # The feed was updated when the latest issue went out.
    assert feed.findtext("atom:updated", namespaces=NS) == "2027-01-19T08:30:00Z"
    links = {link.get("rel"): link.get("href") for link in feed.findall("atom:link", NS)}
    assert links == {
        "self": f"{BASE}{ATOM_URL}",
        "alternate": f"{BASE}/archives/lettres/lettre-agence",
    }
    assert feed.findtext("atom:author/atom:name", namespaces=NS) == "Agence d'urbanisme"

    entries = feed.findall("atom:entry", NS)
    # Newest first; drafts, approved, scheduled and cancelled issues are absent.
    titles = [e.findtext("atom:title", namespaces=NS) for e in entries]
    assert titles == [f"n° 2 — {SECOND_TITLE}", "n° 1 — Le commerce de demain"]
    ids = [e.findtext("atom:id", namespaces=NS) for e in entries]
    assert len(set(ids)) == 2
    assert all(i and i.startswith("tag:lettrine.test,") and i != feed_id for i in ids)
    second, first = entries
    assert first.findtext("atom:published", namespaces=NS) == "2027-01-12T08:30:00Z"
    assert first.findtext("atom:updated", namespaces=NS) == "2027-01-12T08:30:00Z"
    assert first.findtext("atom:summary", namespaces=NS) == "Quatre ateliers en 2027"
    # No preheader: the subject summarises it.
    assert second.findtext("atom:summary", namespaces=NS) == "Le numéro 2"
    link = first.find("atom:link", NS)
    assert link is not None
    assert link.get("href") == f"{BASE}/archives/{archive.first.id}"
    # The title was escaped on the way out, not mangled.
    assert b"&lt;commerce&gt;" in body
    assert b"&amp;" in body


def test_atom_ids_stay_when_the_slug_changes(
    client: FlaskClient, db_session: Session, archive: Archive
) -> None:
    newsletter_id = archive.newsletter.id
    before = parse(client.get(ATOM_URL).get_data())
    newsletter = db_session.get(Newsletter, newsletter_id)
    assert newsletter is not None
    newsletter.slug = "nouveau-nom"
    db_session.commit()
    after = parse(client.get("/archives/lettres/nouveau-nom/atom.xml").get_data())
    ids = [e.findtext("atom:id", namespaces=NS) for e in before.iter(f"{{{NS['atom']}}}entry")]
    assert ids == [
        e.findtext("atom:id", namespaces=NS) for e in after.iter(f"{{{NS['atom']}}}entry")
    ]
    assert before.findtext("atom:id", namespaces=NS) == after.findtext("atom:id", namespaces=NS)


def test_atom_feed_drops_characters_xml_cannot_carry(
    client: FlaskClient, db_session: Session, archive: Archive
) -> None:
    archive.second.title = "Titre\x0bavec\x1fun caractère de contrôle"
    db_session.commit()
    feed = parse(client.get(ATOM_URL).get_data())
    assert feed.findtext("atom:entry/atom:title", namespaces=NS) == (
        "n° 2 — Titreavecun caractère de contrôle"
    )


def test_feeds_answer_conditional_requests(client: FlaskClient, archive: Archive) -> None:
    for url in (ATOM_URL, AGENDA_URL):
        response = client.get(url)
        assert response.headers["Last-Modified"] == format_datetime(
            SENT_AT + dt.timedelta(days=7), usegmt=True
        )
        assert "max-age=300" in response.headers["Cache-Control"]
        assert (
            client.get(url, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
        )
        since = response.headers["Last-Modified"]
        assert client.get(url, headers={"If-Modified-Since": since}).status_code == 304


def test_agenda_feed_has_every_public_event_once(client: FlaskClient, archive: Archive) -> None:
    response = client.get(AGENDA_URL)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    body = response.get_data()
    # Strict RFC 5545 lines: CRLF ends, at most 75 octets each.
    assert body.endswith(b"\r\n")
    lines = body.split(b"\r\n")[:-1]
    assert all(len(line) <= 75 for line in lines)
    assert b"\n" not in b"".join(lines)

    cal = icalendar.Calendar.from_ical(body)
    assert cal["X-WR-CALNAME"] == "Agenda — La Lettre de l'Agence"
    zones = [tz["TZID"] for tz in cal.walk("VTIMEZONE")]
    assert zones == ["Europe/Paris"]
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    uids = [str(e["UID"]) for e in cal.walk("VEVENT")]
    assert sorted(uids) == ["atelier-lievin@test", "pleniere-lens@test"]  # each once
    # The event updated in the second issue comes in its latest version.
    moved = events["atelier-lievin@test"]
    assert str(moved["SUMMARY"]) == "Atelier à Liévin (nouvelle date)"
    assert int(moved["SEQUENCE"]) == 1
    start = moved.decoded("DTSTART")
    assert start.isoformat() == "2027-02-10T09:30:00+01:00"
    assert str(start.tzinfo) == "Europe/Paris"
    # Segment-limited blocks and issues that are not public stay out.
    assert b"huis clos" not in body
    assert b"Secret" not in body


def test_agenda_feed_of_a_newsletter_without_events_is_an_empty_calendar(
    client: FlaskClient, db_session: Session, archive: Archive
) -> None:
    issue = IssueFactory(newsletter__slug="sans-agenda", status=IssueStatus.SENT)
    BlockFactory(issue=issue, kind="text", data={"title": None, "html": "<p>Rien</p>"})
    cal = icalendar.Calendar.from_ical(
        client.get("/archives/lettres/sans-agenda/agenda.ics").get_data()
    )
    assert cal.walk("VEVENT") == []


def test_feeds_follow_a_new_issue_at_once(
    client: FlaskClient, db_session: Session, archive: Archive
) -> None:
    """Feeds are kept built per version: sending an issue is a new version."""
    newsletter_id = archive.newsletter.id
    atom_before = client.get(ATOM_URL)
    agenda_before = client.get(AGENDA_URL)
    issue = IssueFactory(
        newsletter=db_session.get(Newsletter, newsletter_id),
        number=3,
        title="Troisième numéro",
        status=IssueStatus.SENT,
        send_started_at=SENT_AT + dt.timedelta(days=14),
    )
    BlockFactory(
        issue=issue,
        kind="agenda",
        data={"title": "Agenda", "events": [event("forum@test", "Forum", "2027-04-01T10:00")]},
    )
    atom_after = client.get(ATOM_URL, headers={"If-None-Match": atom_before.headers["ETag"]})
    assert atom_after.status_code == 200
    titles = [e.findtext("atom:title", namespaces=NS) for e in parse(atom_after.get_data())]
    assert "n° 3 — Troisième numéro" in titles
    agenda_after = client.get(AGENDA_URL, headers={"If-None-Match": agenda_before.headers["ETag"]})
    assert agenda_after.status_code == 200
    uids = [
        str(e["UID"]) for e in icalendar.Calendar.from_ical(agenda_after.get_data()).walk("VEVENT")
    ]
    assert sorted(uids) == ["atelier-lievin@test", "forum@test", "pleniere-lens@test"]


def test_agenda_feed_shows_an_event_of_a_duplicated_issue_once(
    client: FlaskClient, db_session: Session, archive: Archive
) -> None:
    """A copy's events get new UIDs (so editing a copied row never moves the original
    event in calendars); the feed still shows each event once, as the copy has it."""
    second = db_session.get(Issue, archive.second.id)
    assert second is not None
    copy_ = duplicate_issue(db_session, second, UserFactory())
    (block,) = copy_.blocks
    (carried,) = block.data["events"]
    assert carried["uid"] != "atelier-lievin@test"  # the decision: fresh UIDs
    # The editor retouches the copy: spacing and case of the place, and a parallel
    # workshop at the same time elsewhere, which is another event.
    carried = {**carried, "place": "  salle des  Fêtes ", "description": "Salle 2"}
    parallel = {
        **event("atelier-bruay@test", "Atelier à Liévin (nouvelle date)", carried["start"]),
        "place": "Médiathèque de Bruay",
    }
    block.data = {**block.data, "events": [carried, parallel]}
    copy_.status = IssueStatus.SENT
    copy_.send_started_at = SENT_AT + dt.timedelta(days=14)
    db_session.commit()

    cal = icalendar.Calendar.from_ical(client.get(AGENDA_URL).get_data())
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    assert sorted(events) == sorted([carried["uid"], "atelier-bruay@test", "pleniere-lens@test"])
    assert str(events[carried["uid"]]["DESCRIPTION"]) == "Salle 2"  # the latest issue's version
    assert str(events["atelier-bruay@test"]["LOCATION"]).startswith("Médiathèque de Bruay")
