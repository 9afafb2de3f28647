"""Public pages: a branded newsletter, public and private segments, and helpers that
drive the pages as a visitor does (and read the emails the SMTP sink received)."""

import email
import email.policy
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from html import unescape

import pytest
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from emails.tokens import TokenSigner
from service.audience.models import Segment, SegmentKind
from service.newsletters.models import Newsletter
from tests.factories import NewsletterFactory, SegmentFactory
from tests.helpers import CSRF_RE

SECRET = "test-secret-key"  # tests/conftest.py make_config
BASE_URL = "http://lettrine.test"
SAME_ANSWER = "Si l'adresse peut recevoir nos lettres, un message de confirmation vient de lui"
INVALID = "Lien invalide ou expiré"
CONFIRM_RE = re.compile(re.escape(BASE_URL) + r"(/inscription/confirmer/[A-Za-z0-9_.\-]+)")
PREFERENCES_RE = re.compile(re.escape(BASE_URL) + r"(/preferences/[A-Za-z0-9_.\-]+)")


@dataclass
class Audience:
    newsletter: Newsletter
    elus: Segment
    commerce: Segment
    private: Segment


@pytest.fixture
def audience(db_session: Session) -> Audience:
    newsletter = NewsletterFactory(
        name="La Lettre de l'Agence",
        sender_name="Agence d'urbanisme de l'Artois",
        main_color="#7a1f5c",
    )
    NewsletterFactory(name="Une autre lettre", main_color="#00ff00")
    elus = SegmentFactory(
        slug="elus", name="Élus et élues", description="Pour les élus", is_public=True
    )
    commerce = SegmentFactory(slug="commerce", name="Commerce de demain", is_public=True)
    private = SegmentFactory(slug="partenaires", name="Partenaires (interne)", is_public=False)
    SegmentFactory(
        slug="regle",
        name="Règle publique",
        is_public=True,
        kind=SegmentKind.RULE,
        rule={"all": []},
    )
    return Audience(newsletter, elus, commerce, private)


def page_csrf(client: FlaskClient, path: str) -> str:
    match = CSRF_RE.search(client.get(path).get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1) or match.group(2)


def subscribe(
    client: FlaskClient,
    address: str,
    segments: list[int],
    *,
    ip: str = "203.0.113.45",
    consent: bool = True,
    **fields: str,
) -> TestResponse:
    """Fill and send the form from ``ip``; the email leaves once the answer is closed."""
    environ = {"REMOTE_ADDR": ip}
    token = page_csrf(client, "/inscription")
    data: dict[str, object] = {"csrf_token": token, "email": address, "segments": segments}
    if consent:
        data["consent"] = "y"
    data.update(fields)
    response = client.post("/inscription", data=data, environ_base=environ)
    response.close()  # as under a real server: call_on_close sends the email
    return response


def text(response: TestResponse) -> str:
    return " ".join(unescape(response.get_data(as_text=True)).split())


def messages(sink: object) -> list[tuple[list[str], EmailMessage]]:
    parsed = []
    for _from, rcpts, raw in sink.messages:  # type: ignore[attr-defined]
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        parsed.append((rcpts, message))
    return parsed


def body_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def confirm_path(message: EmailMessage) -> str:
    match = CONFIRM_RE.search(body_text(message))
    assert match, "no confirmation link in the message"
    return match.group(1)


def preferences_path(message: EmailMessage) -> str:
    match = PREFERENCES_RE.search(body_text(message))
    assert match, "no preferences link in the message"
    return match.group(1)


def tamper(token: str) -> str:
    """The same token with one character changed (not the last: base64 padding bits)."""
    index = len(token) // 2
    return token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]


def signed_ago(salt: str, payload: object, seconds: int) -> str:
    """An itsdangerous token as it would have been made ``seconds`` ago."""

    class EarlierSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    return URLSafeTimedSerializer(SECRET, salt=salt, signer=EarlierSigner).dumps(payload)


def delivery_tokens(delivery_id: int) -> tuple[str, str]:
    """(unsubscribe, preferences) tokens of a delivery, as the renderer makes them."""
    _open, unsubscribe, preferences = TokenSigner(SECRET).system_tokens(delivery_id)
    return unsubscribe, preferences
