"""Acceptance, in real Chromium: an issue really sent to the dev outbox; its caught message
opened from the outbox page; a tracked link clicked; the hits flushed from Redis and folded
by the same use cases as the beat tasks; the click on the dashboard and on the click map."""

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from werkzeug.serving import make_server

from service import create_app
from service.accounts.models import Role
from service.config import Config
from service.db import Session
from service.delivery.models import Delivery, DeliveryStatus
from service.delivery.sender import SmtpSender
from service.delivery.services import send_batch, start_sending
from service.issues.models import IssueStatus
from service.newsletters.models import TrackingMode
from service.outbox.server import make_controller
from service.stats.services import roll_up
from service.tracking.models import Event, EventKind
from service.tracking.services import flush_buffer
from tests.browser import chromium
from tests.conftest import TEST_REDIS_URL, free_port, make_config
from tests.factories import (
    PASSWORD,
    BlockFactory,
    IssueFactory,
    MembershipFactory,
    NewsletterFactory,
    SegmentFactory,
    SubscriberFactory,
    UserFactory,
)
from tests.processes import truncate_all

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.postgres_only]
TARGET = "https://www.agence.example.org/budget-2027"
READER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@contextmanager
def live_with_redis(
    engine: Engine, database_url: str, instance: Path
) -> Iterator[tuple[str, Flask]]:
    """Like ``tests.processes.live_app``, but the tracking hits go through the Redis buffer
    as in production (``live_app`` writes them directly: embedded mode)."""
    client: redis.Redis[bytes] = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    outbox = make_controller(sessionmaker(engine), "127.0.0.1", free_port())
    outbox.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = make_config(
        instance, database_url, smtp_port=outbox.port, base_url=base, redis_url=TEST_REDIS_URL
    )
    app = create_app(config)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield base, app
    finally:
        server.shutdown()
        outbox.stop()
        Session.remove()
        app.extensions["engine"].dispose()
        truncate_all(engine)
        client.flushdb()


def flush_until(config: Config, engine: Engine, count: int) -> None:
    """Flush the Redis buffer as the beat task does until ``count`` hits are in the events
    table (the tracker pushes its per-process outbox to Redis every 50 ms)."""
    deadline = time.monotonic() + 10
    while True:
        flush_buffer(Session(), config)
        with OrmSession(engine) as session:
            stored = len(session.scalars(select(Event.id)).all())
        if stored >= count or time.monotonic() > deadline:
            break
    assert stored == count


def test_a_click_in_a_caught_message_shows_on_the_dashboard_and_click_map(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    with live_with_redis(engine, database_url, tmp_path) as (base, app):
        config: Config = app.extensions["lettrine_config"]
        with app.app_context():
            publisher = UserFactory(email="publication@agence.example.org", role=Role.PUBLISHER)
            newsletter = NewsletterFactory(tracking_mode=TrackingMode.INDIVIDUAL)
            segment = SegmentFactory(name="Élus")
            reader = SubscriberFactory(email="lecteur@mairie.example.fr", first_name="Lina")
            MembershipFactory(subscriber=reader, segment=segment)
            issue = IssueFactory(
                newsletter=newsletter, status=IssueStatus.APPROVED, segments=[segment]
            )
            BlockFactory(
                issue=issue,
                position=0,
                kind="text",
                data={
                    "title": "Budget",
                    "html": f'<p>Lire <a href="{TARGET}">le budget 2027</a>.</p>',
                },
            )
            issue_id = issue.id
            # The real sending: snapshot, stored links, one batch through SMTP to the outbox.
            assert start_sending(Session(), issue, publisher) == 1
            with SmtpSender(config) as sender:
                assert send_batch(Session(), issue_id, config, sender, owner="test").sent == 1
            Session.remove()
        # A click seconds after sending is what link scanners do (classified as machine);
        # a reader clicks later: the delivery is backdated an hour before the message is
        # clicked.
        with OrmSession(engine) as session:
            delivery = session.scalars(select(Delivery)).one()
            assert delivery.status is DeliveryStatus.SENT
            assert delivery.sent_at is not None
            delivery.sent_at -= dt.timedelta(hours=1)
            session.commit()

        with chromium() as browser:
            # Headless Chromium names itself "HeadlessChrome", a robot's agent for the
            # classifier: the reader's browser gets an ordinary desktop agent.
            page = browser.new_page(user_agent=READER_AGENT)
            page.set_default_timeout(10_000)
            # The link's destination is outside the test: answered here, never fetched.
            page.route(
                re.compile(re.escape(TARGET)),
                lambda route: route.fulfill(body="<h1>Budget 2027</h1>", content_type="text/html"),
            )
            _login(page, base, "publication@agence.example.org")
            page.goto(f"{base}/outbox/")
            page.get_by_role("link", name=re.compile(re.escape(issue.subject))).first.click()
            frame = page.frame_locator('iframe[title="Aperçu HTML du message"]')
            expect(frame.get_by_role("link", name="le budget 2027")).to_be_visible()
            with page.expect_request(re.compile(r"/c/[A-Za-z0-9_-]+$")) as clicked:
                frame.get_by_role("link", name="le budget 2027").click()
            # The caught message's link is the tracked one (its redirect is tested in
            # tests/tracking; the sandboxed frame may not follow it to another site).
            assert re.fullmatch(rf"{re.escape(base)}/c/[A-Za-z0-9_-]+", clicked.value.url)

            # The beat tasks: flush the Redis buffer, then fold (twice: the first run
            # records the newest id, the next folds up to it).
            with app.app_context():
                # The click only: the outbox shows the message without its open pixel
                # (a developer reading it is not the reader opening it).
                flush_until(config, engine, 1)
                roll_up(Session())
                roll_up(Session())
                Session.remove()
            with OrmSession(engine) as session:
                kinds = {(e.kind, e.is_machine) for e in session.scalars(select(Event))}
            assert kinds == {(EventKind.CLICK, False)}

            page.goto(f"{base}/statistiques/numeros/{issue_id}")
            clicks = page.locator('tr[data-figure="clicks"]')
            expect(clicks.locator('td[data-value="unique"]')).to_have_text("1")
            expect(clicks.locator('td[data-value="total"]')).to_have_text("1")
            # A click is an open: the reader counts among the openers.
            expect(page.locator('tr[data-figure="opens"] td[data-value="unique"]')).to_have_text(
                "1"
            )
            expect(page.locator("tr[data-segment] td").nth(3)).to_have_text("1")  # Élus openers
            clickmap = page.frame_locator('iframe[title="Carte des clics du numéro"]')
            badge = clickmap.locator('[data-link-position="0"]')
            expect(badge).to_have_attribute("data-clicks", "1")
            expect(badge).to_be_visible()


def _login(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Adresse e-mail").fill(email)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Bonjour")
