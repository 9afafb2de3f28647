"""Models and migrations agree, on the database of this pass (PostgreSQL or SQLite)."""

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from service.cli import MIGRATIONS, upgrade_database
from service.models import Base
from tests.conftest import ON_SQLITE, make_config


def _drift(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_no_drift_between_models_and_migrations(engine: Engine) -> None:
    assert _drift(engine) == []


def test_every_model_table_is_migrated(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_migrations_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    """Run the whole history down and up on a scratch SQLite database."""
    url = f"sqlite:///{tmp_path / 'scratch.db'}"
    config = make_config(tmp_path, url)
    upgrade_database(config)
    engine = create_engine(url)
    alembic_cfg = AlembicConfig()
    alembic_cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        alembic_cfg.attributes["connection"] = conn
        command.downgrade(alembic_cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade_database(config)
    assert _drift(engine) == []
    engine.dispose()


@pytest.mark.postgres_only
def test_postgres_uses_native_types(engine: Engine) -> None:
    assert not ON_SQLITE
    with engine.connect() as conn:
        types = dict(
            conn.execute(
                text(
                    "select column_name, data_type from information_schema.columns "
                    "where table_name = 'deliveries'"
                )
            ).all()
        )
    assert types["id"] == "bigint"
    assert types["created_at"] == "timestamp with time zone"
    with engine.connect() as conn:
        data_type = conn.execute(
            text(
                "select data_type from information_schema.columns "
                "where table_name = 'blocks' and column_name = 'data'"
            )
        ).scalar()
    assert data_type == "jsonb"
