"""Issue dashboard at scale: 1,000,000 events for one issue on PostgreSQL.

    .venv/bin/python -m bench.stats [--events 1000000] [--deliveries 50000] [--write]

Uses BENCH_DATABASE_URL (default: the scratch database ``bench_stats``, schema rebuilt).
The events are written by set-based ``INSERT … SELECT generate_series`` (skewed in time,
per delivery and per link, a share of machine hits), plus 200,000 events of another issue.
Pages go through the real Flask app (test client, logged in as an analyst). The baseline,
measured in the same run, is the naive way: the dashboard's figures computed straight from
the events table (COUNT DISTINCT and GROUP BY over the issue's events, with its index).
"""

import argparse
import os
import platform
import re
import time
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import Connection, text

from bench.record import timed, write_section
from service import create_app
from service.accounts.models import Role
from service.accounts.services import create_user
from service.cli import upgrade_database
from service.config import load_config
from service.db import Session, make_engine
from service.stats.services import roll_up

LINKS = 20
DAYS = 30


def _populate(url: str, events: int, deliveries: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade_database(_config(url))
    engine = make_engine(url)
    with engine.begin() as conn:
        _fill(conn, events, deliveries)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()


def _fill(conn: Connection, events: int, deliveries: int) -> None:
    run = conn.execute
    run(
        text(
            "INSERT INTO newsletters (slug, name, sender_name, sender_email, legal_footer, "
            "postal_address, main_color, tracking_mode, tracking_retention_days, "
            "send_weekdays_only, send_skip_holidays, created_at) VALUES ('lettre', "
            "'Lettre de l''agence', 'Agence', 'lettre@agence.example.org', '', '', '#1d4f91', "
            "'individual', 365, false, false, now())"
        )
    )
    for number in (1, 2):
        run(
            text(
                "INSERT INTO issues (newsletter_id, number, title, subject, preheader, status, "
                "send_started_at, sent_at, created_at, updated_at, version) VALUES (1, :n, "
                "'Numéro ' || :n, 'Objet', '', 'sent', now() - interval '31 days' + :n * "
                "interval '1 hour', now() - interval '30 days', now(), now(), 1)"
            ),
            {"n": number},
        )
    run(
        text(
            "INSERT INTO segments (slug, name, description, kind, rule, is_public, double_opt_in, "
            "created_at) VALUES ('elus', 'Élus', '', 'static', null, true, true, now()), "
            "('techniciens', 'Techniciens', '', 'static', null, true, true, now()), "
            "('lens', 'Commune de Lens', '', 'rule', "
            """'{"field": "commune", "op": "eq", "value": "Lens"}', false, true, now())"""
        )
    )
    run(text("INSERT INTO issue_segments VALUES (1, 1), (1, 2), (1, 3), (2, 1)"))
    run(
        text(
            "INSERT INTO subscribers (email, first_name, last_name, commune, attributes, status, "
            "language, created_at, updated_at) SELECT 'abonne' || n || '@commune.example.fr', "
            "'Prénom', 'Nom' || n, CASE WHEN n % 7 = 0 THEN 'Lens' ELSE 'Liévin' END, '{}', "
            "'active', 'fr', now() - (n % 365) * interval '1 day', now() "
            "FROM generate_series(1, :count) AS n"
        ),
        {"count": deliveries},
    )
    run(
        text(
            "INSERT INTO memberships (subscriber_id, segment_id, status, created_at) "
            "SELECT id, 1 + id % 2, 'active', created_at FROM subscribers"
        )
    )
    run(
        text(
            "INSERT INTO deliveries (issue_id, subscriber_id, variant, status, attempts, "
            "created_at, sent_at, updated_at) SELECT i, id, 'all', CASE WHEN id % 97 = 0 THEN "
            "'bounced' WHEN id % 211 = 0 THEN 'failed' ELSE 'sent' END, 1, now(), now(), now() "
            "FROM subscribers, generate_series(1, 2) AS i"
        )
    )
    for position in range(4):
        run(
            text(
                "INSERT INTO blocks (issue_id, position, kind, data) VALUES (1, :p, 'text', "
                """'{"title": "Bloc", "html": "<p>Texte</p>"}')"""
            ),
            {"p": position},
        )
    run(
        text(
            "INSERT INTO links (issue_id, block_id, url, label, kind, position, created_at) "
            "SELECT 1, 1 + n % 4, 'https://www.agence.example.org/page-' || n, 'Lien ' || n, "
            "CASE WHEN n % 5 = 4 THEN 'resource' ELSE 'link' END, n, now() "
            "FROM generate_series(0, :links - 1) AS n"
        ),
        {"links": LINKS},
    )
    # Skew: a few deliveries open often, early hours are busy, low link numbers win.
    run(
        text(
            "INSERT INTO events (kind, issue_id, delivery_id, link_id, occurred_at, is_machine) "
            "SELECT CASE WHEN r < 0.62 THEN 'open' WHEN r < 0.985 THEN 'click' "
            "WHEN r < 0.995 THEN 'unsubscribe' ELSE 'complaint' END, issue, "
            "1 + ((floor(power(random(), 2) * :deliveries))::int * 2) + (issue - 1), "
            "CASE WHEN r >= 0.62 AND r < 0.985 AND issue = 1 "
            "THEN 1 + floor(power(random(), 2) * :links)::int END, "
            "(SELECT send_started_at FROM issues WHERE id = issue) "
            "+ power(random(), 4) * interval '30 days', random() < 0.25 "
            "FROM (SELECT random() AS r, CASE WHEN n <= :events THEN 1 ELSE 2 END AS issue "
            "FROM generate_series(1, :total) AS n) AS g"
        ),
        {
            "events": events,
            "total": events + 200_000,
            "deliveries": deliveries,
            "links": LINKS,
        },
    )


NAIVE = [
    "SELECT kind, is_machine, count(*) FROM events WHERE issue_id = 1 GROUP BY kind, is_machine",
    "SELECT count(DISTINCT delivery_id) FROM events WHERE issue_id = 1 "
    "AND kind IN ('open', 'click') AND NOT is_machine",
    "SELECT count(DISTINCT delivery_id) FROM events WHERE issue_id = 1 "
    "AND kind = 'click' AND NOT is_machine",
    "SELECT link_id, is_machine, count(*), count(DISTINCT delivery_id) FROM events "
    "WHERE issue_id = 1 AND kind = 'click' GROUP BY link_id, is_machine",
    "SELECT date_trunc('hour', occurred_at), kind, is_machine, count(*) FROM events "
    "WHERE issue_id = 1 AND kind IN ('open', 'click') GROUP BY 1, 2, 3",
    "SELECT status, count(*) FROM deliveries WHERE issue_id = 1 GROUP BY status",
]


def _config(url: str) -> object:
    return load_config(
        instance_path=Path("/tmp/lettrine-bench-stats"),
        secret_key="bench",
        database_url=url,
        broker_url="memory://",
        broker_folder=None,
        redis_url=None,
    )


def _login(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    client.post(
        "/login",
        data={
            "email": "analyst@bench.example",
            "password": "bench-password-123",
            "csrf_token": token.group(1),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/bench_stats"
    )
    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit("BENCH_DATABASE_URL must name a bench database (its schema is dropped)")
    started = time.perf_counter()
    _populate(url, args.events, args.deliveries)
    populate_s = time.perf_counter() - started

    app = create_app(_config(url))  # type: ignore[arg-type]
    app.config["RATELIMIT_ENABLED"] = False
    engine = app.extensions["engine"]
    with app.app_context():
        create_user(
            Session(),
            email="analyst@bench.example",
            name="Bench",
            role=Role.ANALYST,
            password="bench-password-123",
        )
        roll_up(Session())  # records the newest event id
        started = time.perf_counter()
        folded = roll_up(Session())
        rollup_s = time.perf_counter() - started
        Session.remove()
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        sizes = conn.execute(
            text("SELECT (SELECT count(*) FROM stats_hourly), (SELECT count(*) FROM stats_reach)")
        ).one()

    def naive() -> None:
        with engine.connect() as conn:
            for sql in NAIVE:
                conn.execute(text(sql)).all()

    client: FlaskClient = app.test_client()
    _login(client)
    page = client.get("/statistiques/numeros/1")
    assert page.status_code == 200
    assert 'data-figure="opens"' in page.get_data(as_text=True)
    rows = [("Baseline: the same figures straight from the events table (naive SQL)",)]
    measured = [timed(naive, max(5, args.repeats // 4))]
    cases = [
        ("Issue dashboard (rollups, nothing left to fold)", "/statistiques/numeros/1"),
        ("Click map (the email annotated)", "/statistiques/numeros/1/carte"),
        ("Trends across issues", "/statistiques/"),
        ("Export of every table (XLSX)", "/statistiques/numeros/1/export.xlsx"),
    ]
    for label, path in cases:
        assert client.get(path).status_code == 200, path
        rows.append((label,))
        measured.append(timed(lambda p=path: client.get(p).data, args.repeats))
    # Same run, the previous way: the segment table computed at each request.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM stats_segment_snapshots"))
    rows.append(("Issue dashboard, segment table computed per request (the previous way)",))
    measured.append(timed(lambda: client.get("/statistiques/numeros/1").data, args.repeats))
    with app.app_context():
        roll_up(Session())  # stores the segment tables again
        Session.remove()
    # Between two beat runs: events written after the watermark are read live.
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (kind, issue_id, delivery_id, link_id, occurred_at, "
                "is_machine) SELECT CASE WHEN n % 3 = 0 THEN 'click' ELSE 'open' END, 1, "
                "1 + (n * 2), CASE WHEN n % 3 = 0 THEN 1 + n % :links END, now(), false "
                "FROM generate_series(1, 5000) AS n"
            ),
            {"links": LINKS},
        )
    rows.append(("Issue dashboard with 5,000 events not rolled up yet (read live)",))
    measured.append(timed(lambda: client.get("/statistiques/numeros/1").data, args.repeats))

    output = "\n".join(
        [
            f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, PostgreSQL: "
            f"{args.events:,} events for the issue (+200,000 for another), "
            f"{args.deliveries:,} deliveries, {LINKS} links; set-based fill {populate_s:.1f} s. "
            f"First rollup of all {folded:,} events: {rollup_s:.1f} s "
            f"({sizes[0]:,} hourly rows, {sizes[1]:,} reach rows). "
            f"{args.repeats} requests per page through the Flask app in one process.",
            "",
            "| what | median | p95 |",
            "|---|---|---|",
            *(
                f"| {label} | {median:.1f} ms | {p95:.1f} ms |"
                for (label,), (median, p95) in zip(rows, measured, strict=True)
            ),
        ]
    )
    print(output)
    if args.write:
        write_section(
            "stats",
            output,
            "## Issue dashboard at 1,000,000 events (`bench/stats.py`)\n\n"
            "```sh\n.venv/bin/python -m bench.stats --write\n```\n\n",
        )


if __name__ == "__main__":
    main()
