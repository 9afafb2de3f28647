"""Models and migrations agree, on the database of this pass (PostgreSQL or SQLite)."""

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Engine, String, create_engine, inspect, text

from service.cli import MIGRATIONS, migration_connection, upgrade_database
from service.db import make_engine
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


def test_sqlite_batch_migrations_keep_referencing_rows(tmp_path: Path) -> None:
    """A batch ALTER recreates the table; with foreign keys on, the drop would cascade."""
    url = f"sqlite:///{tmp_path / 'fk.db'}"
    config = make_config(tmp_path, url)
    upgrade_database(config)
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in (
            (
                "INSERT INTO segments (slug, name, description, kind, is_public, double_opt_in, "
                "created_at) VALUES ('elus', 'Élus', '', 'static', 0, 1, CURRENT_TIMESTAMP)"
            ),
            (
                "INSERT INTO subscribers (email, attributes, status, language, created_at, "
                "updated_at) VALUES ('a@b.fr', '{}', 'active', 'fr', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            ),
            (
                "INSERT INTO memberships (subscriber_id, segment_id, status, created_at) "
                "VALUES (1, 1, 'active', CURRENT_TIMESTAMP)"
            ),
        ):
            conn.execute(text(statement))

    def alter(connection: object) -> None:
        operations = Operations(MigrationContext.configure(connection))  # type: ignore[arg-type]
        with operations.batch_alter_table("subscribers", recreate="always") as batch:
            batch.alter_column("function", type_=String(200))

    with migration_connection(config) as connection:
        alter(connection)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM memberships")) == 1
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on

    # The same change on a plain connection (foreign keys on) loses the memberships:
    # this is what migration_connection prevents.
    with engine.begin() as conn:
        alter(conn)
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM memberships")) == 0
    engine.dispose()
