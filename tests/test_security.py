"""Security baseline checks that hold for every route (DESIGN.md §7)."""

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.accounts.permissions import PUBLIC
from service.audience.models import Segment, Subscriber
from service.config import load_config
from tests.factories import UserFactory
from tests.helpers import csrf_token, login

# Routes reachable without logging in, on purpose.
EXPECTED_PUBLIC = {
    "delivery_hooks.bounce",
    "accounts.login",
    "accounts.set_language",
    "accounts.forgot_password",
    "accounts.set_password",
    "assets.serve",
    "public.event_ics",
    "public.stylesheet",
    "public.subscribe",
    "public.confirm",
    "public.preferences",
    "public.unsubscribe",
    "tracking.click",
    "tracking.pixel",
    "archive.index",
    "archive.newsletter",
    "archive.issue",
    "archive.atom",
    "archive.agenda",
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


def _url_values(db_session: Session) -> dict[str, str]:
    """A real object for every kind of URL parameter."""
    from service.assets.models import Asset  # noqa: PLC0415 - only this walk needs them
    from service.demo.services import load_demo  # noqa: PLC0415
    from service.issues.models import Issue  # noqa: PLC0415
    from service.outbox.services import store_message  # noqa: PLC0415

    load_demo(db_session)
    db_session.commit()
    issue = db_session.scalars(select(Issue)).one()
    message_id = store_message(db_session, "a@b.fr", ["c@d.fr"], b"Subject: x\r\n\r\nx\r\n")
    asset = Asset(sha256="0" * 64, filename="plan.pdf", content_type="application/pdf", size=3)
    db_session.add(asset)
    from service.audience.models import Import  # noqa: PLC0415 - appended for the import pages

    imported = Import(filename="abonnes.csv", file_format="csv", headers=["Courriel"], total_rows=1)
    db_session.add(imported)
    db_session.commit()
    return {
        "issue_id": str(issue.id),
        "block_id": str(issue.blocks[0].id),
        "kind": "news",
        "message_id": str(message_id),
        "newsletter_id": str(issue.newsletter_id),
        "asset_id": str(asset.id),
        "filename": asset.filename,
        "token": "x",
        "subscriber_id": str(db_session.scalars(select(Subscriber.id)).first()),
        "segment_id": str(db_session.scalars(select(Segment.id)).first()),
        "code": "fr",
        "import_id": str(imported.id),
    }


@pytest.mark.parametrize("role", list(Role))
def test_role_matrix_on_every_route_and_method(
    app: Flask, client: FlaskClient, db_session: Session, role: Role
) -> None:
    """Every route, every method, as each role: refused with 403 when the role is not
    allowed (before anything happens); allowed GETs open."""
    values = _url_values(db_session)
    endpoints = _endpoints(app)
    UserFactory(email=f"{role.value}@agence.example.org", role=role)
    login(client, f"{role.value}@agence.example.org")
    token = csrf_token(client, "/")
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or endpoints[rule.endpoint] == PUBLIC:
            continue
        url = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], rule.rule)
        allowed = role in endpoints[rule.endpoint]
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            if allowed and method == "POST":
                continue  # allowed actions are exercised by their own tests
            response = client.open(url, method=method, data={"csrf_token": token})
            if allowed:
                assert response.status_code not in {401, 403}, f"{role} {method} {url}"
                assert response.status_code < 500, f"{role} {method} {url}"
            else:
                assert response.status_code == 403, f"{role} {method} {url}: {response.status_code}"
            checked += 1
    assert checked >= 15
