# Named after what it measures: run with -m, never imported (hence the file-wide N999).
# ruff: noqa: N999
"""Subscriber import benchmark: a 100,000-line French CSV into PostgreSQL.

    .venv/bin/python -m bench.import [--rows 100000] [--write]

Uses BENCH_DATABASE_URL (default: the scratch database ``bench`` on the local
PostgreSQL, whose schema is dropped and migrated again). The file is what Excel
writes for "CSV (séparateur : point-virgule)": Windows-1252, ``;``, CRLF, with a
realistic mix of new people, people already known, unsubscribed and suppressed
ones, invalid addresses and duplicates. Baseline measured in the same run: reading
the same file with the ``csv`` module and nothing else. Peak memory is
``ru_maxrss``, taken after each phase (it only grows); ``--write`` records the
table in docs/benchmarks.md.
"""

import argparse
import csv
import os
import platform
import random
import resource
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bench.record import write_section
from service.audience import imports
from service.audience.models import (
    Import,
    ImportStatus,
    Segment,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from service.audience.services import address_hmac
from service.cli import upgrade_database
from service.config import load_config
from service.db import make_engine

SECRET = "bench-secret"  # noqa: S105 - throwaway HMAC key for a scratch database

FIRST = [
    "Clémence",
    "Jérôme",
    "Hélène",
    "Loïc",
    "Maëlle",
    "Théo",
    "Léa",
    "Noël",
    "Anaïs",
    "Grégoire",
    "Françoise",
    "Benoît",
    "Cécile",
    "Joël",
    "Zoé",
    "Rémi",
    "Inès",
    "Gaël",
    "Élodie",
    "Amélie",
]
LAST = [
    "Dupont",
    "Lefèvre",
    "Béguin",
    "Lemaître",
    "Caron",
    "Dubois",
    "Leroy",
    "Lefebvre",
    "Moreau",
    "Fournier",
    "Mercier",
    "Lévêque",
    "Duhamel",
    "Delattre",
    "Vasseur",
    "Boulanger",
    "Carpentier",
    "Deschamps",
    "Gosselin",
    "Hénin",
]
COMMUNES = [
    "Liévin",
    "Lens",
    "Béthune",
    "Bruay-la-Buissière",
    "Saint-Pol-sur-Ternoise",
    "Hénin-Beaumont",
    "Carvin",
    "Avion",
    "Noeux-les-Mines",
    "Auchel",
]
EPCI = ["CA de Lens-Liévin", "CA Béthune-Bruay", "CC du Ternois", "CA Hénin-Carvin"]
FUNCTIONS = [
    "Maire",
    "Adjoint à l'urbanisme",
    "Directeur général des services",
    "Chargée de mission",
    "Technicien voirie",
    "Commerçant",
]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_file(path: Path, rows: int, rng: random.Random) -> dict[str, int]:
    """Write the CSV; return how many lines of each kind it holds."""
    kinds = {"invalid": 0, "duplicate": 0, "existing": 0, "unsubscribed": 0, "suppressed": 0}
    previous = "premiere@lens.fr"
    with path.open("w", encoding="cp1252", newline="") as handle:
        writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
        writer.writerow(
            [
                "Civilité",
                "Prénom",
                "Nom",
                "Adresse e-mail",
                "Organisme",
                "Fonction",
                "Commune",
                "EPCI",
                "Téléphone",
            ]
        )
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            commune = rng.choice(COMMUNES)
            roll = rng.random()
            if roll < 0.01:
                email, kinds["invalid"] = f"{first} {last}@mairie", kinds["invalid"] + 1
            elif roll < 0.02:
                email, kinds["duplicate"] = previous, kinds["duplicate"] + 1
            elif roll < 0.07:
                email, kinds["existing"] = f"connu{i}@agglo.fr", kinds["existing"] + 1
            elif roll < 0.08:
                email, kinds["unsubscribed"] = f"parti{i}@agglo.fr", kinds["unsubscribed"] + 1
            elif roll < 0.09:
                email, kinds["suppressed"] = f"exclu{i}@agglo.fr", kinds["suppressed"] + 1
            else:
                email = previous = f"personne{i}@{commune.lower()}.fr"
            writer.writerow(
                [
                    rng.choice(["M.", "Mme"]),
                    first,
                    last,
                    email,
                    f"Mairie de {commune}",
                    rng.choice(FUNCTIONS),
                    commune,
                    rng.choice(EPCI),
                    f"03 21 {i % 100:02d} {i % 97:02d} 00",
                ]
            )
    return kinds


def seed(session: Session, path: Path) -> None:
    """Put the known, unsubscribed and suppressed people of the file in the database."""
    known, gone, suppressed = [], [], []
    with path.open(encoding="cp1252", newline="") as handle:
        for row in csv.reader(handle, delimiter=";"):
            email = row[3]
            if email.startswith("connu"):
                known.append(email)
            elif email.startswith("parti"):
                gone.append(email)
            elif email.startswith("exclu"):
                suppressed.append(email)
    session.execute(
        Subscriber.__table__.insert(),
        [
            {"email": e, "attributes": {}, "status": SubscriberStatus.ACTIVE, "language": "fr"}
            for e in known
        ]
        + [
            {
                "email": e,
                "attributes": {},
                "status": SubscriberStatus.UNSUBSCRIBED,
                "language": "fr",
            }
            for e in gone
        ],
    )
    session.execute(
        Suppression.__table__.insert(),
        [
            {"address_hmac": address_hmac(SECRET, e), "reason": SuppressionReason.UNSUBSCRIBED}
            for e in suppressed
        ],
    )
    session.add(Segment(slug="elus", name="Élus", double_opt_in=True))
    session.commit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/bench")
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        assert "bench" in (engine.url.database or ""), (
            "BENCH_DATABASE_URL must name a bench database"
        )
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    work = Path(tempfile.mkdtemp(prefix="lettrine-bench-import-"))
    config = load_config(instance_path=work, secret_key=SECRET, database_url=url)
    upgrade_database(config)

    source = work / "abonnes.csv"
    rng = random.Random(20261126)  # noqa: S311 - seeded test data, not a secret
    kinds = make_file(source, args.rows, rng)
    size_mib = source.stat().st_size / 2**20
    with Session(engine) as session:
        seed(session, source)
    rss_start = _rss_mib()

    # Baseline: the csv module reads the file, and nothing else.
    started = time.perf_counter()
    with source.open(encoding="cp1252", newline="") as handle:
        parsed = sum(1 for _row in csv.reader(handle, delimiter=";")) - 1
    baseline_s = time.perf_counter() - started
    rss_baseline = _rss_mib()

    upload = work / "upload"
    upload.write_bytes(source.read_bytes())
    with Session(engine) as session:
        started = time.perf_counter()
        record = imports.create_import(session, config, upload, "abonnes.csv", None)
        upload_s = time.perf_counter() - started
        segment_id = session.scalars(select(Segment.id)).one()
        record.options = {
            "segment_ids": [segment_id],
            "existing": "update",
            "consent_basis": "",
            "all_or_nothing": False,
        }
        record.status = ImportStatus.CHECKING
        session.commit()
        import_id = record.id

        started = time.perf_counter()
        imports.run(session, config, import_id)
        dry_s = time.perf_counter() - started
        rss_dry = _rss_mib()

        session.get_one(Import, import_id).status = ImportStatus.IMPORTING
        session.commit()
        started = time.perf_counter()
        imports.run(session, config, import_id)
        import_s = time.perf_counter() - started
        rss_import = _rss_mib()
        done = session.get_one(Import, import_id)
        assert done.status == ImportStatus.DONE, done.error
        counts = dict(done.counts)
        total_subscribers = session.scalar(select(func.count(Subscriber.id)))

    assert parsed == args.rows
    rows = [
        (
            "Baseline: `csv` module reads the file (cp1252, `;`), nothing else",
            f"{baseline_s:.2f} s",
            f"{args.rows / baseline_s:,.0f} lines/s",
        ),
        (
            "Upload check (format, encoding over the whole file, shape, line count)",
            f"{upload_s:.2f} s",
            f"×{upload_s / baseline_s:.1f} the baseline",
        ),
        (
            "Dry run (normalise, duplicates, suppression and known-address queries, report)",
            f"{dry_s:.2f} s",
            f"{args.rows / dry_s:,.0f} lines/s",
        ),
        (
            "**Import** (same checks + inserts, updates, memberships, commit per 1,000 lines)",
            f"**{import_s:.2f} s**",
            f"**{args.rows / import_s:,.0f} lines/s** — goal: 100,000 lines < 30 s",
        ),
        (
            "Peak RSS after seeding the database / after the baseline",
            f"{rss_start:.0f} / {rss_baseline:.0f} MiB",
            f"file: {size_mib:.1f} MiB",
        ),
        (
            "Peak RSS after the dry run / after the import",
            f"{rss_dry:.0f} / {rss_import:.0f} MiB",
            f"+{rss_import - rss_baseline:.0f} MiB over the baseline",
        ),
    ]
    outcome = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
    made = ", ".join(f"{k} {v:,}" for k, v in kinds.items())
    table = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, Python {platform.python_version()}, "
        f"PostgreSQL ({engine.dialect.server_version_info and '.'.join(map(str, engine.dialect.server_version_info))}), "
        f"one process. File: {args.rows:,} lines, {size_mib:.1f} MiB, cp1252, `;` ({made}). "
        f"Outcomes: {outcome}; {total_subscribers:,} subscribers afterwards.",
        "",
        "| step | time | rate / note |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    output = "\n".join(table)
    print(output)
    if args.write:
        write_section("import", output)


if __name__ == "__main__":
    main()
