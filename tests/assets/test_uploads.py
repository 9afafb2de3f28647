"""Uploads: stored once per content, judged by content, served with safe headers."""

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from service.accounts.models import Role
from service.assets import services
from service.assets.models import Asset
from tests.assets import samples
from tests.factories import UserFactory
from tests.helpers import csrf_token, login

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def ctx(app: Flask, db_session: Session) -> Iterator[None]:
    with app.test_request_context():
        yield


def _storage(data: bytes, filename: str, content_type: str = "application/octet-stream") -> Any:
    return FileStorage(stream=io.BytesIO(data), filename=filename, content_type=content_type)


def _store(db_session: Session, data: bytes, filename: str, kind: Any = "image") -> Asset:
    return services.store_upload(db_session(), _storage(data, filename), kind=kind, user_id=None)


def _count(db_session: Session) -> int:
    return db_session.scalar(select(func.count()).select_from(Asset)) or 0


def _media_files(app: Flask) -> list[Path]:
    root = Path(app.instance_path) / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# ---------------------------------------------------------------- the use case


def test_image_is_stored_under_its_hash(app: Flask, db_session: Session, ctx: None) -> None:
    data = samples.png(3, 2)
    asset = _store(db_session, data, "Logo de l'agence.png")
    digest = hashlib.sha256(data).hexdigest()
    assert asset.id is not None
    assert (asset.sha256, asset.content_type, asset.size) == (digest, "image/png", len(data))
    assert (asset.width, asset.height) == (3, 2)
    assert asset.filename == "Logo_de_lagence.png"
    path = Path(app.instance_path) / "media" / digest[:2] / digest
    assert path.read_bytes() == data
    assert _media_files(app) == [path]  # no temporary file left behind


def test_same_content_is_stored_once(app: Flask, db_session: Session, ctx: None) -> None:
    first = _store(db_session, samples.PDF, "programme.pdf", "document")
    second = _store(db_session, samples.PDF, "autre-nom.pdf", "document")
    assert second.id == first.id
    assert second.filename == "programme.pdf"
    assert _count(db_session) == 1
    assert len(_media_files(app)) == 1


def test_a_file_lost_from_the_disk_is_put_back(app: Flask, db_session: Session, ctx: None) -> None:
    asset = _store(db_session, samples.GIF, "puce.gif")
    path = services.media_path(app.extensions["lettrine_config"], asset.sha256)
    path.unlink()
    assert _store(db_session, samples.GIF, "puce.gif").id == asset.id
    assert path.read_bytes() == samples.GIF


def test_png_named_pdf_is_judged_by_content(db_session: Session, ctx: None) -> None:
    asset = _store(db_session, samples.png(), "rapport.pdf", "image")
    assert asset.content_type == "image/png"
    assert asset.filename == "rapport.png"  # the extension follows the content


def test_pdf_sent_as_png_is_not_an_image(db_session: Session, ctx: None) -> None:
    storage = _storage(samples.PDF, "photo.png", "image/png")
    with pytest.raises(services.UploadError, match="n'est pas une image"):
        services.store_upload(db_session(), storage, kind="image", user_id=None)
    asset = services.store_upload(
        db_session(),
        _storage(samples.PDF, "photo.png", "image/png"),
        kind="document",
        user_id=None,
    )
    assert (asset.content_type, asset.filename) == ("application/pdf", "photo.pdf")


@pytest.mark.parametrize(
    ("data", "filename"),
    [(samples.ooxml("xlsx"), "chiffres-cles.xlsx"), (samples.CSV_UTF8, "communes.csv")],
)
def test_documents_are_stored(db_session: Session, ctx: None, data: bytes, filename: str) -> None:
    asset = _store(db_session, data, filename, "document")
    assert asset.filename == filename
    assert asset.width is None


@pytest.mark.parametrize(
    ("data", "kind"),
    [(samples.SVG, "image"), (samples.HTML, "document"), (samples.EXE, "document")],
)
def test_refused_files_leave_nothing(
    app: Flask, db_session: Session, ctx: None, data: bytes, kind: Any
) -> None:
    with pytest.raises(services.UploadError):
        _store(db_session, data, "fichier.bin", kind)
    assert _count(db_session) == 0
    assert _media_files(app) == []


@pytest.mark.parametrize(
    ("kind", "size", "message"),
    [
        ("image", 5_300_000, "Fichier trop volumineux : 5,3 Mo (5 Mo au plus)."),
        ("document", 27_300_000, "Fichier trop volumineux : 27,3 Mo (20 Mo au plus)."),
        ("document", 20_000_001, "Fichier trop volumineux : 20,1 Mo (20 Mo au plus)."),
    ],
)
@pytest.mark.usefixtures("ctx")
def test_too_large(app: Flask, db_session: Session, kind: Any, size: int, message: str) -> None:
    data = (samples.PDF if kind == "document" else samples.png()).ljust(size, b"\n")
    with pytest.raises(services.UploadError) as refused:
        _store(db_session, data, "gros", kind)
    assert str(refused.value) == message
    assert _media_files(app) == []


def test_limits_are_inclusive(db_session: Session, ctx: None) -> None:
    asset = _store(db_session, samples.png().ljust(5_000_000, b"\0"), "juste.png")
    assert asset.size == 5_000_000


def test_failed_commit_removes_the_file(
    app: Flask, db_session: Session, ctx: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = db_session()

    def broken_commit() -> None:
        raise RuntimeError("database gone")

    monkeypatch.setattr(session, "commit", broken_commit)
    with pytest.raises(RuntimeError):
        services.store_upload(session, _storage(samples.GIF, "a.gif"), kind="image", user_id=None)
    monkeypatch.undo()
    assert _media_files(app) == []
    assert _count(db_session) == 0


def test_failed_write_leaves_no_row(
    app: Flask, db_session: Session, ctx: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(_path: Path, _data: bytes) -> bool:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(services, "_write", full_disk)
    with pytest.raises(OSError, match="No space"):
        _store(db_session, samples.GIF, "a.gif")
    assert _count(db_session) == 0


def test_concurrent_identical_upload_returns_the_committed_row(
    db_session: Session, ctx: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other upload committed between our look-up and our insert."""
    existing = _store(db_session, samples.GIF, "premier.gif")
    real_by_hash = services._by_hash
    calls: list[str] = []

    def stale_first_lookup(session: Session, sha256: str) -> Asset | None:
        calls.append(sha256)
        return None if len(calls) == 1 else real_by_hash(session, sha256)

    monkeypatch.setattr(services, "_by_hash", stale_first_lookup)
    assert _store(db_session, samples.GIF, "second.gif").id == existing.id
    assert len(calls) == 2
    assert _count(db_session) == 1


def test_public_url_and_description(app: Flask, db_session: Session, ctx: None) -> None:
    asset = _store(db_session, samples.ooxml("xlsx"), "Chiffres clés 2019.xlsx", "document")
    config = app.extensions["lettrine_config"]
    url = f"http://lettrine.test/media/{asset.id}/Chiffres_cles_2019.xlsx"
    assert services.public_url(config, asset) == url
    assert services.describe(config, asset) == {
        "id": asset.id,
        "url": url,
        "filename": "Chiffres_cles_2019.xlsx",
        "content_type": XLSX,
        "size": asset.size,
        "size_label": f"XLSX, {asset.size} octets",
        "format": "XLSX",
        "width": None,
        "height": None,
    }


# ---------------------------------------------------------------- HTTP


def _login(client: FlaskClient, role: Role) -> str:
    UserFactory(email=f"{role.value}@agence.example.org", role=role)
    login(client, f"{role.value}@agence.example.org")
    return csrf_token(client, "/")


def _upload(
    client: FlaskClient, token: str, data: bytes, filename: str, kind: str = "image"
) -> Any:
    # Encoded in memory: the test client's own encoder spools big bodies to a temporary
    # file that it never closes (a ResourceWarning, hence an error here).
    boundary, body = encode_multipart(
        MultiDict(
            {
                "csrf_token": token,
                "kind": kind,
                "file": FileStorage(io.BytesIO(data), filename, content_type="image/png"),
            }
        )
    )
    return client.post(
        "/media/", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def test_upload_endpoint_returns_json(client: FlaskClient) -> None:
    token = _login(client, Role.EDITOR)
    response = _upload(client, token, samples.png(2, 4), "vignette.png")
    assert response.status_code == 200
    body = response.get_json()
    assert body["url"] == f"http://lettrine.test/media/{body['id']}/vignette.png"
    assert body["filename"] == "vignette.png"
    assert body["content_type"] == "image/png"
    assert body["format"] == "PNG"
    assert (body["width"], body["height"]) == (2, 4)
    assert body["size_label"] == f"PNG, {body['size']} octets"

    pdf = _upload(client, token, samples.PDF, "note.pdf", "document").get_json()
    assert pdf["format"] == "PDF"
    assert pdf["width"] is None


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (samples.SVG, "image", "Les images SVG ou HTML ne sont pas acceptées"),
        (samples.EXE, "document", "Type de fichier non accepté"),
        (samples.png().ljust(6_000_000, b"\0"), "image", "6,0 Mo (5 Mo au plus)"),
        (samples.png(), "video", "Type d'envoi inconnu"),
    ],
    ids=["svg", "exe", "too-large", "bad-kind"],
)
def test_upload_endpoint_errors_are_french_json(
    client: FlaskClient, data: bytes, kind: str, message: str
) -> None:
    token = _login(client, Role.PUBLISHER)
    response = _upload(client, token, data, "fichier", kind)
    assert response.status_code == 400
    assert message in response.get_json()["error"]


def test_upload_endpoint_without_file(client: FlaskClient) -> None:
    token = _login(client, Role.ADMIN)
    response = client.post("/media/", data={"csrf_token": token, "kind": "image"})
    assert response.status_code == 400
    assert response.get_json() == {"error": "Aucun fichier reçu."}


def test_analysts_cannot_upload(client: FlaskClient) -> None:
    token = _login(client, Role.ANALYST)
    assert _upload(client, token, samples.png(), "a.png").status_code == 403


def test_upload_needs_csrf(client: FlaskClient) -> None:
    _login(client, Role.EDITOR)
    assert _upload(client, "", samples.png(), "a.png").status_code == 400


def test_image_is_served_inline(client: FlaskClient, db_session: Session, app: Flask) -> None:
    with app.test_request_context():
        asset = _store(db_session, samples.png(), "logo.png")
    # Anonymous: e-mails embed it.
    with client.get(f"/media/{asset.id}/logo.png") as response:
        assert response.status_code == 200
        assert response.data == samples.png()
        headers = response.headers
    assert headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Disposition"] == "inline; filename=logo.png"
    cache = headers["Cache-Control"]
    assert "public" in cache
    assert "max-age=31536000" in cache
    assert "immutable" in cache
    assert "sandbox" not in headers["Content-Security-Policy"]
    etag = headers["ETag"]
    with client.get(f"/media/{asset.id}/logo.png", headers={"If-None-Match": etag}) as again:
        assert again.status_code == 304


def test_document_is_served_as_a_sandboxed_attachment(
    client: FlaskClient, db_session: Session, app: Flask
) -> None:
    with app.test_request_context():
        asset = _store(db_session, samples.CSV_UTF8, "communes.csv", "document")
    with client.get(f"/media/{asset.id}/communes.csv") as response:
        assert response.status_code == 200
        assert response.data == samples.CSV_UTF8
        headers = response.headers
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == "attachment; filename=communes.csv"
    assert headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_or_misnamed_files_are_not_found(
    client: FlaskClient, db_session: Session, app: Flask
) -> None:
    with app.test_request_context():
        asset = _store(db_session, samples.png(), "logo.png")
    assert client.get(f"/media/{asset.id}/autre.png").status_code == 404
    assert client.get(f"/media/{asset.id + 1000}/logo.png").status_code == 404
    services.media_path(app.extensions["lettrine_config"], asset.sha256).unlink()
    assert client.get(f"/media/{asset.id}/logo.png").status_code == 404
