import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from service.accounts.models import Role, User
from service.accounts.services import (
    authenticate,
    hash_password,
    normalise_email,
    verify_password,
)
from tests.factories import PASSWORD, UserFactory
from tests.helpers import csrf_token, login

WRONG = "Adresse e-mail ou mot de passe incorrect."


def test_login_page_is_french(client: FlaskClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<html lang="fr">' in html
    assert "Connexion" in html
    assert "Mot de passe" in html


def test_staff_pages_send_anonymous_users_to_login(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_login_then_home(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory(email="redaction@agence.example.org", name="Claire Dumont")
    response = login(client, "  Redaction@Agence.example.org ", PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Bonjour Claire Dumont" in home
    assert db_session.get(User, user.id).last_login_at is not None


@pytest.mark.parametrize("case", ["wrong password", "unknown address", "disabled account"])
def test_failed_login_says_the_same_thing(
    client: FlaskClient, db_session: Session, case: str
) -> None:
    UserFactory(email="known@agence.example.org", active=case != "disabled account")
    email = "nobody@agence.example.org" if case == "unknown address" else "known@agence.example.org"
    password = "not the password" if case == "wrong password" else PASSWORD
    response = login(client, email, password)
    assert response.status_code == 401
    html = response.get_data(as_text=True)
    assert WRONG in html
    assert "Bonjour" not in client.get("/", follow_redirects=True).get_data(as_text=True)


def test_login_form_errors_are_french_and_keep_the_address(client: FlaskClient) -> None:
    token = csrf_token(client)
    html = client.post(
        "/login", data={"email": "claire@agence.example.org", "password": "", "csrf_token": token}
    ).get_data(as_text=True)
    assert "Indiquez votre mot de passe." in html
    assert 'value="claire@agence.example.org"' in html


def test_login_without_csrf_token_is_refused(client: FlaskClient, db_session: Session) -> None:
    UserFactory(email="known@agence.example.org")
    response = client.post(
        "/login", data={"email": "known@agence.example.org", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "Formulaire expiré" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example.com/",
        "//evil.example.com/",
        "/\\evil.example.com",
        "javascript:alert(1)",
    ],
)
def test_next_parameter_is_never_an_open_redirect(
    client: FlaskClient, db_session: Session, target: str
) -> None:
    UserFactory(email="known@agence.example.org")
    token = csrf_token(client)
    response = client.post(
        "/login?next=" + target,
        data={"email": "known@agence.example.org", "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_parameter_keeps_local_paths(client: FlaskClient, db_session: Session) -> None:
    UserFactory(email="known@agence.example.org")
    token = csrf_token(client)
    response = client.post(
        "/login?next=/outbox/",
        data={"email": "known@agence.example.org", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/outbox/"


def test_logout_needs_post_with_csrf(client: FlaskClient, db_session: Session) -> None:
    UserFactory(email="known@agence.example.org")
    login(client, "known@agence.example.org")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert client.get("/").status_code == 200
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_passwords_are_argon2(db_session: Session) -> None:
    user = UserFactory(role=Role.ADMIN)
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, PASSWORD)
    assert not verify_password(user.password_hash, PASSWORD + "x")
    assert not verify_password("not-a-hash", PASSWORD)
    assert authenticate(db_session, user.email.upper(), PASSWORD) is user


def test_normalise_email() -> None:
    assert normalise_email("  Jean.Dupont@Mairie-Lievin.EXAMPLE.fr ") == (
        "jean.dupont@mairie-lievin.example.fr"
    )


def test_english_is_available_on_request(client: FlaskClient) -> None:
    token = csrf_token(client)
    client.post("/lang/en", data={"csrf_token": token, "next": "/login"})
    html = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in html
    assert "Password" in html


def test_failed_logins_are_rate_limited(client: FlaskClient, db_session: Session) -> None:
    UserFactory(email="known@agence.example.org")
    for _ in range(10):
        assert login(client, "known@agence.example.org", "pas le bon").status_code == 401
    blocked = login(client, "known@agence.example.org", PASSWORD)  # even the right password
    assert blocked.status_code == 429
    assert "Trop de tentatives : patientez quelques minutes." in blocked.get_data(as_text=True)


def test_successful_logins_do_not_count(client: FlaskClient, db_session: Session) -> None:
    UserFactory(email="known@agence.example.org")
    for _ in range(12):
        assert login(client, "known@agence.example.org").status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})


def test_a_new_password_ends_other_sessions(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    user = UserFactory(email="known@agence.example.org")
    login(client, "known@agence.example.org")
    assert client.get("/").status_code == 200
    stored = db_session.get(User, user.id)
    assert stored is not None
    stored.password_hash = hash_password("un tout nouveau mot de passe")
    db_session.commit()
    assert client.get("/").status_code == 302  # the old session no longer loads
