"""The issue dashboard in real Chromium: charts drawn by the vendored Chart.js, no console
error and no CSP violation, the click map in its sandboxed frame."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect
from sqlalchemy import Engine

from service.accounts.models import Role
from service.db import Session
from service.stats.services import roll_up
from tests.browser import chromium
from tests.factories import PASSWORD, UserFactory
from tests.processes import live_app
from tests.stats.conftest import Scenario, build

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.postgres_only]


@pytest.fixture
def live(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[tuple[str, Scenario]]:
    with live_app(engine, database_url, tmp_path) as (base, app):
        with app.app_context():
            scenario = build()  # the factories commit through the app's engine, for real
            UserFactory(email="analyste@agence.example.org", role=Role.ANALYST)
            roll_up(Session())
            roll_up(Session())
            Session.remove()
        yield base, scenario


def test_dashboard_renders_charts_without_errors(live: tuple[str, Scenario]) -> None:
    base, scenario = live
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(10_000)
        problems: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error" or "Content Security Policy" in message.text:
                problems.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{base}/login")
        page.get_by_label("Adresse e-mail").fill("analyste@agence.example.org")
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        page.get_by_role("link", name="Statistiques").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Statistiques")
        expect(page.locator("#chart-trends")).to_have_attribute("data-rendered", "2")
        page.get_by_role("link", name=re.compile(re.escape(scenario.issue.title))).click()
        expect(page.locator("#chart-time")).to_have_attribute("data-rendered", "3")
        # Chart.js drew something: the canvas is not blank.
        painted = page.locator("#chart-time").evaluate(
            "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v)"
        )
        assert painted
        expect(page.locator('tr[data-figure="opens"] td[data-value="unique"]')).to_have_text("4")
        page.get_by_text("Tableau des ouvertures et clics dans le temps").click()
        expect(page.locator('table[data-table="series"] tbody tr').first).to_be_visible()
        frame = page.frame_locator('iframe[title="Carte des clics du numéro"]')
        expect(frame.locator("body")).to_contain_text("Bonjour")
        assert problems == []


def _login(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Adresse e-mail").fill("analyste@agence.example.org")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()


def test_trends_fit_a_1280_screen_and_charts_speak_french(live: tuple[str, Scenario]) -> None:
    base, scenario = live
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        _login(page, base)
        page.goto(f"{base}/statistiques/")
        expect(page.locator("#chart-trends")).to_have_attribute("data-rendered", "2")
        region = page.locator('[data-table-wrapper="trends"]')
        widths = region.evaluate("w => [w.scrollWidth, w.clientWidth]")
        # Every column of the trends table is visible without scrolling at 1280 px...
        assert widths[0] <= widths[1], widths
        # ... and on a narrower screen its wrapper scrolls and takes the keyboard focus.
        assert region.get_attribute("tabindex") == "0"
        assert region.get_attribute("role") == "region"
        expect(region).to_have_accessible_name(re.compile("Évolution"))
        ticks = page.locator("#chart-trends").evaluate(
            "c => Chart.getChart(c).scales.y.ticks.map(t => t.label)"
        )
        assert ticks
        assert all(t.endswith("\u00a0%") for t in ticks), ticks
        tooltip = page.locator("#chart-trends").evaluate(
            "c => Chart.getChart(c).options.plugins.tooltip.callbacks.label("
            "{dataset: {label: 'Taux'}, parsed: {y: 66.7}})"
        )
        assert tooltip == "Taux : 66,7\u00a0%"
        page.goto(f"{base}/statistiques/numeros/{scenario.issue.id}")
        expect(page.locator("#chart-time")).to_have_attribute("data-rendered", "3")
        ticks = page.locator("#chart-time").evaluate(
            "c => Chart.getChart(c).scales.y.ticks.map(t => t.label)"
        )
        assert ticks
        # Whole numbers only: nobody opens half a message.
        assert all(re.fullmatch(r"\d+", t.replace("\u202f", "")) for t in ticks), ticks
