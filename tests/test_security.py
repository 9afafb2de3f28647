"""Security baseline checks that hold for every route (DESIGN.md §7)."""

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.permissions import PUBLIC
from service.config import load_config
from tests.factories import UserFactory
from tests.helpers import login

# Routes reachable without logging in, on purpose.
EXPECTED_PUBLIC = {
    "accounts.login",
    "accounts.set_language",
    "accounts.forgot_password",
    "accounts.set_password",
    "assets.serve",
    "public.event_ics",
}


def _endpoints(app: Flask) -> dict[str, frozenset[Role]]:
    found = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        assert hasattr(view, "allowed_roles"), f"{rule.endpoint} declares no roles"
        found[rule.endpoint] = view.allowed_roles
    return found


def test_every_route_declares_its_roles(app: Flask) -> None:
    public = {name for name, roles in _endpoints(app).items() if roles == PUBLIC}
    assert public == EXPECTED_PUBLIC


@pytest.mark.parametrize("role", list(Role))
def test_role_matrix_on_every_parameterless_page(
    app: Flask, client: FlaskClient, db_session: Session, role: Role
) -> None:
    """Walk the URL map as each role: allowed roles get a page, the others a 403."""
    endpoints = _endpoints(app)
    UserFactory(email=f"{role.value}@agence.example.org", role=role)
    login(client, f"{role.value}@agence.example.org")
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.arguments or "GET" not in (rule.methods or ()):
            continue
        if rule.endpoint in EXPECTED_PUBLIC:
            continue
        status = client.get(rule.rule).status_code
        if role in endpoints[rule.endpoint]:
            assert status == 200, f"{role} should open {rule.rule}, got {status}"
        else:
            assert status == 403, f"{role} should be refused {rule.rule}, got {status}"
        checked += 1
    assert checked >= 2


def test_anonymous_users_reach_no_staff_page(app: Flask, client: FlaskClient) -> None:
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint in EXPECTED_PUBLIC:
            continue
        url = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
        method = "GET" if "GET" in (rule.methods or ()) else "POST"
        response = client.open(url, method=method)
        # GETs go to the login page; POSTs without a CSRF token stop before anything runs.
        assert response.status_code in {302, 400}, f"{method} {url}: {response.status_code}"
        if response.status_code == 302:
            assert response.headers["Location"].startswith("/login")


def test_security_headers(client: FlaskClient) -> None:
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_session_cookie_is_httponly_and_samesite(client: FlaskClient, db_session: Session) -> None:
    UserFactory(email="known@agence.example.org")
    response = login(client, "known@agence.example.org")
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie" and "session=" in v)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_secure_cookies_setting(tmp_path: Path) -> None:
    config = load_config(instance_path=tmp_path, secret_key="x", secure_cookies=True)
    settings = config.flask_settings()
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["REMEMBER_COOKIE_SECURE"] is True
