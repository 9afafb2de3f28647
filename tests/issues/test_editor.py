"""The issue editor through HTTP: what staff do every day."""

import email
import email.policy
import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.audit.models import AuditEntry
from service.issues.models import Block, Issue, IssueStatus
from tests.factories import NewsletterFactory, UserFactory
from tests.helpers import csrf_token, login
from tests.issues.conftest import segment_id, token_and_version


def _issue(db_session: Session, issue_id: int) -> Issue:
    db_session.expire_all()
    issue = db_session.get(Issue, issue_id)
    assert issue is not None
    return issue


def test_create_and_list(editor: FlaskClient, db_session: Session) -> None:
    newsletter = NewsletterFactory(name="La Lettre de l'AULA")
    token = csrf_token(editor, "/numeros/")
    response = editor.post(
        "/numeros/nouveau",
        data={"csrf_token": token, "newsletter_id": newsletter.id, "title": "Numéro de printemps"},
    )
    assert response.status_code == 302
    issue = db_session.scalars(select(Issue)).one()
    assert response.headers["Location"] == f"/numeros/{issue.id}"
    assert issue.number == 1
    assert issue.status is IssueStatus.DRAFT
    listing = editor.get("/numeros/?q=printemps").get_data(as_text=True)
    assert "Numéro de printemps" in listing
    assert "Numéro de printemps" not in editor.get("/numeros/?q=hiver").get_data(as_text=True)
    assert "Numéro de printemps" not in editor.get("/numeros/?statut=sent").get_data(as_text=True)


def test_add_a_block_of_each_kind(
    editor: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    path = f"/numeros/{demo_issue.id}"
    forms = {
        "text": {
            "title": "Le mot de la présidente",
            "html": "<p>Bonne <strong>année</strong> !</p>",
        },
        "news": {
            "title": "Un nouvel atelier",
            "html": "<p>Inscriptions ouvertes.</p>",
            "link-url": "https://www.aula.example.org/atelier",
            "link-label": "S'inscrire à l'atelier",
        },
        "agenda": {
            "title": "Agenda",
            "events-0-title": "Atelier à Hesdin",
            "events-0-start": "2027-05-12T14:00",
            "events-0-end": "2027-05-12T17:00",
            "events-0-place": "Mairie de Hesdin",
            "events-1-title": "",
            "events-1-start": "",
            "events-1-place": "",
        },
        "resources": {
            "title": "À télécharger",
            "items-0-title": "Plan de situation",
            "items-0-url": "https://www.aula.example.org/plan.pdf",
            "items-0-format": "pdf",
            "items-0-size": "2400000",
        },
    }
    for kind, fields in forms.items():
        token, version = token_and_version(editor, f"{path}/blocs/nouveau/{kind}")
        response = editor.post(
            f"{path}/blocs/nouveau/{kind}",
            data={"csrf_token": token, "version": version, "action": "save", **fields},
        )
        assert response.status_code == 302, (kind, response.get_data(as_text=True)[-2000:])
    issue = _issue(db_session, demo_issue.id)
    added = issue.blocks[-4:]
    assert [b.kind for b in added] == ["text", "news", "agenda", "resources"]
    assert added[2].data["events"][0]["place"] == "Mairie de Hesdin"
    assert len(added[2].data["events"]) == 1  # the blank row is dropped
    assert added[3].data["items"][0]["format"] == "PDF"
    page = editor.get(path).get_data(as_text=True)
    assert "Le mot de la présidente" in page
    preview = editor.get(f"{path}/apercu").get_data(as_text=True)
    assert "Le mot de la présidente" in preview
    assert "PDF, 2,4 Mo" in preview


def test_invalid_block_keeps_the_input(editor: FlaskClient, demo_issue: Issue) -> None:
    path = f"/numeros/{demo_issue.id}/blocs/nouveau/news"
    token, version = token_and_version(editor, path)
    response = editor.post(
        path,
        data={
            "csrf_token": token,
            "version": version,
            "action": "save",
            "title": "",
            "html": "<p>Un texte déjà écrit qu'il ne faut pas perdre.</p>",
            "link-url": "www.aula.example.org/atelier",
            "link-label": "Le programme",
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Donnez un titre à l&#39;actualité." in html or "Donnez un titre à l'actualité." in html
    assert "ajoutez https:// au début" in html
    assert "Un texte déjà écrit qu" in html
    assert 'value="www.aula.example.org/atelier"' in html
    assert 'value="Le programme"' in html  # the link text is kept too
    assert 'aria-invalid="true"' in html


def test_agenda_rows_are_added_without_javascript(editor: FlaskClient, demo_issue: Issue) -> None:
    path = f"/numeros/{demo_issue.id}/blocs/nouveau/agenda"
    token, version = token_and_version(editor, path)
    response = editor.post(
        path,
        data={
            "csrf_token": token,
            "version": version,
            "action": "add-row",
            "title": "Agenda",
            "events-0-title": "Atelier",
            "events-0-start": "16/01/2027",
            "events-0-place": "Liévin",
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'name="events-1-title"' in html
    assert 'value="16/01/2027"' in html  # kept as typed, to be corrected
    response = editor.post(
        path,
        data={
            "csrf_token": token,
            "version": version,
            "action": "save",
            "title": "Agenda",
            "events-0-title": "Atelier",
            "events-0-start": "16/01/2027",
            "events-0-place": "Liévin",
        },
    )
    assert response.status_code == 400
    assert "Date et heure non reconnues" in response.get_data(as_text=True)


def test_reorder_by_buttons_and_by_list(
    editor: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    path = f"/numeros/{demo_issue.id}"
    first, second = demo_issue.blocks[0].id, demo_issue.blocks[1].id
    token, version = token_and_version(editor, path)
    assert (
        editor.post(
            f"{path}/blocs/{first}/deplacer",
            data={"csrf_token": token, "version": version, "sens": "bas"},
        ).status_code
        == 302
    )
    order = [b.id for b in _issue(db_session, demo_issue.id).blocks]
    assert order[:2] == [second, first]

    token, version = token_and_version(editor, path)
    wanted = list(reversed(order))
    response = editor.post(
        f"{path}/blocs/ordre", data={"csrf_token": token, "version": version, "ordre": wanted}
    )
    assert response.status_code == 200
    assert [b.id for b in _issue(db_session, demo_issue.id).blocks] == wanted
    # A stale page (old version) cannot reorder behind someone's back.
    stale = editor.post(
        f"{path}/blocs/ordre", data={"csrf_token": token, "version": version, "ordre": order}
    )
    assert stale.status_code == 409
    assert "modifié par quelqu'un d'autre" in stale.get_json()["error"]


def test_delete_block_after_confirmation(
    editor: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    block = demo_issue.blocks[0]
    path = f"/numeros/{demo_issue.id}/blocs/{block.id}/supprimer"
    confirm = editor.get(path)
    assert "Supprimer ce bloc ?" in confirm.get_data(as_text=True)
    assert db_session.get(Block, block.id) is not None
    token, version = token_and_version(editor, path)
    assert editor.post(path, data={"csrf_token": token, "version": version}).status_code == 302
    db_session.expire_all()
    assert db_session.get(Block, block.id) is None


def test_concurrent_edits_never_silently_overwrite(
    editor: FlaskClient, demo_issue: Issue, db_session: Session, app: Flask
) -> None:
    path = f"/numeros/{demo_issue.id}"
    token, version = token_and_version(editor, path)  # Claire opens the page
    # Karim (another session) saves first.
    other = app.test_client()
    UserFactory(email="karim@agence.example.org", role=Role.EDITOR)
    login(other, "karim@agence.example.org")
    other_token, other_version = token_and_version(other, path)
    assert other_version == version
    other.post(
        f"{path}/reglages",
        data={
            "csrf_token": other_token,
            "version": other_version,
            "title": "Titre de Karim",
            "subject": "Objet de Karim",
        },
    )
    # Claire saves from her stale page: refused, her text kept on screen.
    response = editor.post(
        f"{path}/reglages",
        data={
            "csrf_token": token,
            "version": version,
            "title": "Titre de Claire",
            "subject": "Objet de Claire",
        },
    )
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert (
        "modifié par quelqu&#39;un d&#39;autre" in html or "modifié par quelqu'un d'autre" in html
    )
    assert 'value="Titre de Claire"' in html
    assert _issue(db_session, demo_issue.id).title == "Titre de Karim"
    # Having read the warning, Claire saves again: the form now carries the current version.
    new_version = re.search(r'name="version" type="hidden" value="(\d+)"', html)
    assert new_version
    editor.post(
        f"{path}/reglages",
        data={
            "csrf_token": token,
            "version": new_version.group(1),
            "title": "Titre de Claire",
            "subject": "Objet de Claire",
        },
    )
    assert _issue(db_session, demo_issue.id).title == "Titre de Claire"


def test_preview_is_sandboxed_and_follows_segments(editor: FlaskClient, demo_issue: Issue) -> None:
    restricted = next(b for b in demo_issue.blocks if b.segments)
    path = f"/numeros/{demo_issue.id}/apercu"
    everything = editor.get(path)
    assert everything.headers["Content-Security-Policy"].startswith("sandbox;")
    assert restricted.data["title"] in everything.get_data(as_text=True)
    assert restricted.data["title"] not in editor.get(f"{path}?segment=elus").get_data(as_text=True)
    text = editor.get(f"{path}?format=texte")
    assert text.mimetype == "text/plain"
    assert "Bonjour Prénom Nom," in text.get_data(as_text=True)
    page = editor.get(f"/numeros/{demo_issue.id}?segment=elus&largeur=mobile").get_data(
        as_text=True
    )
    assert 'class="preview preview-mobile" sandbox' in page


def test_test_send_arrives_untracked(
    editor: FlaskClient, demo_issue: Issue, mail_sink: object, db_session: Session
) -> None:
    token = csrf_token(editor, f"/numeros/{demo_issue.id}")
    response = editor.post(
        f"/numeros/{demo_issue.id}/test",
        data={
            "csrf_token": token,
            "addresses": "relecture@aula.example.org, elu.test@mairie-lens.example.fr",
        },
    )
    assert response.status_code == 302
    messages = mail_sink.messages  # type: ignore[attr-defined]
    assert [rcpt for _from, rcpt, _raw in messages] == [
        ["relecture@aula.example.org"],
        ["elu.test@mairie-lens.example.fr"],
    ]
    parsed = email.message_from_bytes(messages[0][2], policy=email.policy.default)
    assert parsed["Subject"].startswith("[TEST] ")
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "/c/" not in html
    assert "/o/" not in html
    entry = db_session.scalars(
        select(AuditEntry).where(AuditEntry.action == "issue.test_sent")
    ).one()
    assert entry.details["to"] == ["relecture@aula.example.org", "elu.test@mairie-lens.example.fr"]


def test_test_send_refuses_bad_lists(
    editor: FlaskClient, demo_issue: Issue, mail_sink: object
) -> None:
    token = csrf_token(editor, f"/numeros/{demo_issue.id}")
    eleven = ", ".join(f"t{i}@aula.example.org" for i in range(11))
    for addresses, message in (
        (eleven, "10 adresses au plus"),
        ("pas-une-adresse", "Adresse invalide"),
    ):
        response = editor.post(
            f"/numeros/{demo_issue.id}/test", data={"csrf_token": token, "addresses": addresses}
        )
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    assert mail_sink.messages == []  # type: ignore[attr-defined]


def test_review_workflow(
    editor: FlaskClient, demo_issue: Issue, db_session: Session, app: Flask
) -> None:
    path = f"/numeros/{demo_issue.id}"
    token, version = token_and_version(editor, path)
    assert (
        editor.post(f"{path}/approuver", data={"csrf_token": token, "version": version}).status_code
        == 403
    )
    editor.post(f"{path}/soumettre", data={"csrf_token": token, "version": version})
    assert _issue(db_session, demo_issue.id).status is IssueStatus.IN_REVIEW

    publisher = app.test_client()
    UserFactory(email="direction@agence.example.org", role=Role.PUBLISHER, name="Hélène Morel")
    login(publisher, "direction@agence.example.org")
    token, version = token_and_version(publisher, path)
    refused = publisher.post(
        f"{path}/renvoyer",
        data={"csrf_token": token, "version": version, "comment": ""},
        follow_redirects=True,
    )
    assert "Expliquez au rédacteur" in refused.get_data(as_text=True)
    publisher.post(
        f"{path}/renvoyer",
        data={
            "csrf_token": token,
            "version": version,
            "comment": "Ajouter le lieu exact de la plénière.",
        },
    )
    assert _issue(db_session, demo_issue.id).status is IssueStatus.DRAFT
    page = editor.get(path).get_data(as_text=True)
    assert "Ajouter le lieu exact de la plénière." in page
    assert "Hélène Morel a renvoyé le numéro au rédacteur" in page

    token, version = token_and_version(editor, path)
    editor.post(f"{path}/soumettre", data={"csrf_token": token, "version": version})
    token, version = token_and_version(publisher, path)
    publisher.post(f"{path}/approuver", data={"csrf_token": token, "version": version})
    issue = _issue(db_session, demo_issue.id)
    assert issue.status is IssueStatus.APPROVED
    assert issue.approved_at is not None

    # Any change after approval sends the issue back to draft.
    token, version = token_and_version(editor, path)
    editor.post(
        f"{path}/reglages",
        data={
            "csrf_token": token,
            "version": version,
            "title": issue.title,
            "subject": "Objet corrigé",
        },
    )
    assert _issue(db_session, demo_issue.id).status is IssueStatus.DRAFT
    actions = list(
        db_session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == demo_issue.id))
    )
    assert actions.count("issue.submitted") == 2
    assert "issue.approved" in actions
    assert "issue.back_to_draft" in actions


def test_submission_is_blocked_by_errors(
    editor: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    path = f"/numeros/{demo_issue.id}"
    token, version = token_and_version(editor, path)
    editor.post(
        f"{path}/reglages",
        data={
            "csrf_token": token,
            "version": version,
            "title": demo_issue.title,
            "subject": "Lettre {{ prenom }}",
        },
    )
    token, version = token_and_version(editor, path)
    response = editor.post(
        f"{path}/soumettre", data={"csrf_token": token, "version": version}, follow_redirects=True
    )
    assert "corrigez d&#39;abord les erreurs" in response.get_data(
        as_text=True
    ) or "corrigez d'abord les erreurs" in response.get_data(as_text=True)
    assert _issue(db_session, demo_issue.id).status is IssueStatus.DRAFT


def test_duplicate_and_delete(editor: FlaskClient, demo_issue: Issue, db_session: Session) -> None:
    token = csrf_token(editor, f"/numeros/{demo_issue.id}")
    response = editor.post(f"/numeros/{demo_issue.id}/dupliquer", data={"csrf_token": token})
    copy_id = int(response.headers["Location"].rsplit("/", 1)[1])
    copy_ = _issue(db_session, copy_id)
    assert copy_.number == demo_issue.number + 1
    assert [b.kind for b in copy_.blocks] == [b.kind for b in demo_issue.blocks]
    assert {s.slug for s in copy_.segments} == {s.slug for s in demo_issue.segments}
    token, version = token_and_version(editor, f"/numeros/{copy_id}/supprimer")
    editor.post(f"/numeros/{copy_id}/supprimer", data={"csrf_token": token, "version": version})
    db_session.expire_all()
    assert db_session.get(Issue, copy_id) is None


def test_block_limited_to_segments(
    editor: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    block = demo_issue.blocks[0]
    path = f"/numeros/{demo_issue.id}/blocs/{block.id}"
    token, version = token_and_version(editor, path)
    elus = segment_id(db_session, "elus")
    response = editor.post(
        path,
        data={
            "csrf_token": token,
            "version": version,
            "action": "save",
            "title": block.data.get("title") or "",
            "html": block.data["html"],
            "segments": [str(elus)],
        },
    )
    assert response.status_code == 302
    db_session.expire_all()
    assert [s.slug for s in db_session.get(Block, block.id).segments] == ["elus"]  # type: ignore[union-attr]


def test_analysts_cannot_edit(client: FlaskClient, demo_issue: Issue, db_session: Session) -> None:
    UserFactory(email="analyse@agence.example.org", role=Role.ANALYST)
    login(client, "analyse@agence.example.org")
    assert client.get("/numeros/").status_code == 200
    assert client.get(f"/numeros/{demo_issue.id}").status_code == 403
    assert client.get(f"/numeros/{demo_issue.id}/apercu").status_code == 403


def test_a_save_without_version_is_refused(
    editor: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    token = csrf_token(editor, f"/numeros/{demo_issue.id}")
    response = editor.post(
        f"/numeros/{demo_issue.id}/reglages",
        data={"csrf_token": token, "title": "Sans version", "subject": "Objet"},
    )
    assert response.status_code == 409
    assert _issue(db_session, demo_issue.id).title != "Sans version"


def test_refused_settings_keep_the_chosen_segments(
    editor: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    token, version = token_and_version(editor, f"/numeros/{demo_issue.id}")
    elus = segment_id(db_session, "elus")
    response = editor.post(
        f"/numeros/{demo_issue.id}/reglages",
        data={
            "csrf_token": token,
            "version": version,
            "title": "Titre",
            "subject": "Objet\u2028Bcc: x@y.fr",
            "segments": [str(elus)],
        },
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Une seule ligne ici" in html
    assert re.search(rf'value="{elus}" checked', html)
    assert html.count("checked") == 1


def test_links_with_attributes_in_any_order(editor: FlaskClient, demo_issue: Issue) -> None:
    path = f"/numeros/{demo_issue.id}/blocs/nouveau/text"
    token, version = token_and_version(editor, path)
    url = "https://www.aula.example.org/programme"
    html = f'<p>Voir <a title="Programme" href="{url}">le programme</a></p>'
    assert (
        editor.post(
            path, data={"csrf_token": token, "version": version, "action": "save", "html": html}
        ).status_code
        == 302
    )
    assert editor.get(f"/numeros/{demo_issue.id}").status_code == 200
    text = editor.get(f"/numeros/{demo_issue.id}/apercu?format=texte").get_data(as_text=True)
    assert "le programme [" in text


def test_publisher_sends_schedules_pauses_and_cancels(
    client: FlaskClient, demo_issue: Issue, db_session: Session
) -> None:
    from service.delivery.models import Delivery  # noqa: PLC0415

    issue = _issue(db_session, demo_issue.id)
    issue.status = IssueStatus.APPROVED
    db_session.commit()
    UserFactory(email="direction@agence.example.org", role=Role.PUBLISHER)
    login(client, "direction@agence.example.org")
    path = f"/numeros/{demo_issue.id}"
    token, version = token_and_version(client, path)
    scheduled = client.post(
        f"{path}/envoyer",
        data={"csrf_token": token, "version": version, "at": "2031-01-16T09:30"},
        follow_redirects=True,
    )
    assert "Envoi programmé." in scheduled.get_data(as_text=True)
    issue = _issue(db_session, demo_issue.id)
    assert issue.status is IssueStatus.SCHEDULED
    assert issue.scheduled_at is not None
    assert issue.scheduled_at.isoformat() == "2031-01-16T08:30:00+00:00"  # 9 h 30 in Paris

    issue.status = IssueStatus.APPROVED
    db_session.commit()
    token, version = token_and_version(client, path)
    started = client.post(
        f"{path}/envoyer", data={"csrf_token": token, "version": version}, follow_redirects=True
    )
    assert "Envoi lancé vers" in started.get_data(as_text=True)
    assert _issue(db_session, demo_issue.id).status is IssueStatus.SENDING
    total = len(list(db_session.scalars(select(Delivery.id))))
    assert total >= 250
    fragment = client.get(f"{path}/progression").get_data(as_text=True)
    assert f"restants sur {total}." in fragment
    token = csrf_token(client, path)
    client.post(f"{path}/controle", data={"csrf_token": token, "action": "pause"})
    assert _issue(db_session, demo_issue.id).status is IssueStatus.PAUSED
    client.post(f"{path}/controle", data={"csrf_token": token, "action": "annuler"})
    assert _issue(db_session, demo_issue.id).status is IssueStatus.CANCELLED


def test_test_sends_are_capped_per_person(editor: FlaskClient, demo_issue: Issue) -> None:
    token = csrf_token(editor, f"/numeros/{demo_issue.id}")
    path = f"/numeros/{demo_issue.id}/test"
    for _ in range(30):
        assert editor.post(path, data={"csrf_token": token, "addresses": "x"}).status_code == 400
    capped = editor.post(path, data={"csrf_token": token, "addresses": "x"})
    assert capped.status_code == 429
    assert "Trop de tentatives" in capped.get_data(as_text=True)
