"""Sending benchmark: an issue delivered to 100,000 recipients by real Celery workers.

    .venv/bin/python -m bench.send [--recipients 100000] [--concurrency 2,3,4]
                                   [--snapshot 1000000] [--write]

Needs PostgreSQL, Redis and Postfix's ``smtp-sink`` (Debian package ``postfix``; only
the binary is used, started here on a free port of 127.0.0.1, nothing listens on 25).
Uses BENCH_DATABASE_URL (default: the scratch database ``bench_send``, created if
missing, schema dropped and migrated again) and BENCH_REDIS_URL (default: Redis db 9,
flushed). The demo issue is loaded (``service.demo``), approved, and sent to
``--recipients`` subscribers inserted set-based into one of its segments; for each
worker concurrency (``celery worker -c N``, prefork) the deliveries are wiped and the
issue sent again, timed from ``start_sending`` (the snapshot) until the issue is
``sent``. Worker memory (RSS of the pool processes) is sampled every second.

Baseline, measured in the same run against the same sink: raw ``smtplib`` with the
same number of processes, one reused connection each, sending pre-built bytes of the
same size with the same envelope pattern (VERP sender, one recipient). Last, the
snapshot alone for ``--snapshot`` subscribers in one segment (no delivery).
"""

import argparse
import multiprocessing
import os
import platform
import pwd
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

from bench.record import write_section
from service import create_app
from service.accounts.models import Role, User
from service.cli import upgrade_database
from service.config import Config, load_config
from service.db import Session, make_engine
from service.delivery import services as delivery
from service.demo.services import load_demo
from service.issues.models import Issue, IssueStatus

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-send-secret"  # noqa: S105 - throwaway key for a scratch database
BASE_URL = "https://lettre.aula.example.org"


@dataclass
class Run:
    concurrency: int
    snapshot_s: float
    send_s: float
    sent: int
    rss_start_mib: float
    rss_warm_mib: float  # 10 s into the send: templates compiled, connections open
    rss_end_mib: float
    rss_max_mib: float
    worker_cpu_s: float
    machine_busy: float  # share of all cores busy during the send
    load: float  # 1-minute load average at the end of the send (other work on the machine)

    @property
    def rate(self) -> float:
        return self.sent / self.send_s


# --- database ---------------------------------------------------------------------


def _ensure_database(url: str) -> None:
    parsed = make_url(url)
    admin = make_engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    with admin.connect() as raw:
        conn = raw.execution_options(isolation_level="AUTOCOMMIT")
        exists = conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}
        )
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def _config(url: str, redis_url: str, instance: Path, smtp_port: int = 1025) -> Config:
    return load_config(
        instance_path=instance,
        secret_key=SECRET,
        database_url=url,
        broker_url=redis_url,
        broker_folder=None,
        redis_url=redis_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        base_url=BASE_URL,
    )


def _fresh_schema(url: str, config: Config) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade_database(config)


def _seed(engine: Engine, subscribers: int) -> tuple[int, int]:
    """The demo issue, approved, its audience replaced by ``subscribers`` people in its
    first segment. Returns (issue id, segment id)."""
    from sqlalchemy.orm import Session as OrmSession  # noqa: PLC0415

    with OrmSession(engine) as session:
        load_demo(session)
        session.commit()
        issue = session.scalars(select(Issue)).one()
        issue.status = IssueStatus.APPROVED
        segment_id = issue.segments[0].id
        issue.segments = [issue.segments[0]]
        session.commit()
        issue_id = issue.id
    _replace_audience(engine, segment_id, subscribers)
    return issue_id, segment_id


def _replace_audience(engine: Engine, segment_id: int, subscribers: int) -> float:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE deliveries, memberships, subscribers RESTART IDENTITY CASCADE"))
        conn.execute(
            text(
                "INSERT INTO subscribers (email, civility, first_name, last_name, organisation, "
                "function, commune, epci, attributes, status, language, created_at, updated_at) "
                "SELECT 'prenom.nom' || n || '@mairie-' || (n % 500) || '.example.fr', "
                "'Mme', 'Clémence', 'Dupont-' || n, 'Mairie', 'Maire', 'Liévin', "
                "'CA de Lens-Liévin', '{}', 'active', 'fr', now(), now() "
                "FROM generate_series(1, :count) AS n"
            ),
            {"count": subscribers},
        )
        conn.execute(
            text(
                "INSERT INTO memberships (subscriber_id, segment_id, status, created_at) "
                "SELECT id, :segment, 'active', now() FROM subscribers"
            ),
            {"segment": segment_id},
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def _rewind(engine: Engine, issue_id: int) -> None:
    """Back to approved, no deliveries: the next run sends the whole issue again."""
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE deliveries RESTART IDENTITY CASCADE"))
        conn.execute(
            text(
                "UPDATE issues SET status = 'approved', send_started_at = NULL, sent_at = NULL, "
                "send_error = NULL WHERE id = :id"
            ),
            {"id": issue_id},
        )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def _start_sending(config: Config, issue_id: int) -> tuple[float, int]:
    app = create_app(config)
    try:
        with app.app_context():
            session = Session()
            issue = session.get(Issue, issue_id)
            assert issue is not None
            user = session.scalars(select(User).where(User.role == Role.PUBLISHER)).first()
            assert user is not None
            started = time.perf_counter()
            added = delivery.start_sending(session, issue, user)
            elapsed = time.perf_counter() - started
            Session.remove()
    finally:
        app.extensions["engine"].dispose()
    return elapsed, added


def _status(engine: Engine, issue_id: int) -> IssueStatus:
    with engine.connect() as conn:
        return IssueStatus(
            conn.scalar(text("SELECT status FROM issues WHERE id = :id"), {"id": issue_id})
        )


def _sent(engine: Engine, issue_id: int) -> int:
    with engine.connect() as conn:
        sent = conn.scalar(
            text("SELECT count(*) FROM deliveries WHERE issue_id = :id AND status = 'sent'"),
            {"id": issue_id},
        )
    return int(sent or 0)


def _sample_message(config: Config, engine: Engine, issue_id: int) -> tuple[bytes, str, str]:
    """One personalised message of the issue as the workers build it, with its envelope."""
    from sqlalchemy.orm import Session as OrmSession  # noqa: PLC0415

    from service.audience.models import Subscriber  # noqa: PLC0415
    from service.delivery.models import Delivery  # noqa: PLC0415
    from service.issues.rendering import dkim_signer  # noqa: PLC0415

    with OrmSession(engine) as session:
        issue = session.get(Issue, issue_id)
        row = session.execute(
            select(Delivery, Subscriber)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.issue_id == issue_id)
            .order_by(Delivery.id)
            .limit(1)
        ).one()
        message, bounces_to = delivery._message(issue, config, dkim_signer(config), row[0], row[1])
        session.rollback()
        return message, bounces_to, row[1].email


# --- processes --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_sink(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        raise SystemExit("smtp-sink not found: apt-get install postfix (only the binary is used)")
    command = [binary]
    if os.geteuid() == 0:
        command += ["-u", pwd.getpwuid(65534).pw_name]  # smtp-sink refuses to run as root
    command += [f"127.0.0.1:{port}", "1000"]
    sink = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink
        except OSError:
            time.sleep(0.05)  # waiting for the sink's socket, nothing to await otherwise
    sink.kill()
    raise SystemExit("smtp-sink did not start")


def _start_worker(  # noqa: PLR0917 - where the worker finds everything
    url: str, redis_url: str, instance: Path, smtp_port: int, concurrency: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SMTP_HOST", "SMTP_PORT"}
    }
    env.update(
        LETTRINE_INSTANCE=str(instance),
        DATABASE_URL=url,
        REDIS_URL=redis_url,
        SECRET_KEY=SECRET,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_port),
        BASE_URL=BASE_URL,
        PYTHONUNBUFFERED="1",
    )
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--pool=prefork",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _children(pid: int) -> list[int]:
    try:
        raw = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in raw.split()]


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _wait_pool(worker: subprocess.Popen[bytes], concurrency: int, log: Path) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"worker died:\n{log.read_text()[-3000:]}")
        pool = _children(worker.pid)
        if len(pool) >= concurrency and "ready" in log.read_text():
            return pool
        time.sleep(0.1)  # waiting for the pool to fork
    raise SystemExit(f"worker not ready:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, 15)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


# --- runs -------------------------------------------------------------------------


def lettrine_run(  # noqa: PLR0917 - one run's whole setting
    engine: Engine,
    url: str,
    redis_url: str,
    config: Config,
    issue_id: int,
    concurrency: int,
    work: Path,
) -> Run:
    redis.Redis.from_url(redis_url).flushdb()
    _rewind(engine, issue_id)
    log = work / f"worker-c{concurrency}.log"
    log.write_text("")
    worker = _start_worker(url, redis_url, work / "instance", config.smtp_port, concurrency, log)
    try:
        pool = _wait_pool(worker, concurrency, log)
        # The pool has imported everything: this is the memory a worker starts with.
        rss_start = sum(_rss_mib(p) for p in pool)
        cpu_start = sum(_cpu_s(p) for p in pool)
        busy_start, total_start = _machine_ticks()
        snapshot_s, added = _start_sending(config, issue_id)
        started = time.perf_counter() - snapshot_s
        rss_samples = [rss_start]
        last = time.monotonic()
        while True:
            if _status(engine, issue_id) is IssueStatus.SENT:
                break
            if worker.poll() is not None:
                raise SystemExit(f"worker died:\n{log.read_text()[-3000:]}")
            if time.monotonic() - last >= 1:
                last = time.monotonic()
                rss_samples.append(sum(_rss_mib(p) for p in _children(worker.pid)))
            time.sleep(0.2)  # polling the ledger: the issue's status is what we await
        send_s = time.perf_counter() - started
        pool = _children(worker.pid)
        rss_end = sum(_rss_mib(p) for p in pool)
        cpu = sum(_cpu_s(p) for p in pool) - cpu_start
        busy_end, total_end = _machine_ticks()
    finally:
        _stop(worker)
    sent = _sent(engine, issue_id)
    if sent != added:
        raise SystemExit(f"{added} deliveries, {sent} sent")
    return Run(
        concurrency,
        snapshot_s,
        send_s,
        sent,
        rss_start,
        rss_samples[min(10, len(rss_samples) - 1)],
        rss_end,
        max(rss_samples),
        cpu,
        (busy_end - busy_start) / max(1, total_end - total_start),
        os.getloadavg()[0],
    )


def _raw_process(port: int, message: bytes, sender: str, count: int, offset: int) -> None:
    smtp = smtplib.SMTP("127.0.0.1", port)
    smtp.ehlo()
    for n in range(offset, offset + count):
        refused = smtp.sendmail(sender, [f"prenom.nom{n}@mairie-{n % 500}.example.fr"], message)
        assert not refused
    smtp.quit()


def raw_run(port: int, message: bytes, sender: str, total: int, processes: int) -> float:
    """Messages per second of plain smtplib, ``processes`` processes, one connection each."""
    share = total // processes
    workers = [
        multiprocessing.Process(target=_raw_process, args=(port, message, sender, share, i * share))
        for i in range(processes)
    ]
    started = time.perf_counter()
    for process in workers:
        process.start()
    for process in workers:
        process.join()
        if process.exitcode != 0:
            raise SystemExit("raw smtplib sender failed")
    return share * processes / (time.perf_counter() - started)


def snapshot_run(
    engine: Engine, config: Config, issue_id: int, segment_id: int, count: int
) -> tuple[float, float, int]:
    fill_s = _replace_audience(engine, segment_id, count)
    _rewind(engine, issue_id)
    snapshot_s, added = _start_sending(config, issue_id)
    if added != count:
        raise SystemExit(f"snapshot of {count:,} subscribers added {added:,}")
    return fill_s, snapshot_s, added


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--concurrency", default="2,3,4")
    parser.add_argument("--snapshot", type=int, default=1_000_000, help="0: skip")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    url = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/bench_send")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit("BENCH_DATABASE_URL must name a bench database (its schema is dropped)")
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="lettrine-bench-send-"))
    port = _free_port()
    sink = _start_sink(port)
    try:
        _ensure_database(url)
        config = _config(url, redis_url, work / "app", smtp_port=port)
        _fresh_schema(url, config)
        engine = make_engine(url)
        issue_id, segment_id = _seed(engine, args.recipients)
        runs: list[Run] = []
        raws: dict[int, float] = {}
        message = b""
        for concurrency in levels:
            run = lettrine_run(engine, url, redis_url, config, issue_id, concurrency, work)
            if not message:
                message, bounces_to, _email = _sample_message(config, engine, issue_id)
            raws[concurrency] = raw_run(port, message, bounces_to, args.recipients, concurrency)
            runs.append(run)
            print(
                f"-c {concurrency}: snapshot {run.snapshot_s:.2f} s, {run.rate:,.0f} msg/s "
                f"({run.send_s:.1f} s), raw {raws[concurrency]:,.0f} msg/s, RSS "
                f"{run.rss_start_mib:.0f} → {run.rss_warm_mib:.0f} (10 s) → "
                f"{run.rss_end_mib:.0f} MiB "
                f"(max {run.rss_max_mib:.0f}), worker CPU {run.worker_cpu_s:.0f} s, "
                f"machine busy {run.machine_busy:.0%}, load {run.load:.1f}",
                flush=True,
            )
        fill_s = big_s = 0.0
        if args.snapshot:
            fill_s, big_s, _ = snapshot_run(engine, config, issue_id, segment_id, args.snapshot)
            print(f"snapshot of {args.snapshot:,}: {big_s:.1f} s (fill {fill_s:.1f} s)", flush=True)
        engine.dispose()
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(work, ignore_errors=True)

    best = max(runs, key=lambda r: r.rate)
    rows = [
        (
            f"Lettrine, `celery worker -c {r.concurrency}`",
            f"{'**' if r is best else ''}{r.rate:,.0f} msg/s{'**' if r is best else ''} "
            f"({r.send_s:.1f} s)",
            f"{raws[r.concurrency]:,.0f} msg/s",
            f"{r.rate / raws[r.concurrency]:.0%}",
            f"{r.rss_start_mib:.0f} → {r.rss_warm_mib:.0f} → {r.rss_end_mib:.0f} MiB "
            f"(max {r.rss_max_mib:.0f})",
            f"{r.worker_cpu_s:.0f} s; machine {r.machine_busy:.0%} busy, load {r.load:.1f}",
            f"{r.snapshot_s:.2f} s",
        )
        for r in runs
    ]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores "
        f"(load average {load[0]:.1f} at the start), PostgreSQL + Redis, Postfix `smtp-sink` "
        f"on 127.0.0.1. The demo issue (message {len(message) / 1024:.0f} KiB) sent to "
        f"{args.recipients:,} subscribers of one segment; time from `start_sending` to the "
        "issue `sent`. Raw: `smtplib.sendmail` of the same bytes with the same envelope, "
        "as many processes as worker processes, one reused connection each.",
        "",
        "| sender | Lettrine | raw smtplib | Lettrine / raw "
        "| worker RSS (pool: idle → after 10 s → end) "
        "| worker CPU | snapshot of the audience |",
        "|---|---|---|---|---|---|---|",
        *(f"| {' | '.join(row)} |" for row in rows),
    ]
    if args.snapshot:
        lines += [
            "",
            f"Snapshot alone (`start_sending`, no delivery) for {args.snapshot:,} subscribers "
            f"in one segment: **{big_s:.1f} s** (goal < 60 s; set-based fill {fill_s:.1f} s).",
        ]
    output = "\n".join(lines)
    print(output)
    if args.write:
        write_section(
            "send",
            output,
            "## Sending 100,000 messages (`bench/send.py`)\n\n"
            "```sh\n.venv/bin/python -m bench.send --write\n```\n\n",
        )


if __name__ == "__main__":
    main()
