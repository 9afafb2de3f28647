"""Links stored for an issue: once, at the positions of the email's tracked URLs."""

import http.client
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm import Session as OrmSession

from emails import resolve
from emails.render import collect_links
from emails.tokens import TokenSigner
from service.accounts.models import Role
from service.delivery.services import start_sending
from service.issues.models import Issue, IssueStatus
from service.issues.rendering import issue_data, render_settings
from service.newsletters.models import TrackingMode
from service.tracking.models import Event, Link, LinkKind
from service.tracking.services import store_links
from tests.factories import UserFactory
from tests.processes import live_app
from tests.tracking.conftest import Sent, config_of, demo_issue


def test_store_links_is_idempotent_and_matches_the_email(
    app: Flask, db_session: Session, sent: Sent
) -> None:
    config = config_of(app)
    assert store_links(db_session, sent.issue, config) == 0
    db_session.commit()
    links = list(
        db_session.scalars(
            select(Link).where(Link.issue_id == sent.issue.id).order_by(Link.position)
        )
    )
    expected = collect_links(issue_data(sent.issue))
    settings = render_settings(config, sent.issue.id)
    assert [(link.position, link.url, link.block_id) for link in links] == [
        (e.position, resolve(e, settings), e.block_id) for e in expected
    ]
    kinds = {link.kind for link in links}
    assert {LinkKind.LINK, LinkKind.RESOURCE, LinkKind.CALENDAR, LinkKind.SYSTEM} <= kinds
    calendar = next(link for link in links if link.kind is LinkKind.CALENDAR)
    assert calendar.url.startswith("http://lettrine.test/agenda/")
    assert calendar.label is not None
    assert calendar.label.startswith("Ajouter à mon agenda")
    # The tracked URLs of the sent message name positions 0..n-1 of these links.
    tokens = [urlsplit(u).path[3:] for u in sent.tracked_urls() if "/c/" in u]
    verified = [TokenSigner(config.secret_key).verify(token) for token in tokens]
    positions = {v.position for v in verified if v is not None}
    assert len(verified) == len(links)
    assert positions == {link.position for link in links}


def test_starting_to_send_stores_the_links(app: Flask, db_session: Session) -> None:
    issue = demo_issue(db_session, TrackingMode.INDIVIDUAL)
    issue.status = IssueStatus.APPROVED
    db_session.commit()
    with app.app_context():
        start_sending(db_session, issue, UserFactory(role=Role.PUBLISHER))
    count = db_session.scalar(select(func.count()).where(Link.issue_id == issue.id))
    assert count == len(collect_links(issue_data(issue)))


@pytest.mark.postgres_only
@pytest.mark.slow
def test_raw_requests_to_a_live_server(engine: Engine, database_url: str, tmp_path: Path) -> None:
    """Paths as a browser or an attacker sends them, without the test client's tidying."""
    with live_app(engine, database_url, tmp_path) as (base, app):
        with OrmSession(engine) as session:
            issue = demo_issue(session, TrackingMode.INDIVIDUAL)
            issue.status = IssueStatus.SENT
            store_links(session, issue, config_of(app))
            session.commit()
            link = session.scalars(select(Link).where(Link.position == 0)).one()
            issue_id = issue.id
        signer = TokenSigner(config_of(app).secret_key)
        good = signer.issue_link_token(issue_id, 0)
        host = urlsplit(base).netloc
        answers = {}
        for path in [
            f"/c/{good}",
            f"/c/{good}?url=https://evil.example.org/",
            f"/c/{good}?next=//evil.example.org",
            "/c//evil.example.org",
            "/c/\\\\evil.example.org",
            "/c/%2F%2Fevil.example.org",
            "/c/%5C%5Cevil.example.org",
            f"/c/{good}/..%2F..%2Fevil.example.org",
            "/c/" + good * 100,
        ]:
            connection = http.client.HTTPConnection(host, timeout=10)
            connection.request("GET", path, headers={"User-Agent": "Firefox/128.0"})
            response = connection.getresponse()
            answers[path] = (response.status, response.getheader("Location"))
            connection.close()
        assert answers.pop(f"/c/{good}") == (302, link.url)
        assert set(answers.values()) == {(404, None)}, answers
        with OrmSession(engine) as session:
            assert session.scalar(select(func.count()).select_from(Event)) == 1
            assert session.get(Issue, issue_id) is not None
