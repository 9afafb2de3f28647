"""Files chosen in the block editor: stored by content, shown the French way, refused clearly."""

import io
from html import unescape

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.assets.models import Asset
from service.issues.models import Block, Issue
from tests.assets.samples import EXE, PDF, png
from tests.issues.conftest import token_and_version


def _news(token: str, version: str, **extra: object) -> dict[str, object]:
    return {
        "csrf_token": token,
        "version": version,
        "action": "save",
        "title": "Atelier de Hesdin",
        "html": "<p>Photo de l'atelier.</p>",
        **extra,
    }


def test_image_upload_fills_the_block(
    editor: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    path = f"/numeros/{demo_issue.id}/blocs/nouveau/news"
    token, version = token_and_version(editor, path)
    response = editor.post(
        path,
        content_type="multipart/form-data",
        data=_news(
            token,
            version,
            **{
                "image-alt": "Élus autour d'une maquette",
                "image-file": (io.BytesIO(png(600, 400)), "atelier.png"),
            },
        ),
    )
    assert response.status_code == 302
    asset = db_session.scalars(select(Asset)).one()
    assert (asset.content_type, asset.width, asset.height) == ("image/png", 600, 400)
    block = db_session.scalars(select(Block).order_by(Block.id.desc())).first()
    assert block is not None
    assert block.data["image"]["url"].endswith(f"/media/{asset.id}/{asset.filename}")
    assert block.data["image"]["size"] == asset.size
    preview = editor.get(f"/numeros/{demo_issue.id}/apercu").get_data(as_text=True)
    assert (
        'alt="Élus autour d&#39;une maquette"' in preview
        or 'alt="Élus autour d\'une maquette"' in preview
    )


def test_resource_file_upload(editor: FlaskClient, demo_issue: Issue, db_session: Session) -> None:
    path = f"/numeros/{demo_issue.id}/blocs/nouveau/resources"
    token, version = token_and_version(editor, path)
    response = editor.post(
        path,
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "version": version,
            "action": "save",
            "title": "Ressources",
            "items-0-title": "Note sur l'eau",
            "items-0-file": (io.BytesIO(PDF), "note-eau.pdf"),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-1500:]
    block = db_session.scalars(select(Block).order_by(Block.id.desc())).first()
    assert block is not None
    item = block.data["items"][0]
    assert item["format"] == "PDF"
    assert item["size"] == len(PDF)
    assert "/media/" in item["url"]


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("photo.png", EXE, "n'est pas une image"),
        ("atelier.png", png() + b"\x00" * (5 * 1024 * 1024), "Fichier trop volumineux"),
    ],
)
def test_refused_uploads_keep_the_input(
    editor: FlaskClient,
    demo_issue: Issue,
    db_session: Session,
    *,
    filename: str,
    content: bytes,
    message: str,
) -> None:
    path = f"/numeros/{demo_issue.id}/blocs/nouveau/news"
    token, version = token_and_version(editor, path)
    data = _news(token, version, **{"image-file": (io.BytesIO(content), filename)})
    # follow_redirects makes the test client close the request body it spooled to a
    # temporary file when the response closes (werkzeug only registers it then).
    with editor.post(
        path, content_type="multipart/form-data", data=data, follow_redirects=True
    ) as response:
        assert response.status_code == 400
        html = unescape(response.get_data(as_text=True))
    assert message in html
    assert 'value="Atelier de Hesdin"' in html
    assert db_session.scalars(select(Asset)).first() is None


def test_private_image_urls_are_refused(editor: FlaskClient, demo_issue: Issue) -> None:
    path = f"/numeros/{demo_issue.id}/blocs/nouveau/news"
    token, version = token_and_version(editor, path)
    response = editor.post(
        path,
        data=_news(
            token, version, **{"image-url": "http://192.168.1.20/photo.jpg", "image-alt": "Photo"}
        ),
    )
    assert response.status_code == 400
    html = unescape(response.get_data(as_text=True))
    assert "serveur local ou privé" in html
    assert 'value="http://192.168.1.20/photo.jpg"' in html
