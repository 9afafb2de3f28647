"""Users administration: invitations, roles, deactivation, and what protects them."""

from html import unescape

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts import services
from service.accounts.models import Role, User
from service.audit.models import AuditEntry
from service.audit.services import history
from tests.accounts.conftest import Mailbox, html_of, link_path, running_mailbox, text_of
from tests.factories import PASSWORD, UserFactory
from tests.helpers import csrf_token, login

NEW_PASSWORD = "une phrase de passe assez longue"


def _admin(client: FlaskClient, email: str = "admin@agence.example.org") -> User:
    admin = UserFactory(email=email, name="Anne Admin", role=Role.ADMIN)
    assert login(client, email).status_code == 302
    return admin


def _post(client: FlaskClient, path: str, **data: object) -> object:
    token = csrf_token(client, "/utilisateurs")
    return client.post(path, data={"csrf_token": token, **data})


def _invite(client: FlaskClient, email: str, name: str, role: str = "editor") -> object:
    return _post(client, "/utilisateurs/inviter", email=email, name=name, role=role)


def _actions(db_session: Session, user_id: int) -> list[str]:
    return [entry.action for entry in history(db_session, "user", user_id)]


def test_users_page_lists_accounts(client: FlaskClient, db_session: Session) -> None:
    _admin(client)
    UserFactory(email="claire@agence.example.org", name="Claire Dumont", role=Role.PUBLISHER)
    UserFactory(email="paul@agence.example.org", name="Paul Martin", active=False)
    page = client.get("/utilisateurs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<h1>Utilisateurs" in html
    for text in ("Claire Dumont", "claire@agence.example.org", "Publication", "Paul Martin"):
        assert text in html
    assert 'data-status="inactive"' in html
    assert "Désactivé" in html
    assert "Jamais" in html  # Claire never logged in
    assert "Anne Admin <small>(vous)</small>" in html
    # The admin's own last login is shown.
    assert "<time datetime=" in html
    # Every form on the page carries the CSRF token.
    assert html.count("<form") == html.count('name="csrf_token"')


def test_menu_shows_users_to_admins_only(client: FlaskClient, db_session: Session) -> None:
    _admin(client)
    assert 'href="/utilisateurs"' in client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    UserFactory(email="redaction@agence.example.org", role=Role.EDITOR)
    login(client, "redaction@agence.example.org")
    assert 'href="/utilisateurs"' not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("role", [Role.PUBLISHER, Role.EDITOR, Role.ANALYST])
def test_non_admins_are_refused_every_users_page(
    client: FlaskClient, db_session: Session, role: Role
) -> None:
    target = UserFactory(email="cible@agence.example.org")
    UserFactory(email="agent@agence.example.org", role=role)
    login(client, "agent@agence.example.org")
    token = csrf_token(client, "/")
    assert client.get("/utilisateurs").status_code == 403
    posts = {
        "/utilisateurs/inviter": {"email": "x@agence.example.org", "name": "X", "role": "admin"},
        "/utilisateurs/role": {"user_id": target.id, "role": "admin"},
        "/utilisateurs/desactiver": {"user_id": target.id},
        "/utilisateurs/reactiver": {"user_id": target.id},
        "/utilisateurs/renvoyer-invitation": {"user_id": target.id},
    }
    for path, data in posts.items():
        response = client.post(path, data={"csrf_token": token, **data})
        assert response.status_code == 403, path
    assert db_session.get(User, target.id).role == Role.EDITOR
    assert (
        db_session.scalars(select(User).where(User.email == "x@agence.example.org")).first() is None
    )
    assert db_session.scalars(select(AuditEntry)).first() is None


def test_users_actions_need_csrf(client: FlaskClient, db_session: Session) -> None:
    _admin(client)
    target = UserFactory(email="cible@agence.example.org")
    response = client.post("/utilisateurs/desactiver", data={"user_id": target.id})
    assert response.status_code == 400
    assert db_session.get(User, target.id).active


def test_invitation_end_to_end(
    app: Flask, client: FlaskClient, db_session: Session, mailbox: Mailbox
) -> None:
    admin = _admin(client)
    response = _invite(client, "  Claire.Dumont@Mairie-Lievin.example.fr ", "Claire Dumont")
    assert response.status_code == 302
    assert response.headers["Location"] == "/utilisateurs"
    listing = client.get("/utilisateurs").get_data(as_text=True)
    assert "Invitation envoyée à claire.dumont@mairie-lievin.example.fr." in listing
    assert "Invitation en attente" in listing

    user = db_session.scalars(
        select(User).where(User.email == "claire.dumont@mairie-lievin.example.fr")
    ).one()
    assert user.role == Role.EDITOR
    assert not user.has_usable_password
    invited = history(db_session, "user", user.id)
    assert [(e.action, e.actor_id) for e in invited] == [("user.invited", admin.id)]
    assert invited[0].details == {"email": user.email, "role": "editor"}

    # The email really went out over SMTP.
    recipients, message = mailbox.received[0]
    assert len(mailbox.received) == 1
    assert recipients == ["claire.dumont@mairie-lievin.example.fr"]
    assert message["From"] == "Lettrine <no-reply@lettrine.test>"
    assert message["To"] == "Claire Dumont <claire.dumont@mairie-lievin.example.fr>"
    assert message["Subject"] == "Anne Admin vous invite à rejoindre Lettrine"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@lettrine.test>")
    assert message.get_content_type() == "multipart/alternative"
    text = text_of(message)
    assert "Bonjour Claire Dumont," in text
    assert "Votre rôle : Rédaction." in text
    assert "valable 7 jours" in text
    assert 'lang="fr"' in html_of(message)

    # Nobody can log in to the invited account before choosing a password.
    other = app.test_client()
    assert login(other, user.email, "").status_code == 200  # form error, no attempt
    assert login(other, user.email, "!").status_code == 401

    # The invitee follows the link, in their own browser.
    path = link_path(message)
    page = other.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Choisir votre mot de passe" in html
    assert "claire.dumont@mairie-lievin.example.fr" in html
    token = csrf_token(other, path)
    response = other.post(
        path, data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = other.get("/").get_data(as_text=True)
    assert "Bonjour Claire Dumont" in home
    assert "Votre mot de passe est enregistré." in home

    db_session.expire_all()
    user = db_session.get(User, user.id)
    assert user.has_usable_password
    assert user.last_login_at is not None
    assert services.verify_password(user.password_hash, NEW_PASSWORD)
    assert _actions(db_session, user.id) == ["user.invited", "user.password_set"]
    assert history(db_session, "user", user.id)[-1].details == {"via": "invitation"}

    # The link was spent.
    again = app.test_client().get(path)
    assert again.status_code == 400
    assert "Lien invalide ou expiré" in again.get_data(as_text=True)
    # And the new password works at the login form.
    fresh = app.test_client()
    assert login(fresh, user.email, NEW_PASSWORD).status_code == 302


def test_invite_form_errors_are_french_and_accessible(
    client: FlaskClient, db_session: Session, mailbox: Mailbox
) -> None:
    _admin(client)
    response = _invite(client, "pas-une-adresse", "", role="superuser")
    assert response.status_code == 200
    html = unescape(response.get_data(as_text=True))
    assert "Adresse invalide : « pas-une-adresse » (il manque le @)." in html
    assert "Indiquez le nom de la personne à inviter." in html
    assert "Choisissez un rôle dans la liste." in html
    assert 'role="alert"' in html
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="email-error"' in html
    assert 'value="pas-une-adresse"' in html  # what was typed is kept
    assert mailbox.messages == []


def test_invite_refuses_an_address_already_in_use(
    client: FlaskClient, db_session: Session, mailbox: Mailbox
) -> None:
    _admin(client)
    UserFactory(email="claire@agence.example.org")
    html = _invite(client, "CLAIRE@agence.example.org", "Claire bis").get_data(as_text=True)
    assert "Un compte existe déjà avec cette adresse." in html
    assert mailbox.messages == []
    assert db_session.scalars(select(AuditEntry)).first() is None


def test_invite_refuses_line_breaks_in_the_name(
    client: FlaskClient, db_session: Session, mailbox: Mailbox
) -> None:
    _admin(client)
    html = _invite(client, "claire@agence.example.org", "Claire\r\nBcc: victime@example.org")
    assert "Le nom ne doit tenir que sur une ligne." in html.get_data(as_text=True)
    assert mailbox.messages == []


def test_invitation_that_cannot_be_sent_says_so_and_can_be_resent(
    app: Flask, client: FlaskClient, db_session: Session, smtp_down: None
) -> None:
    _admin(client)
    response = _invite(client, "claire@agence.example.org", "Claire Dumont", role="publisher")
    assert response.status_code == 302
    html = unescape(client.get("/utilisateurs").get_data(as_text=True))
    assert (
        "Le compte de Claire Dumont a été créé, mais l'e-mail d'invitation n'a pas pu "
        "être envoyé." in html
    )
    assert 'role="alert" id="invitation-non-envoyee"' in html
    assert "Renvoyer l'invitation</button>" in html
    user = db_session.scalars(select(User).where(User.email == "claire@agence.example.org")).one()
    # The notice is shown once, like a flash message.
    assert "invitation-non-envoyee" not in client.get("/utilisateurs").get_data(as_text=True)

    # The SMTP server is back: "Renvoyer l'invitation".
    with running_mailbox(app) as box:
        response = _post(client, "/utilisateurs/renvoyer-invitation", user_id=user.id)
        assert response.status_code == 302
    assert "Invitation renvoyée à claire@agence.example.org." in client.get(
        "/utilisateurs"
    ).get_data(as_text=True)
    message = box.one()
    assert "Votre rôle : Publication." in text_of(message)
    assert _actions(db_session, user.id) == ["user.invited", "user.invitation_resent"]
    # The resent link works.
    other = app.test_client()
    assert other.get(link_path(message)).status_code == 200


def test_resend_is_only_for_pending_invitations(
    client: FlaskClient, db_session: Session, mailbox: Mailbox
) -> None:
    _admin(client)
    user = UserFactory(email="claire@agence.example.org")  # has a password already
    _post(client, "/utilisateurs/renvoyer-invitation", user_id=user.id)
    html = unescape(client.get("/utilisateurs").get_data(as_text=True))
    assert "Ce compte n'attend pas d'invitation" in html
    assert mailbox.messages == []


def test_change_role(client: FlaskClient, db_session: Session) -> None:
    admin = _admin(client)
    user = UserFactory(email="claire@agence.example.org", name="Claire Dumont")
    response = _post(client, "/utilisateurs/role", user_id=user.id, role="publisher")
    assert response.status_code == 302
    html = client.get("/utilisateurs").get_data(as_text=True)
    assert "Claire Dumont a désormais le rôle « Publication »." in html
    db_session.expire_all()
    assert db_session.get(User, user.id).role == Role.PUBLISHER
    entry = history(db_session, "user", user.id)[-1]
    assert (entry.action, entry.actor_id) == ("user.role_changed", admin.id)
    assert entry.details == {"from": "editor", "to": "publisher"}
    # The same role again changes nothing and writes nothing.
    _post(client, "/utilisateurs/role", user_id=user.id, role="publisher")
    assert _actions(db_session, user.id) == ["user.role_changed"]


def test_change_role_refuses_an_unknown_role_or_account(
    client: FlaskClient, db_session: Session
) -> None:
    _admin(client)
    user = UserFactory(email="claire@agence.example.org")
    _post(client, "/utilisateurs/role", user_id=user.id, role="superuser")
    assert "La demande est incomplète" in client.get("/utilisateurs").get_data(as_text=True)
    assert db_session.get(User, user.id).role == Role.EDITOR
    assert _post(client, "/utilisateurs/role", user_id=999999, role="admin").status_code == 404
    assert _post(client, "/utilisateurs/desactiver", user_id="abc").status_code == 302


def test_promoted_and_demoted_admins_see_it_at_once(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    _admin(client)
    colleague = UserFactory(email="bruno@agence.example.org", name="Bruno", role=Role.EDITOR)
    theirs = app.test_client()
    login(theirs, "bruno@agence.example.org")
    assert theirs.get("/utilisateurs").status_code == 403
    _post(client, "/utilisateurs/role", user_id=colleague.id, role="admin")
    assert theirs.get("/utilisateurs").status_code == 200
    _post(client, "/utilisateurs/role", user_id=colleague.id, role="analyst")
    assert theirs.get("/utilisateurs").status_code == 403


def test_an_admin_cannot_demote_or_deactivate_themselves(
    client: FlaskClient, db_session: Session
) -> None:
    admin = _admin(client)
    UserFactory(email="autre-admin@agence.example.org", role=Role.ADMIN)  # not the last one
    for path, data in (
        ("/utilisateurs/role", {"role": "editor"}),
        ("/utilisateurs/desactiver", {}),
    ):
        assert _post(client, path, user_id=admin.id, **data).status_code == 302
        html = unescape(client.get("/utilisateurs").get_data(as_text=True))
        assert "Vous ne pouvez ni retirer votre propre rôle d'administration" in html
    db_session.expire_all()
    admin = db_session.get(User, admin.id)
    assert admin.role == Role.ADMIN
    assert admin.active
    assert _actions(db_session, admin.id) == []
    # Their own row offers neither action.
    html = client.get("/utilisateurs").get_data(as_text=True)
    row = html.split(f'data-user="{admin.id}"')[1].split("</tr>")[0]
    assert "<form" not in row


def test_the_last_active_admin_can_never_be_removed(db_session: Session) -> None:
    # Through the web an admin can only act on others, so there are always two; the
    # rule still holds for any caller (here the command line, with no actor).
    admin = UserFactory(email="seul@agence.example.org", role=Role.ADMIN)
    UserFactory(email="ancien@agence.example.org", role=Role.ADMIN, active=False)
    with pytest.raises(services.LastAdminError):
        services.change_role(db_session(), actor_id=None, user_id=admin.id, role=Role.EDITOR)
    with pytest.raises(services.LastAdminError):
        services.deactivate_user(db_session(), actor_id=None, user_id=admin.id)
    db_session.expire_all()
    admin = db_session.get(User, admin.id)
    assert (admin.role, admin.active) == (Role.ADMIN, True)
    assert db_session.scalars(select(AuditEntry)).first() is None
    # With a second active admin, either may go.
    UserFactory(email="second@agence.example.org", role=Role.ADMIN)
    services.change_role(db_session(), actor_id=None, user_id=admin.id, role=Role.EDITOR)
    assert db_session.get(User, admin.id).role == Role.EDITOR


def test_two_admins_cannot_remove_each_other(client: FlaskClient, db_session: Session) -> None:
    first = _admin(client)
    second = UserFactory(email="second@agence.example.org", role=Role.ADMIN)
    services.change_role(db_session(), actor_id=first.id, user_id=second.id, role=Role.EDITOR)
    # The demoted admin's own request, already past the role check, is refused by the use case.
    with pytest.raises(services.NotAllowedError):
        services.deactivate_user(db_session(), actor_id=second.id, user_id=first.id)
    assert db_session.get(User, first.id).active


def test_deactivation_ends_sessions_and_logins_until_reactivated(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    admin = _admin(client)
    user = UserFactory(email="claire@agence.example.org", name="Claire Dumont")
    theirs = app.test_client()
    login(theirs, "claire@agence.example.org")
    assert theirs.get("/").status_code == 200

    assert _post(client, "/utilisateurs/desactiver", user_id=user.id).status_code == 302
    assert "Le compte de Claire Dumont est désactivé." in client.get("/utilisateurs").get_data(
        as_text=True
    )
    # Their open session is over at the next request, and they cannot log in again.
    response = theirs.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert login(theirs, "claire@agence.example.org").status_code == 401

    assert _post(client, "/utilisateurs/reactiver", user_id=user.id).status_code == 302
    assert "Le compte de Claire Dumont est réactivé." in client.get("/utilisateurs").get_data(
        as_text=True
    )
    assert login(theirs, "claire@agence.example.org", PASSWORD).status_code == 302
    entries = history(db_session, "user", user.id)
    assert [(e.action, e.actor_id) for e in entries] == [
        ("user.deactivated", admin.id),
        ("user.reactivated", admin.id),
    ]
