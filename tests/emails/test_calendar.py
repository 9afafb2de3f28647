"""« Ajouter à mon agenda »: RFC 5545 files, served publicly by a signed link."""

import datetime as dt
from urllib.parse import urlsplit

import icalendar
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from emails import IssueData, RenderSettings
from emails.calendar import calendar
from emails.formatting import event_when, format_label, french_size, french_time, parse_local
from service.issues.models import Block, Issue
from service.issues.services import validated_block_data
from service.public.views import ics_disposition

STAMP = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def _agenda(issue: IssueData | Issue) -> tuple[int, dict]:  # type: ignore[type-arg]
    block = next(b for b in issue.blocks if b.kind == "agenda")
    return block.id, dict(block.data)


def test_ics_is_rfc5545_with_paris_timezone(demo: IssueData) -> None:
    _block_id, data = _agenda(demo)
    event = data["events"][0]
    parsed = icalendar.Calendar.from_ical(calendar([event], stamp=STAMP))
    assert parsed["VERSION"] == "2.0"
    assert parsed["PRODID"]
    zones = list(parsed.walk("VTIMEZONE"))
    assert [str(z["TZID"]) for z in zones] == ["Europe/Paris"]
    (vevent,) = parsed.walk("VEVENT")
    assert str(vevent["UID"]) == event["uid"]
    assert int(vevent["SEQUENCE"]) == event.get("sequence", 0)
    assert str(vevent["SUMMARY"]) == event["title"]
    start = vevent.decoded("DTSTART")
    assert start == parse_local(event["start"])
    assert str(start.tzinfo) == "Europe/Paris"
    assert vevent["DTSTART"].params["TZID"] == "Europe/Paris"
    assert event["place"] in str(vevent["LOCATION"])
    assert vevent.decoded("DTSTAMP") == STAMP


def test_public_ics_link(
    client: FlaskClient, demo_issue: Issue, settings: RenderSettings, db_session: Session
) -> None:
    block_id, data = _agenda(demo_issue)
    event = data["events"][0]
    url = settings.calendar_url(block_id, event["uid"])
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    # Named after the event (demo: « Commerce de demain : innover par les services… »).
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="commerce-de-demain-innover-par-les-services-en-centre-ville.ics"; '
        "filename*=UTF-8''commerce-de-demain-innover-par-les-services-en-centre-ville.ics"
    )
    (vevent,) = icalendar.Calendar.from_ical(response.data).walk("VEVENT")
    assert str(vevent["UID"]) == event["uid"]
    assert int(vevent["SEQUENCE"]) == 0

    # The event moves: same link, same UID, SEQUENCE 1.
    block = db_session.get(Block, block_id)  # the request ended the fixture's session
    assert block is not None
    moved = {**data, "events": [{**event, "start": "2027-01-16T10:00"}, *data["events"][1:]]}
    block.data = validated_block_data("agenda", moved, data)
    db_session.commit()
    (vevent,) = icalendar.Calendar.from_ical(client.get(urlsplit(url).path).data).walk("VEVENT")
    assert int(vevent["SEQUENCE"]) == 1
    assert vevent.decoded("DTSTART").hour == 10


def test_tampered_ics_links_are_404(
    client: FlaskClient, demo_issue: Issue, settings: RenderSettings
) -> None:
    block_id, data = _agenda(demo_issue)
    path = urlsplit(settings.calendar_url(block_id, data["events"][0]["uid"])).path
    token = path.removeprefix("/agenda/").removesuffix(".ics")
    assert client.get(f"/agenda/{token[:-2]}xx.ics").status_code == 404
    assert client.get("/agenda/not-a-token.ics").status_code == 404
    other = urlsplit(settings.calendar_url(block_id, "unknown@aula.example.org")).path
    assert client.get(other).status_code == 404


def test_french_formats() -> None:
    assert french_time(parse_local("2027-01-16T09:30")) == "9 h 30"
    assert french_time(parse_local("2027-01-16T14:00")) == "14 h"
    assert event_when(parse_local("2027-01-16T09:30"), parse_local("2027-01-16T12:30")) == (
        "Samedi 16 janvier 2027, 9 h 30 – 12 h 30"
    )
    assert event_when(parse_local("2027-03-31T18:00"), parse_local("2027-04-01T12:00")) == (
        "Du mercredi 31 mars 2027, 18 h, au jeudi 1 avril 2027, 12 h"
    )
    assert french_size(2_400_000) == "2,4 Mo"
    assert french_size(12_600_000) == "13 Mo"
    assert french_size(850_000) == "850 ko"
    assert french_size(512) == "512 octets"
    assert format_label("pdf", 2_400_000) == "PDF, 2,4 Mo"
    assert format_label("html", None) == "HTML"
    assert format_label(None, None) is None


def test_ics_file_name_is_the_event_title_safe_for_any_client() -> None:
    disposition = ics_disposition("Plénière à Lens / « Œuvres » \r\nBcc: x")
    assert disposition == (
        'attachment; filename="pleniere-a-lens-oeuvres-bcc-x.ics"; '
        "filename*=UTF-8''pl%C3%A9ni%C3%A8re-%C3%A0-lens-%C5%93uvres-bcc-x.ics"
    )
    assert disposition.isascii()
    assert ics_disposition("« ! »") == (
        "attachment; filename=\"evenement.ics\"; filename*=UTF-8''evenement.ics"
    )
