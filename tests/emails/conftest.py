"""The demo issue as plain data, rendered the way workers will render it."""

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import IssueData, RenderSettings
from service.config import Config
from service.demo.services import load_demo
from service.issues.models import Issue
from service.issues.rendering import issue_data, render_settings
from tests.conftest import make_config

BASE = "https://lettre.aula.example.org"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    # Same secret as the test app, so its public routes accept the links rendered here.
    return make_config(tmp_path, database_url, base_url=BASE)


@pytest.fixture
def demo_issue(db_session: Session) -> Issue:
    load_demo(db_session)
    db_session.commit()
    return db_session.scalars(select(Issue)).one()


@pytest.fixture
def demo(demo_issue: Issue) -> IssueData:
    return issue_data(demo_issue)


@pytest.fixture
def settings(config: Config, demo: IssueData) -> RenderSettings:
    return render_settings(config, demo.id)
