from flask import Flask
from flask.testing import FlaskClient

from service.accounts.permissions import public


def test_unexpected_errors_get_a_french_page(app: Flask) -> None:
    def boom() -> str:
        raise RuntimeError("boom")

    app.add_url_rule("/boom", view_func=public(boom))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client: FlaskClient = app.test_client()
    response = client.get("/boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Erreur interne" in html
    assert "RuntimeError" not in html
    assert "Traceback" not in html


def test_not_found_is_french(client: FlaskClient) -> None:
    response = client.get("/pas-de-page-ici")
    assert response.status_code == 404
    assert "Page introuvable" in response.get_data(as_text=True)
