"""The statistics pages through HTTP: figures, lists behind them, roles, exports, report."""

import csv
import io
import re

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.tracking.models import EventKind, LinkKind
from tests.factories import BlockFactory, UserFactory
from tests.helpers import login
from tests.stats.conftest import LinkFactory, Scenario, hit


def as_role(client: FlaskClient, role: Role) -> None:
    UserFactory(email=f"{role.value}@agence.example.org", role=role)
    login(client, f"{role.value}@agence.example.org")


def cell(page: str, figure: str, value: str | None = None) -> str:
    row = re.search(rf'<tr data-figure="{figure}">(.*?)</tr>', page, re.S)
    assert row, figure
    html = row.group(1)
    if value:
        match = re.search(rf'data-value="{value}">(.*?)</td>', html, re.S)
        assert match, (figure, value)
        html = match.group(1)
    else:
        html = re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)[-1]
    return re.sub(r"<[^>]+>", "", html).replace("\u202f", " ").replace("\xa0", " ").strip()


def test_dashboard_figures_for_an_analyst(client: FlaskClient, scenario: Scenario) -> None:
    as_role(client, Role.ANALYST)
    page = client.get(f"/statistiques/numeros/{scenario.issue.id}").get_data(as_text=True)
    assert cell(page, "audience") == "10"
    assert cell(page, "status-sent") == "6"
    assert cell(page, "status-bounced") == "1"
    assert cell(page, "unsubscribed") == "1"
    assert cell(page, "complaints") == "1"
    assert cell(page, "opens", "unique") == "4"
    assert cell(page, "opens", "total") == "3"
    assert cell(page, "opens", "rate") == "66,7 %"
    assert cell(page, "clicks", "unique") == "3"
    assert cell(page, "clicks", "total") == "7"
    assert cell(page, "click-to-open", "rate") == "75,0 %"
    assert cell(page, "machine-opens", "total") == "1"
    assert "calculé sur les seules ouvertures humaines" in page
    assert "appartenance actuelle" in page
    # Analysts read figures, not people: no links to the lists of recipients.
    assert "/destinataires" not in page
    assert 'data-series="' in page
    assert client.get(f"/statistiques/numeros/{scenario.issue.id}/destinataires").status_code == 403


def test_figures_link_to_their_recipients(
    client: FlaskClient, db_session: Session, scenario: Scenario
) -> None:
    as_role(client, Role.EDITOR)
    page = client.get(f"/statistiques/numeros/{scenario.issue.id}").get_data(as_text=True)
    assert f"/statistiques/numeros/{scenario.issue.id}/destinataires?quoi=ouverts" in page
    base = f"/statistiques/numeros/{scenario.issue.id}/destinataires"

    def listed(query: str) -> set[int]:
        page = client.get(f"{base}?{query}").get_data(as_text=True)
        return {int(i) for i in re.findall(r'data-delivery="(\d+)"', page)}

    d = [delivery.id for delivery in scenario.deliveries]
    assert listed("quoi=ouverts") == {d[0], d[1], d[2], d[3]}
    assert listed("quoi=cliqueurs") == {d[0], d[1], d[3]}
    assert listed(f"quoi=lien&lien={scenario.links[0].id}") == {d[0], d[3]}  # d2: a scanner
    assert listed("quoi=statut&statut=bounced") == {d[6]}
    assert listed("quoi=desinscrits") == {d[3]}
    assert listed(f"quoi=ouverts&segment={scenario.segments[1].id}") == set()
    page = client.get(f"{base}?quoi=ouverts").get_data(as_text=True)
    assert f"/abonnes/{scenario.deliveries[0].subscriber_id}" in page
    assert client.get(f"{base}?quoi=nimporte").status_code == 404


def test_recipient_lists_are_paged(client: FlaskClient, scenario: Scenario) -> None:
    as_role(client, Role.PUBLISHER)
    base = f"/statistiques/numeros/{scenario.issue.id}/destinataires"
    first = client.get(base).get_data(as_text=True)
    assert len(re.findall(r'data-delivery="', first)) == 10
    assert "Page suivante" not in first


def test_anonymous_mode_says_uniques_are_unavailable(
    client: FlaskClient, anonymous: Scenario
) -> None:
    as_role(client, Role.ADMIN)
    page = client.get(f"/statistiques/numeros/{anonymous.issue.id}").get_data(as_text=True)
    assert "mode anonyme" in page
    assert cell(page, "opens", "unique") == "—"
    assert cell(page, "opens", "total") == "3"
    assert cell(page, "opens", "rate") == "—"
    assert "quoi=ouverts" not in page


def test_exports_are_defused(client: FlaskClient, db_session: Session, scenario: Scenario) -> None:
    scenario.links[0].label = '=HYPERLINK("http://evil.example","clic")'
    scenario.links[1].kind = LinkKind.CALENDAR
    db_session.commit()
    as_role(client, Role.ANALYST)
    base = f"/statistiques/numeros/{scenario.issue.id}/export"
    response = client.get(f"{base}.csv?tableau=liens")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig")), delimiter=";"))
    assert rows[1][1] == "'" + scenario.links[0].label
    assert rows[1][4] == "2"
    assert {row[3] for row in rows[1:]} == {"lien", "ressource", "ajout à l'agenda (.ics)"}
    summary = client.get(f"{base}.csv?tableau=synthese").get_data().decode("utf-8-sig")
    assert "Ouvreurs uniques;4" in summary
    workbook = load_workbook(io.BytesIO(client.get(f"{base}.xlsx").get_data()))
    assert workbook.sheetnames == ["Synthèse", "Liens", "Blocs", "Segments", "Chronologie"]
    label = workbook["Liens"]["B2"]
    assert label.data_type == "s"
    assert label.value == "'" + scenario.links[0].label
    assert workbook["Liens"]["E2"].value == 2
    assert workbook["Liens"]["D1"].value == "Type"
    assert workbook["Liens"]["D2"].value == rows[1][3]
    assert client.get(f"{base}.pdf").status_code == 404


def test_printable_report(client: FlaskClient, scenario: Scenario) -> None:
    LinkFactory(issue_id=scenario.issue.id, position=9, label="Jamais cliqué")
    as_role(client, Role.ANALYST)
    response = client.get(f"/statistiques/numeros/{scenario.issue.id}/rapport")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "stats-report.css" in page
    assert "66,7 %" in page
    assert "<script" not in page
    assert "Les contenus les plus consultés" in page
    assert "Jamais cliqué" not in page  # a link with no click is not among the most read
    assert '<link rel="icon" href="/static/favicon.svg"' in page  # no /favicon.ico request


def test_trends_and_growth(client: FlaskClient, scenario: Scenario) -> None:
    as_role(client, Role.ANALYST)
    page = client.get("/statistiques/").get_data(as_text=True)
    assert f'data-issue="{scenario.issue.id}"' in page
    assert "66,7 %" in page
    growth = re.search(rf'<tr data-segment="{scenario.segments[0].id}">(.*?)</tr>', page, re.S)
    assert growth
    # Four memberships of "Élus" created today, one of them unsubscribed without a date.
    assert re.findall(r'<td class="num">(\d+)</td>', growth.group(1))[-1] == "4"
    assert 'href="/statistiques/"' in client.get("/").get_data(as_text=True)


def test_click_map_annotates_links(
    client: FlaskClient, db_session: Session, scenario: Scenario
) -> None:
    issue = scenario.other
    block = BlockFactory(
        issue=issue,
        position=0,
        data={
            "title": None,
            "html": '<p><a href="https://www.agence.example.org/atelier">Atelier</a>, '
            '<a href="https://www.agence.example.org/guide">guide</a> et '
            '<a href="https://www.agence.example.org/note">note</a></p>',
        },
    )
    first = LinkFactory(issue_id=issue.id, block_id=block.id, position=0)
    second = LinkFactory(issue_id=issue.id, block_id=block.id, position=1)
    LinkFactory(issue_id=issue.id, block_id=block.id, position=2)
    hit(issue, EventKind.CLICK, None, second)
    for _ in range(3):
        hit(issue, EventKind.CLICK, None, first)
    hit(issue, EventKind.CLICK, None, first, machine=True)
    as_role(client, Role.ANALYST)
    response = client.get(f"/statistiques/numeros/{issue.id}/carte")
    assert response.status_code == 200
    assert "sandbox" in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assert 'data-link-position="0" data-clicks="3"' in page
    assert 'data-link-position="1" data-clicks="1"' in page
    assert 'data-link-position="2" data-clicks="0"' in page
    assert re.search(r'data-link-position="0"[^>]*>3 clics<', page)
    assert re.search(r'data-link-position="1"[^>]*>1 clic<', page)
    assert 'href="https://www.agence.example.org/atelier"' in page
    dashboard = client.get(f"/statistiques/numeros/{issue.id}").get_data(as_text=True)
    assert f'src="/statistiques/numeros/{issue.id}/carte"' in dashboard


@pytest.mark.parametrize("path", ["", "/carte", "/rapport", "/export.xlsx"])
def test_anonymous_visitors_go_to_login(client: FlaskClient, scenario: Scenario, path: str) -> None:
    response = client.get(f"/statistiques/numeros/{scenario.issue.id}{path}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_reachable_from_the_issue_pages(client: FlaskClient, scenario: Scenario) -> None:
    as_role(client, Role.EDITOR)
    link = f'href="/statistiques/numeros/{scenario.issue.id}"'
    assert link in client.get(f"/numeros/{scenario.issue.id}").get_data(as_text=True)
    assert link in client.get("/numeros/").get_data(as_text=True)


def test_timeline_export_is_in_paris_time(client: FlaskClient, scenario: Scenario) -> None:
    as_role(client, Role.ANALYST)
    base = f"/statistiques/numeros/{scenario.issue.id}/export"
    body = client.get(f"{base}.csv?tableau=chronologie").get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body), delimiter=";"))
    assert rows[0][0] == "Début (heure de Paris)"
    # The series starts with the sending, 08:00 UTC on 2 March 2026: 09:00 in Paris (CET).
    assert rows[1][0] == "2026-03-02 09:00"
    workbook = load_workbook(io.BytesIO(client.get(f"{base}.xlsx").get_data()))
    assert workbook["Chronologie"]["A2"].value == "2026-03-02 09:00"
