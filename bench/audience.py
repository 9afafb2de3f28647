"""Subscriber list at scale: 100,000 subscribers on PostgreSQL, the pages staff use.

    .venv/bin/python -m bench.audience [--subscribers 100000] [--write]

Uses BENCH_DATABASE_URL (default: the scratch database ``bench``, schema rebuilt).
Requests go through the real Flask app (test client, logged in as an editor); the
baseline, measured in the same run, is the login page, which touches no subscriber.
"""

import argparse
import os
import platform
import re
import time
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import text

from bench.record import timed, write_section
from service import create_app
from service.accounts.models import Role
from service.accounts.services import create_user
from service.cli import upgrade_database
from service.config import load_config
from service.db import Session, make_engine


def _populate(url: str, count: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    config = load_config(
        instance_path=Path("/tmp/lettrine-bench"), secret_key="bench", database_url=url
    )
    upgrade_database(config)
    engine = make_engine(url)
    communes = [
        "Lens",
        "Liévin",
        "Béthune",
        "Bruay-la-Buissière",
        "Hesdin",
        "Saint-Pol-sur-Ternoise",
        "Frévent",
        "Carvin",
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO segments (slug, name, description, kind, is_public, double_opt_in, created_at) "
                "VALUES ('elus', 'Élus', '', 'static', true, true, now()), "
                "('techniciens', 'Techniciens', '', 'static', true, true, now())"
            )
        )
        conn.execute(
            text(
                "INSERT INTO subscribers (email, first_name, last_name, organisation, function, commune, epci, "
                "attributes, status, language, created_at, updated_at) "
                "SELECT 'abonne' || n || '@commune' || (n % 500) || '.example.fr', 'Prénom' || n, 'Nom' || n, "
                "'Mairie ' || (n % 500), CASE WHEN n % 3 = 0 THEN 'Élu' ELSE 'Technicien' END, "
                "(ARRAY["
                + ",".join(f"'{c}'" for c in communes)
                + "])[1 + n % 8], 'EPCI ' || (n % 5), '{}', "
                "CASE WHEN n % 50 = 0 THEN 'unsubscribed' ELSE 'active' END, 'fr', now(), now() "
                "FROM generate_series(1, :count) AS n"
            ),
            {"count": count},
        )
        conn.execute(
            text(
                "INSERT INTO memberships (subscriber_id, segment_id, status, created_at) "
                "SELECT id, CASE WHEN function = 'Élu' THEN 1 ELSE 2 END, 'active', now() FROM subscribers"
            )
        )
        conn.execute(text("ANALYZE"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/bench")
    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit("BENCH_DATABASE_URL must name a bench database (its schema is dropped)")
    started = time.perf_counter()
    _populate(url, args.subscribers)
    populate_s = time.perf_counter() - started

    app = create_app(
        load_config(
            instance_path=Path("/tmp/lettrine-bench"),
            secret_key="bench",
            database_url=url,
            broker_url="memory://",
            broker_folder=None,
            redis_url=None,
        )
    )
    app.config["RATELIMIT_ENABLED"] = False
    with app.app_context():
        create_user(
            Session(),
            email="editor@bench.example",
            name="Bench",
            role=Role.EDITOR,
            password="bench-password-123",
        )
    client: FlaskClient = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post(
        "/login",
        data={
            "email": "editor@bench.example",
            "password": "bench-password-123",
            "csrf_token": token,
        },
    )
    first = client.get("/abonnes/").get_data(as_text=True)
    deep_after = args.subscribers // 2
    assert "data-subscriber=" in first

    cases = [
        ("Baseline: login page (no subscriber read)", "/login"),
        ("List, first page (50 of all, with the total count)", "/abonnes/"),
        (
            f"List, a page deep in the list (after id {deep_after:,})",
            f"/abonnes/?apres={deep_after}",
        ),
        ("Search by name or address (« Nom4242 »)", "/abonnes/?q=Nom4242"),
        ("Filter: segment Élus + commune Hesdin", "/abonnes/?segment=1&commune=Hesdin"),
        ("Filter: status unsubscribed", "/abonnes/?statut=unsubscribed"),
    ]
    rows = []
    for label, path in cases:
        assert client.get(path).status_code == 200, path
        median, p95 = timed(lambda p=path: client.get(p).data, args.repeats)
        rows.append((label, median, p95))
    output = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, PostgreSQL, "
            f"{args.subscribers:,} subscribers (set-based fill: {populate_s:.1f} s), "
            f"{args.repeats} requests each through the Flask app in one process.",
            "",
            "| page | median | p95 |",
            "|---|---|---|",
            *(f"| {label} | {median:.1f} ms | {p95:.1f} ms |" for label, median, p95 in rows),
        ]
    )
    print(output)
    if args.write:
        write_section(
            "audience",
            output,
            "## Subscriber list at scale (`bench/audience.py`)\n\n```sh\n.venv/bin/python -m bench.audience --write\n```\n\n",
        )


if __name__ == "__main__":
    main()
