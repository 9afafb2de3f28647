import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role
from service.audience.models import Segment
from service.demo.services import load_demo
from service.issues.models import Issue
from tests.factories import UserFactory
from tests.helpers import login


@pytest.fixture
def demo_issue(db_session: Session) -> Issue:
    load_demo(db_session)
    db_session.commit()
    return db_session.scalars(select(Issue)).one()


@pytest.fixture
def editor(client: FlaskClient, db_session: Session) -> FlaskClient:
    UserFactory(email="redaction@agence.example.org", role=Role.EDITOR, name="Claire Dumont")
    login(client, "redaction@agence.example.org")
    return client


def token_and_version(client: FlaskClient, path: str) -> tuple[str, str]:
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    version = re.search(r'name="version" (?:type="hidden" )?value="(\d+)"', page)
    assert token, path
    assert version, path
    return token.group(1), version.group(1)


def segment_id(db_session: Session, slug: str) -> int:
    return db_session.scalars(select(Segment.id).where(Segment.slug == slug)).one()
