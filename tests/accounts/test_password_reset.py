"""Forgotten passwords and the signed links that set a password."""

import logging
import re
import time
from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from service.accounts import services
from service.accounts.models import Role, User
from service.accounts.tokens import (
    SALTS,
    InvalidTokenError,
    Purpose,
    make_token,
    password_fingerprint,
    read_token,
)
from service.audit.services import history
from tests.accounts.conftest import Mailbox, link_path, text_of
from tests.factories import PASSWORD, UserFactory
from tests.helpers import csrf_token, login

SECRET = "test-secret-key"  # tests/conftest.py make_config
NEW_PASSWORD = "une phrase de passe assez longue"
SAME_ANSWER = (
    "Si cette adresse correspond à un compte, un e-mail vient d'y être envoyé avec un lien "
    "pour choisir un nouveau mot de passe. Ce lien est valable une heure."
)
INVALID = "Lien invalide ou expiré"
FLASH_RE = re.compile(r'<p class="flash[^"]*" role="status">(.*?)</p>', re.DOTALL)


def _ask_reset(client: FlaskClient, email: str) -> tuple[int, str, list[str]]:
    """Ask for a link; the answer as the person sees it: status, where it leads, its words."""
    token = csrf_token(client, "/mot-de-passe/oublie")
    response = client.post("/mot-de-passe/oublie", data={"csrf_token": token, "email": email})
    location = response.headers.get("Location", "")
    response.close()  # the email leaves once the answer is out, as under a real server
    page = unescape(client.get(location).get_data(as_text=True)) if location else ""
    return response.status_code, location, FLASH_RE.findall(page)


def _choose(client: FlaskClient, path: str, password: str, confirm: str | None = None) -> object:
    token = csrf_token(client, path)
    return client.post(
        path,
        data={"csrf_token": token, "password": password, "confirm": confirm or password},
    )


def _token_signed_ago(seconds: int, purpose: Purpose, user: User) -> str:
    """A token as it would have been made ``seconds`` ago (itsdangerous reads the clock)."""

    class EarlierSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    serializer = URLSafeTimedSerializer(SECRET, salt=SALTS[purpose], signer=EarlierSigner)
    return serializer.dumps([user.id, password_fingerprint(user.password_hash)])


def test_login_page_leads_to_the_forgotten_password_page(client: FlaskClient) -> None:
    assert 'href="/mot-de-passe/oublie"' in client.get("/login").get_data(as_text=True)
    page = client.get("/mot-de-passe/oublie")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1>Mot de passe oublié</h1>" in html
    assert '<label for="email">Adresse e-mail</label>' in html


def test_reset_end_to_end(
    app: Flask, client: FlaskClient, db_session: Session, mailbox: Mailbox
) -> None:
    user = UserFactory(email="claire@agence.example.org", name="Claire Dumont")
    status, location, page = _ask_reset(client, " Claire@Agence.example.org ")
    assert (status, location) == (302, "/login")
    assert page == [SAME_ANSWER]

    recipients, message = mailbox.received[0]
    assert recipients == ["claire@agence.example.org"]
    assert message["Subject"] == "Réinitialisation de votre mot de passe Lettrine"
    assert message["From"] == "Lettrine <no-reply@lettrine.test>"
    text = text_of(message)
    assert "Bonjour Claire Dumont," in text
    assert "valable 1 heure" in text
    assert "http://lettrine.test/mot-de-passe/oublie" in text

    path = link_path(message)
    html = client.get(path).get_data(as_text=True)
    assert "Choisir un nouveau mot de passe" in html
    assert 'autocomplete="new-password"' in html
    response = _choose(client, path, NEW_PASSWORD)
    assert response.status_code == 302
    assert "Bonjour Claire Dumont" in client.get("/").get_data(as_text=True)

    # The old password is gone, the new one works, the link is spent.
    other = app.test_client()
    assert login(other, "claire@agence.example.org", PASSWORD).status_code == 401
    assert login(other, "claire@agence.example.org", NEW_PASSWORD).status_code == 302
    again = app.test_client().get(path)
    assert again.status_code == 400
    assert INVALID in again.get_data(as_text=True)
    assert 'href="/mot-de-passe/oublie"' in again.get_data(as_text=True)
    entry = history(db_session, "user", user.id)[-1]
    assert (entry.action, entry.actor_id, entry.details) == (
        "user.password_set",
        user.id,
        {"via": "reset"},
    )


@pytest.mark.parametrize("case", ["unknown address", "deactivated account"])
def test_reset_answers_the_same_and_sends_nothing(
    client: FlaskClient, db_session: Session, mailbox: Mailbox, case: str
) -> None:
    UserFactory(email="claire@agence.example.org")
    UserFactory(email="parti@agence.example.org", active=False)
    known = _ask_reset(client, "claire@agence.example.org")
    assert len(mailbox.messages) == 1
    other = (
        "personne@agence.example.org" if case == "unknown address" else "parti@agence.example.org"
    )
    assert _ask_reset(client, other) == known
    assert len(mailbox.messages) == 1


def test_reset_email_failure_is_logged_not_shown(
    client: FlaskClient, db_session: Session, smtp_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    user = UserFactory(email="claire@agence.example.org")
    with caplog.at_level(logging.ERROR, logger="service.accounts.views"):
        status, location, page = _ask_reset(client, "claire@agence.example.org")
    assert (status, location) == (302, "/login")
    assert page == [SAME_ANSWER]
    assert f"password reset email for user {user.id} not sent" in caplog.text


def test_reset_requests_are_rate_limited(client: FlaskClient, db_session: Session) -> None:
    for n in range(5):
        assert _ask_reset(client, f"personne{n}@agence.example.org")[0] == 302
    token = csrf_token(client, "/mot-de-passe/oublie")
    blocked = client.post(
        "/mot-de-passe/oublie", data={"csrf_token": token, "email": "x@agence.example.org"}
    )
    assert blocked.status_code == 429
    assert "Trop de tentatives" in blocked.get_data(as_text=True)


def test_reset_form_errors_are_french(client: FlaskClient) -> None:
    token = csrf_token(client, "/mot-de-passe/oublie")
    response = client.post("/mot-de-passe/oublie", data={"csrf_token": token, "email": ""})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Indiquez votre adresse e-mail." in html
    assert 'aria-invalid="true"' in html
    assert 'role="alert"' in html


def test_new_password_rules(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory(email="claire@agence.example.org")
    path = "/mot-de-passe/nouveau/" + make_token(SECRET, Purpose.RESET, user.id, user.password_hash)
    short = unescape(_choose(client, path, "trop court").get_data(as_text=True))
    assert "Le mot de passe doit compter au moins 12 caractères." in short
    assert 'aria-invalid="true"' in short
    different = unescape(
        _choose(client, path, NEW_PASSWORD, NEW_PASSWORD + "!").get_data(as_text=True)
    )
    assert "Les deux mots de passe ne correspondent pas." in different
    blank = unescape(_choose(client, path, " " * 12).get_data(as_text=True))
    assert "Choisissez un mot de passe." in blank
    # None of this spent the link, nor logged anybody in.
    assert client.get("/").status_code == 302
    assert _choose(client, path, NEW_PASSWORD).status_code == 302
    assert client.get("/").status_code == 200


def test_expired_links_are_refused(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory(email="claire@agence.example.org")
    hour, day = 3600, 86400
    cases = {
        (Purpose.RESET, hour - 60): 200,
        (Purpose.RESET, hour + 60): 400,
        (Purpose.INVITE, 7 * day - 60): 200,
        (Purpose.INVITE, 7 * day + 60): 400,
    }
    for (purpose, age), expected in cases.items():
        token = _token_signed_ago(age, purpose, user)
        response = client.get(f"/mot-de-passe/nouveau/{token}")
        assert response.status_code == expected, (purpose, age)
        if expected == 400:
            assert INVALID in response.get_data(as_text=True)
            with pytest.raises(InvalidTokenError) as refused:
                read_token(SECRET, token)
            assert refused.value.expired
    # An expired link cannot be posted to either.
    token = _token_signed_ago(hour + 60, Purpose.RESET, user)
    path = f"/mot-de-passe/nouveau/{token}"
    form = csrf_token(client, "/mot-de-passe/oublie")
    response = client.post(
        path, data={"csrf_token": form, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_tampered_links_are_refused(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory(email="claire@agence.example.org")
    victim = UserFactory(email="directeur@agence.example.org", role=Role.ADMIN)
    token = make_token(SECRET, Purpose.RESET, user.id, user.password_hash)
    payload, timestamp, signature = token.split(".")
    forged_payload = make_token(SECRET, Purpose.RESET, victim.id, victim.password_hash).split(".")[
        0
    ]
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    tampered = [
        f"{payload}.{timestamp}.{flipped}",  # signature altered
        f"{forged_payload}.{timestamp}.{signature}",  # someone else's account
        make_token("another-secret", Purpose.RESET, user.id, user.password_hash),
        "not-a-token",
        # Right key, wrong salt: tokens made for something else are no passwords links.
        URLSafeTimedSerializer(SECRET, salt="lettrine.other").dumps(
            [user.id, password_fingerprint(user.password_hash)]
        ),
        # Right key and salt, but a payload we never make.
        URLSafeTimedSerializer(SECRET, salt=SALTS[Purpose.RESET]).dumps({"user": user.id}),
        URLSafeTimedSerializer(SECRET, salt=SALTS[Purpose.RESET]).dumps([True, "x"]),
    ]
    for bad in tampered:
        response = client.get(f"/mot-de-passe/nouveau/{bad}")
        assert response.status_code == 400, bad
        assert INVALID in response.get_data(as_text=True)


def test_links_die_when_the_password_changes_or_the_account_goes(
    client: FlaskClient, db_session: Session
) -> None:
    user = UserFactory(email="claire@agence.example.org")
    first = make_token(SECRET, Purpose.RESET, user.id, user.password_hash)
    second = make_token(SECRET, Purpose.RESET, user.id, user.password_hash)
    # Using one link spends every link made before the change.
    assert _choose(client, f"/mot-de-passe/nouveau/{first}", NEW_PASSWORD).status_code == 302
    assert client.get(f"/mot-de-passe/nouveau/{second}").status_code == 400
    # A deactivated account's link does not work either.
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    db_session.expire_all()
    user = db_session.get(User, user.id)
    fresh = make_token(SECRET, Purpose.RESET, user.id, user.password_hash)
    services.deactivate_user(db_session(), actor_id=None, user_id=user.id)
    assert client.get(f"/mot-de-passe/nouveau/{fresh}").status_code == 400
    # And a link for an account that no longer exists is just invalid.
    gone = make_token(SECRET, Purpose.RESET, 999999, "whatever")
    assert client.get(f"/mot-de-passe/nouveau/{gone}").status_code == 400


def test_a_spent_link_cannot_set_a_password_again(db_session: Session) -> None:
    user = UserFactory(email="claire@agence.example.org")
    claims = read_token(SECRET, make_token(SECRET, Purpose.RESET, user.id, user.password_hash))
    services.set_password_with_token(db_session(), claims, NEW_PASSWORD)
    with pytest.raises(InvalidTokenError):
        services.set_password_with_token(db_session(), claims, "un autre mot de passe long")
    db_session.expire_all()
    assert services.verify_password(db_session.get(User, user.id).password_hash, NEW_PASSWORD)


def test_invited_accounts_cannot_log_in_and_may_ask_for_a_link(
    app: Flask, client: FlaskClient, db_session: Session, mailbox: Mailbox
) -> None:
    user = services.invite_user(
        db_session(),
        actor_id=None,
        email="claire@agence.example.org",
        name="Claire Dumont",
        role=Role.EDITOR,
    )
    assert services.authenticate(db_session(), user.email, user.password_hash) is None
    assert not services.verify_password(user.password_hash, user.password_hash)
    # The invitation email was lost: "mot de passe oublié" works for them as well.
    _ask_reset(client, "claire@agence.example.org")
    assert _choose(client, link_path(mailbox.one()), NEW_PASSWORD).status_code == 302
    assert "Bonjour Claire Dumont" in client.get("/").get_data(as_text=True)
