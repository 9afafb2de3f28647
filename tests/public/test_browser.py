"""A visitor's journey in real Chromium against a live server on the test database.

Subscribes on the public form, receives the confirmation email in the dev outbox,
follows its link and confirms, changes preferences, then unsubscribes in one click
from the List-Unsubscribe URL of a bulletin sent to them.
"""

import email
import email.policy
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as OrmSession

from emails.tokens import TokenSigner
from service.audience.models import (
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Issue
from service.newsletters.models import Newsletter
from service.outbox.models import OutboxMessage
from service.tracking.models import Event
from tests.browser import chromium
from tests.processes import live_app

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.postgres_only]
ADDRESS = "visiteuse@commune-lievin.example.fr"


@pytest.fixture
def live(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[str]:
    """The app served for real (its own sessions, real commits), with the dev outbox."""
    with OrmSession(engine) as session:
        session.add(
            Newsletter(
                slug="lettre-agence",
                name="La Lettre de l'Agence",
                sender_name="Agence d'urbanisme de l'Artois",
                sender_email="lettre@agence.example.org",
                main_color="#7a1f5c",
            )
        )
        for slug, name in (("elus", "Élus"), ("commerce", "Commerce de demain")):
            session.add(Segment(slug=slug, name=name, kind=SegmentKind.STATIC, is_public=True))
        session.commit()
    with live_app(engine, database_url, tmp_path) as (base, _app):
        yield base


def _outbox_message(engine: Engine, recipient: str, timeout: float = 15) -> EmailMessage:
    """The first message the dev outbox stored for ``recipient`` (sent after the answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with OrmSession(engine) as session:
            raw = session.scalars(
                select(OutboxMessage.raw).where(OutboxMessage.recipients.contains(recipient))
            ).first()
        if raw is not None:
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            return message
        time.sleep(0.1)
    raise AssertionError(f"no message for {recipient} in the outbox")


def _watch_csp(page: Page) -> list[str]:
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", on_console)
    return violations


def test_subscribe_confirm_preferences_unsubscribe(live: str, engine: Engine) -> None:
    base = live
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(10_000)
        violations = _watch_csp(page)

        page.goto(f"{base}/inscription")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "S'inscrire à La Lettre de l'Agence"
        )
        # The brand colour comes from the stylesheet; the honeypot is out of sight.
        button = page.get_by_role("button", name="M'inscrire")
        expect(button).to_have_css("background-color", "rgb(122, 31, 92)")
        box = page.locator("#website").bounding_box()
        assert box is None or box["x"] + box["width"] <= 0

        # First without consent: the error is announced and the input kept.
        page.get_by_label("Adresse e-mail").fill(ADDRESS.upper())
        page.get_by_label("Élus").check()
        page.get_by_label("Prénom").fill("Camille")
        button.click()
        expect(page.get_by_role("alert").first).to_be_visible()
        expect(page.locator("#consent-error")).to_be_visible()
        expect(page.get_by_label("J'accepte ces conditions")).to_have_attribute(
            "aria-invalid", "true"
        )
        expect(page.get_by_label("Prénom")).to_have_value("Camille")

        page.get_by_label("J'accepte ces conditions").check()
        page.get_by_role("button", name="M'inscrire").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Vérifiez votre messagerie")
        expect(page.get_by_text("Si l'adresse peut recevoir nos lettres")).to_be_visible()

        # The email arrives in the dev outbox; the visitor follows its link.
        message = _outbox_message(engine, ADDRESS)
        assert message["Subject"] == "Confirmez votre inscription à La Lettre de l'Agence"
        body = message.get_body(("plain",))
        assert body is not None
        match = re.search(re.escape(base) + r"/inscription/confirmer/\S+", body.get_content())
        assert match
        page.goto(match.group(0))
        expect(page.get_by_role("heading", level=1)).to_have_text("Confirmer votre inscription")
        with OrmSession(engine) as session:
            subscriber = session.scalars(select(Subscriber)).one()
            assert subscriber.email == ADDRESS
            assert subscriber.status is SubscriberStatus.PENDING  # opening the link is not enough
        page.get_by_role("button", name="Confirmer mon inscription").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Inscription confirmée")

        # Preferences: swap "Élus" for "Commerce de demain", give a commune.
        page.get_by_role("link", name="Gérer mes abonnements").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Mes abonnements")
        expect(page.get_by_label("Élus")).to_be_checked()
        page.get_by_label("Élus").uncheck()
        page.get_by_label("Commerce de demain").check()
        page.get_by_label("Commune").fill("Liévin")
        page.get_by_role("button", name="Enregistrer mes préférences").click()
        expect(page.get_by_text("Vos préférences sont enregistrées.")).to_be_visible()
        expect(page.get_by_label("Commerce de demain")).to_be_checked()
        expect(page.get_by_label("Élus")).not_to_be_checked()

        with OrmSession(engine) as session:
            subscriber = session.scalars(select(Subscriber)).one()
            assert subscriber.status is SubscriberStatus.ACTIVE
            assert subscriber.commune == "Liévin"
            statuses = {m.segment.slug: m.status for m in subscriber.memberships}
            assert statuses == {
                "elus": MembershipStatus.UNSUBSCRIBED,
                "commerce": MembershipStatus.ACTIVE,
            }
            # A bulletin goes out to them: its List-Unsubscribe URL.
            issue = Issue(
                newsletter_id=session.scalars(select(Newsletter.id)).one(),
                number=1,
                title="Numéro 1",
            )
            session.add(issue)
            session.flush()
            delivery = Delivery(
                issue_id=issue.id, subscriber_id=subscriber.id, status=DeliveryStatus.SENT
            )
            session.add(delivery)
            session.commit()
            _open, unsubscribe, _prefs = TokenSigner("test-secret-key").system_tokens(delivery.id)

        page.goto(f"{base}/u/{unsubscribe}")
        expect(page.get_by_role("heading", level=1)).to_have_text("Se désinscrire")
        page.get_by_role("button", name="Me désinscrire").click()
        expect(page.get_by_text("Vous êtes désinscrit de toutes nos lettres")).to_be_visible()

        assert violations == []

    with OrmSession(engine) as session:
        subscriber = session.scalars(select(Subscriber)).one()
        assert subscriber.status is SubscriberStatus.UNSUBSCRIBED
        assert all(m.status is MembershipStatus.UNSUBSCRIBED for m in subscriber.memberships)
        assert len(session.scalars(select(Suppression)).all()) == 1
        assert len(session.scalars(select(Event)).all()) == 1
