"""Newsletter settings: admins only, validated field by field, audited."""

import datetime as dt
import io
from typing import Any

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role, User
from service.assets.models import Asset
from service.audit.models import AuditEntry
from service.newsletters.models import Newsletter, TrackingMode
from service.newsletters.services import contrast_ratio, slugify, white_text_contrast
from tests.assets import samples
from tests.factories import NewsletterFactory, UserFactory
from tests.helpers import csrf_token, login


def _admin(client: FlaskClient) -> User:
    user = UserFactory(email="admin@agence.example.org", role=Role.ADMIN)
    login(client, "admin@agence.example.org")
    return user


def _form(newsletter: Newsletter | None = None, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Lettre de l'agence",
        "sender_name": "Agence d'urbanisme de l'Artois",
        "sender_email": "lettre@aula.example.org",
        "reply_to": "communication@aula.example.org",
        "legal_footer": "Vous recevez cette lettre en tant que partenaire de l'agence.",
        "postal_address": "Centre Jean Monnet, 62300 Lens",
        "main_color": "#1d4f91",
        "tracking_mode": "anonymous",
        "tracking_retention_days": "180",
    }
    values.update(changes)
    return values


def _post(client: FlaskClient, url: str, data: dict[str, Any]) -> Any:
    token = csrf_token(client, url)
    return client.post(url, data={**data, "csrf_token": token}, content_type="multipart/form-data")


def _page(response: Any) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def _audit(db_session: Session, action: str) -> list[AuditEntry]:
    return list(db_session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_index_lists_the_newsletters(client: FlaskClient) -> None:
    _admin(client)
    newsletter = NewsletterFactory(name="Lettre des élus")
    page = client.get("/lettres/").get_data(as_text=True)
    assert "Lettre des élus" in page
    assert f'href="/lettres/{newsletter.id}"' in page
    assert "Individuel" in page


def test_edit_page_shows_the_settings(client: FlaskClient) -> None:
    _admin(client)
    newsletter = NewsletterFactory(tracking_mode=TrackingMode.OFF)
    page = _page(client.get(f"/lettres/{newsletter.id}"))
    assert page.find("input", id="sender_email")["value"] == newsletter.sender_email
    assert page.find("textarea", id="postal_address").text.strip() == newsletter.postal_address
    assert page.find("input", id="main_color")["value"] == "#1d4f91"
    checked = page.find("input", attrs={"name": "tracking_mode", "checked": True})
    assert checked["value"] == "off"
    for mode in ("Individuel", "Anonyme", "Désactivé"):
        assert page.find("strong", string=mode)
    # Each radio is explained, and the explanation is tied to it.
    radio = page.find("input", id="tracking_mode-2")
    assert "pas de statistiques" in page.find(id=radio["aria-describedby"]).text
    for label in page.find_all("label"):
        if label.get("for"):
            assert page.find(id=label["for"]), label
    assert not page.find("script", src=False)
    assert "onclick" not in str(page)


def test_save_updates_and_audits(client: FlaskClient, db_session: Session) -> None:
    admin = _admin(client)
    newsletter = NewsletterFactory()
    response = _post(client, f"/lettres/{newsletter.id}", _form())
    assert response.status_code == 302
    assert response.headers["Location"] == f"/lettres/{newsletter.id}"
    db_session.expire_all()
    saved = db_session.get(Newsletter, newsletter.id)
    assert saved is not None
    assert saved.sender_name == "Agence d'urbanisme de l'Artois"
    assert saved.reply_to == "communication@aula.example.org"
    assert saved.tracking_mode is TrackingMode.ANONYMOUS
    assert saved.tracking_retention_days == 180
    (entry,) = _audit(db_session, "newsletter.updated")
    assert (entry.actor_id, entry.target_type, entry.target_id) == (
        admin.id,
        "newsletter",
        saved.id,
    )
    assert entry.details["changes"]["sender_email"] == [
        "lettre@agence.example.org",
        "lettre@aula.example.org",
    ]
    assert entry.details["changes"]["tracking_mode"] == ["individual", "anonymous"]
    assert "Réglages enregistrés." in client.get(f"/lettres/{newsletter.id}").get_data(as_text=True)


def test_empty_reply_to_is_stored_as_none(client: FlaskClient, db_session: Session) -> None:
    _admin(client)
    newsletter = NewsletterFactory(reply_to="ancienne@aula.example.org")
    _post(client, f"/lettres/{newsletter.id}", _form(reply_to=""))
    db_session.expire_all()
    assert db_session.get(Newsletter, newsletter.id).reply_to is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("main_color", "bleu", "Couleur attendue au format #rrggbb"),
        ("main_color", "#12345", "Couleur attendue au format #rrggbb"),
        ("postal_address", "   ", "Indiquez l'adresse postale de l'organisme."),
        ("sender_name", "Agence\r\nBcc: victime@example.org", "Une seule ligne ici"),
        ("name", "Lettre\nX-Injected: oui", "Une seule ligne ici"),
        ("reply_to", "a@aula.example.org\r\nBcc: b@example.org", "Une seule ligne ici"),
        ("sender_email", "pas-une-adresse", "il manque le @"),
        ("tracking_mode", "espion", None),
        ("tracking_retention_days", "0", "Durée entre 1 et 3 650 jours."),
    ],
)
def test_invalid_input_is_refused_and_kept(
    client: FlaskClient, db_session: Session, field: str, value: str, message: str | None
) -> None:
    _admin(client)
    newsletter = NewsletterFactory()
    before = newsletter.sender_name
    response = _post(
        client,
        f"/lettres/{newsletter.id}",
        _form(**{field: value, "sender_name": "Nouveau nom"})
        if field != "sender_name"
        else _form(**{field: value}),
    )
    assert response.status_code == 422
    page = _page(response)
    summary = page.find(attrs={"role": "alert"})
    assert summary is not None
    error = page.find(id=f"{field}-erreur")
    assert error is not None
    if message:
        assert message in error.text
        assert message in summary.text
    if field != "tracking_mode":
        widget = page.find(id=field)
        assert widget["aria-invalid"] == "true"
        assert f"{field}-erreur" in widget["aria-describedby"]
    # What was typed is still there.
    assert page.find("input", id="name")["value"] == (value if field == "name" else _form()["name"])
    db_session.expire_all()
    assert db_session.get(Newsletter, newsletter.id).sender_name == before
    assert _audit(db_session, "newsletter.updated") == []


def test_low_contrast_colour_is_saved_with_a_warning(
    client: FlaskClient, db_session: Session
) -> None:
    _admin(client)
    newsletter = NewsletterFactory()
    response = _post(client, f"/lettres/{newsletter.id}", _form(main_color="#FFCC00"))
    assert response.status_code == 302
    db_session.expire_all()
    assert db_session.get(Newsletter, newsletter.id).main_color == "#ffcc00"
    page = client.get(f"/lettres/{newsletter.id}").get_data(as_text=True)
    assert "Le texte blanc sur cette couleur est peu lisible : contraste de 1,5:1" in page


def test_warning_ratio_is_rounded_down(client: FlaskClient) -> None:
    _admin(client)
    newsletter = NewsletterFactory(main_color="#777777")  # 4.48:1
    page = client.get(f"/lettres/{newsletter.id}").get_data(as_text=True)
    assert "contraste de 4,4:1, 4,5:1 au moins est demandé" in page


def test_dark_colour_has_no_warning(client: FlaskClient) -> None:
    _admin(client)
    newsletter = NewsletterFactory(main_color="#1d4f91")
    assert "peu lisible" not in client.get(f"/lettres/{newsletter.id}").get_data(as_text=True)


def test_logo_upload(client: FlaskClient, db_session: Session) -> None:
    _admin(client)
    newsletter = NewsletterFactory()
    data = _form(logo=(io.BytesIO(samples.png(120, 40)), "logo-aula.png"))
    assert _post(client, f"/lettres/{newsletter.id}", data).status_code == 302
    db_session.expire_all()
    saved = db_session.get(Newsletter, newsletter.id)
    assert saved is not None
    logo = db_session.get(Asset, saved.logo_asset_id)
    assert logo is not None
    assert (logo.width, logo.height, logo.filename) == (120, 40, "logo-aula.png")
    page = _page(client.get(f"/lettres/{newsletter.id}"))
    assert page.find("img", attrs={"data-logo": True})["src"] == f"/media/{logo.id}/logo-aula.png"

    # Saving again without a file keeps it; ticking "remove" drops it.
    _post(client, f"/lettres/{newsletter.id}", _form())
    db_session.expire_all()
    assert db_session.get(Newsletter, newsletter.id).logo_asset_id == logo.id
    _post(client, f"/lettres/{newsletter.id}", _form(remove_logo="y"))
    db_session.expire_all()
    assert db_session.get(Newsletter, newsletter.id).logo_asset_id is None


def test_svg_logo_is_refused(client: FlaskClient, db_session: Session) -> None:
    _admin(client)
    newsletter = NewsletterFactory()
    data = _form(logo=(io.BytesIO(samples.SVG), "logo.png"), sender_name="Nouveau nom")
    response = _post(client, f"/lettres/{newsletter.id}", data)
    assert response.status_code == 422
    assert (
        "Les images SVG ou HTML ne sont pas acceptées"
        in _page(response).find(id="logo-erreur").text
    )
    db_session.expire_all()
    assert db_session.get(Newsletter, newsletter.id).sender_name != "Nouveau nom"


def test_logo_chosen_with_another_error_is_asked_again(client: FlaskClient) -> None:
    _admin(client)
    newsletter = NewsletterFactory()
    data = _form(logo=(io.BytesIO(samples.png()), "logo.png"), main_color="rouge")
    response = _post(client, f"/lettres/{newsletter.id}", data)
    assert response.status_code == 422
    assert "choisissez-le à nouveau" in _page(response).find(id="logo-erreur").text


def test_create_newsletter(client: FlaskClient, db_session: Session) -> None:
    admin = _admin(client)
    NewsletterFactory(slug="lettre-de-l-agence")
    form = _page(client.get("/lettres/nouvelle"))
    assert form.find("input", id="main_color")["value"] == "#1d4f91"
    response = _post(client, "/lettres/nouvelle", _form())
    assert response.status_code == 302
    created = db_session.scalars(
        select(Newsletter).where(Newsletter.sender_email == "lettre@aula.example.org")
    ).one()
    assert created.slug == "lettre-de-l-agence-2"
    assert response.headers["Location"] == f"/lettres/{created.id}"
    (entry,) = _audit(db_session, "newsletter.created")
    assert (entry.actor_id, entry.target_id) == (admin.id, created.id)


def test_create_requires_the_postal_address(client: FlaskClient, db_session: Session) -> None:
    _admin(client)
    response = _post(client, "/lettres/nouvelle", _form(postal_address=""))
    assert response.status_code == 422
    assert db_session.scalars(select(Newsletter)).all() == []


@pytest.mark.parametrize("role", [Role.PUBLISHER, Role.EDITOR, Role.ANALYST])
def test_only_admins(client: FlaskClient, db_session: Session, role: Role) -> None:
    newsletter = NewsletterFactory()
    UserFactory(email="agent@agence.example.org", role=role)
    login(client, "agent@agence.example.org")
    token = csrf_token(client, "/")
    for url in ("/lettres/", "/lettres/nouvelle", f"/lettres/{newsletter.id}"):
        assert client.get(url).status_code == 403
    for url in ("/lettres/nouvelle", f"/lettres/{newsletter.id}"):
        assert client.post(url, data={**_form(), "csrf_token": token}).status_code == 403
    db_session.expire_all()
    assert db_session.get(Newsletter, newsletter.id).sender_email == "lettre@agence.example.org"


def test_unknown_newsletter_is_404(client: FlaskClient) -> None:
    _admin(client)
    assert client.get("/lettres/999999").status_code == 404


def test_contrast_ratio() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert white_text_contrast("#1d4f91") > 4.5
    assert white_text_contrast("#767676") == pytest.approx(4.54, abs=0.01)  # the AA boundary grey
    assert white_text_contrast("#777777") < 4.5


def test_slugify() -> None:
    assert slugify("Lettre des élus — Artois") == "lettre-des-elus-artois"
    assert slugify("«»") == "lettre"


def test_send_window_is_saved_and_checked(client: FlaskClient, db_session: Session) -> None:
    _admin(client)
    newsletter = NewsletterFactory()
    url = f"/lettres/{newsletter.id}"
    half = _post(client, url, _form(send_window_start="08:30"))
    assert half.status_code == 422
    assert "les deux heures" in half.get_data(as_text=True)
    backwards = _post(client, url, _form(send_window_start="18:00", send_window_end="08:30"))
    assert backwards.status_code == 422
    assert "heure de fin doit suivre" in backwards.get_data(as_text=True)
    saved = _post(
        client,
        url,
        _form(
            send_window_start="08:30",
            send_window_end="18:00",
            send_weekdays_only="y",
            send_skip_holidays="y",
        ),
    )
    assert saved.status_code == 302
    db_session.expire_all()
    stored = db_session.get(Newsletter, newsletter.id)
    assert stored is not None
    assert (stored.send_window_start, stored.send_window_end) == (
        dt.time(8, 30),
        dt.time(18, 0),
    )
    assert stored.send_weekdays_only
    assert stored.send_skip_holidays
    # Both hours cleared (a browser sends the emptied inputs) and boxes unticked: no window.
    cleared_form = _form(send_window_start="", send_window_end="")
    assert _post(client, url, cleared_form).status_code == 302
    db_session.expire_all()
    cleared = db_session.get(Newsletter, newsletter.id)
    assert cleared is not None
    assert cleared.send_window_start is None
    assert not cleared.send_weekdays_only
