"""A reader in real Chromium: from the archive index to an issue, under the issue page's
own CSP, without a console error."""

import datetime as dt
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Error, expect
from sqlalchemy import Engine
from sqlalchemy.orm import Session as OrmSession

from service.issues.models import Block, Issue, IssueStatus
from service.newsletters.models import Newsletter
from tests.browser import chromium
from tests.processes import live_app

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.postgres_only]


def _publish(engine: Engine, base: str) -> None:
    with OrmSession(engine) as session:
        newsletter = Newsletter(
            slug="lettre-agence",
            name="La Lettre de l'Agence",
            sender_name="Agence d'urbanisme de l'Artois",
            sender_email="lettre@agence.example.org",
            main_color="#7a1f5c",
        )
        issue = Issue(
            newsletter=newsletter,
            number=7,
            title="Le commerce de demain",
            subject="La Lettre n° 7",
            status=IssueStatus.SENT,
            send_started_at=dt.datetime(2027, 1, 12, 8, 30, tzinfo=dt.UTC),
            blocks=[
                Block(
                    position=0,
                    kind="news",
                    data={
                        "title": "Inscriptions ouvertes",
                        "html": "<p>Quatre ateliers dans le territoire.</p>",
                        # Served by the app itself: img-src 'self' under the sandbox.
                        "image": {"url": f"{base}/static/favicon.svg", "alt": "Logo", "size": None},
                        "link": {
                            "url": f"{base}/inscription",
                            "label": "Je m'inscris aux ateliers",
                        },
                    },
                )
            ],
        )
        session.add(issue)
        session.commit()


def test_archive_pages_show_without_console_or_csp_errors(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    with live_app(engine, database_url, tmp_path) as (base, _app), chromium() as browser:
        _publish(engine, base)
        page = browser.new_page()
        page.set_default_timeout(10_000)
        problems: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type in {"error", "warning"}:
                problems.append(f"{message.type}: {message.text}")

        def on_error(error: Error) -> None:
            problems.append(f"page error: {error}")

        page.on("console", on_console)
        page.on("pageerror", on_error)

        page.goto(f"{base}/archives")
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Archives de La Lettre de l'Agence"
        )
        page.get_by_role("link", name="Le commerce de demain").click()
        expect(page).to_have_url(f"{base}/archives/1")
        expect(page).to_have_title("La Lettre n° 7")
        heading = page.get_by_role("heading", name="Le commerce de demain")
        expect(heading).to_be_visible()
        # The email's <style> applies: the CSP lets inline styles through.
        expect(heading).to_have_css("font-size", "24px")
        image = page.get_by_role("img", name="Logo")
        expect(image).to_be_visible()
        assert image.evaluate("img => img.naturalWidth") > 0

        # The email's buttons open a new tab: the sandbox allows that popup.
        with page.expect_popup() as popup_info:
            page.get_by_role("link", name="Je m'inscris aux ateliers").click()
        popup = popup_info.value
        popup.wait_for_load_state()
        assert popup.url == f"{base}/inscription"
        popup.close()

        page.get_by_role("link", name="Tous les numéros de La Lettre de l'Agence").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Archives de La Lettre de l'Agence"
        )
        assert problems == [], "\n".join(problems)
