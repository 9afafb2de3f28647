"""The bounce mailbox read over IMAP, against a real Dovecot server (tests/dovecot.py)."""

import imaplib
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm import Session as OrmSession

from emails.tokens import TokenSigner
from service import create_app
from service.accounts.models import Role
from service.audience.models import Subscriber, SubscriberStatus, Suppression
from service.audit.models import AuditEntry
from service.config import Config, ConfigError, ImapSettings, load_config
from service.db import utcnow
from service.delivery.bounces import bounce_address
from service.delivery.imap import LEASE, MAILBOX, RunResult, _utf7, read_mailbox
from service.delivery.models import (
    Delivery,
    DeliveryStatus,
    InboundReport,
    MailboxState,
    ReportKind,
)
from service.issues.models import Issue
from service.tracking.models import Event, EventKind
from tests.conftest import TEST_REDIS_URL, free_port, make_config
from tests.dovecot import DOVECOT, PASSWORD, Dovecot, dovecot_server
from tests.factories import DeliveryFactory, IssueFactory, UserFactory
from tests.helpers import login
from tests.processes import start_worker, truncate_all, worker_env

SECRET = "test-secret-key"
DOMAIN = "lettre.aula.example.org"
DONE = "Trait&AOk-s"  # « Traités » in IMAP's modified UTF-7
ASIDE = "Malform&AOk-s"


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if not Path(DOVECOT).exists():
        pytest.fail("Dovecot is missing: scripts/ensure_services.sh installs dovecot-imapd")
    with dovecot_server() as server:
        yield server


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user()


def _config(app: Flask, settings: ImapSettings | None) -> Config:
    config: Config = replace(app.extensions["lettrine_config"], bounce_imap=settings)
    return config


def _address(delivery: Delivery) -> str:
    return bounce_address(TokenSigner(SECRET), delivery.id, DOMAIN)


def _dsn(to: str, action: str, status: str, message_id: str) -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n"
        f"Message-ID: <{message_id}@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nLe message n'a pas pu etre remis.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; elu@lens.example.fr\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <elu@lens.example.fr>: Utilisateur inconnu\r\n"
        "--b--\r\n"
    ).encode()


def _arf(delivery: Delivery, message_id: str) -> bytes:
    return (
        "From: abuse@fai.example.net\r\nTo: abuse@aula.example.org\r\nSubject: Complaint\r\n"
        f"Message-ID: <{message_id}@fai.example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThis is a complaint.\r\n"
        "--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{delivery.issue_id}.{delivery.id}@{DOMAIN}>\r\nSubject: La lettre\r\n"
        "--b--\r\n"
    ).encode()


def _malformed(to: str, message_id: str) -> bytes:
    """A delivery-status report whose status part says nothing readable."""
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: {to}\r\nSubject: Undelivered Mail\r\n"
        f"Message-ID: <{message_id}@mx.example.net>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "n'importe quoi, sans champ\r\n"
        "--b--\r\n"
    ).encode()


def _append(dovecot: Dovecot, user: str, *messages: bytes) -> None:
    with dovecot.client(user) as conn:
        for raw in messages:
            typ, _ = conn.append("INBOX", None, None, raw)
            assert typ == "OK"


def _count(dovecot: Dovecot, user: str, folder: str, criteria: str = "ALL") -> int:
    with dovecot.client(user) as conn:
        typ, _ = conn.select(f'"{folder}"', readonly=True)
        if typ != "OK":
            return 0
        _, data = conn.uid("SEARCH", criteria)
        return len(data[0].split())


@pytest.fixture
def deliveries(db_session: Session) -> list[Delivery]:
    rows = [DeliveryFactory() for _ in range(4)]
    db_session.commit()
    return rows


def test_modified_utf7_folder_names() -> None:
    assert _utf7("Traités") == "Trait&AOk-s"
    assert _utf7("Malformés") == "Malform&AOk-s"
    assert _utf7("A&B") == "A&-B"
    assert _utf7("INBOX") == "INBOX"


def test_reports_are_applied_filed_and_not_read_twice(
    app: Flask, dovecot: Dovecot, user: str, deliveries: list[Delivery], db_session: Session
) -> None:
    hard, complained, soft, replied = deliveries
    auto_reply = (
        f"From: elu@lens.example.fr\r\nTo: {_address(replied)}\r\nAuto-Submitted: auto-replied\r\n"
        "Message-ID: <absent-1@lens.example.fr>\r\nSubject: Absent\r\n\r\nJe suis absent.\r\n"
    ).encode()
    _append(
        dovecot,
        user,
        _dsn(_address(hard), "failed", "5.1.1", "dsn-1"),
        _arf(complained, "arf-1"),
        _dsn(_address(soft), "delayed", "4.2.2", "dsn-2"),
        auto_reply,
    )
    config = _config(app, dovecot.settings(user))

    assert read_mailbox(db_session, config) == RunResult(processed=4)

    db_session.expire_all()
    assert db_session.get(Delivery, hard.id).status is DeliveryStatus.BOUNCED  # type: ignore[union-attr]
    statuses = {s.id: s.status for s in db_session.scalars(select(Subscriber))}
    assert statuses[hard.subscriber_id] is SubscriberStatus.BOUNCED  # type: ignore[index]
    assert statuses[complained.subscriber_id] is SubscriberStatus.COMPLAINED  # type: ignore[index]
    assert statuses[soft.subscriber_id] is SubscriberStatus.ACTIVE  # type: ignore[index]
    assert db_session.get(Subscriber, soft.subscriber_id).attributes["soft_bounces"] == 1  # type: ignore[arg-type,union-attr]
    reasons = sorted(r.value for r in db_session.scalars(select(Suppression.reason)))
    assert reasons == ["complaint", "hard_bounce"]
    events = {(e.kind, e.issue_id, e.delivery_id) for e in db_session.scalars(select(Event))}
    assert events == {
        (EventKind.BOUNCE, hard.issue_id, hard.id),
        (EventKind.COMPLAINT, complained.issue_id, complained.id),
    }
    kinds = sorted(r.kind.value for r in db_session.scalars(select(InboundReport)))
    assert kinds == ["complaint", "hard", "ignore", "soft"]
    assert {r.source for r in db_session.scalars(select(InboundReport))} == {"imap"}
    # The remote server quoted the address: only its domain is kept.
    detail = db_session.scalars(
        select(InboundReport.detail).where(InboundReport.kind == ReportKind.HARD)
    ).one()
    assert detail is not None
    assert "elu@" not in detail
    assert "…@lens.example.fr" in detail

    assert _count(dovecot, user, "INBOX") == 0
    assert _count(dovecot, user, DONE) == 4
    assert _count(dovecot, user, DONE, "SEEN") == 4

    # Next tick: nothing left to read, nothing applied again.
    assert read_mailbox(db_session, config) == RunResult()
    assert db_session.scalar(select(func.count()).select_from(Event)) == 2
    assert db_session.scalar(select(func.count()).select_from(InboundReport)) == 4
    state = db_session.get(MailboxState, MAILBOX)
    assert state is not None
    assert state.last_error is None
    assert state.lease_until is None
    assert state.last_success_at is not None


def test_a_copy_of_a_report_is_not_applied_twice(
    app: Flask, dovecot: Dovecot, user: str, deliveries: list[Delivery], db_session: Session
) -> None:
    """A message read again (a crash before it was moved, a server duplicate)."""
    soft = deliveries[0]
    once = _dsn(_address(soft), "delayed", "4.2.2", "same")
    _append(dovecot, user, once, once)
    assert read_mailbox(db_session, _config(app, dovecot.settings(user))).processed == 2
    db_session.expire_all()
    assert db_session.get(Subscriber, soft.subscriber_id).attributes["soft_bounces"] == 1  # type: ignore[arg-type,union-attr]
    assert db_session.scalar(select(func.count()).select_from(InboundReport)) == 1

    # Negative control: two different reports do count twice.
    _append(dovecot, user, _dsn(_address(soft), "delayed", "4.2.2", "another"))
    read_mailbox(db_session, _config(app, dovecot.settings(user)))
    db_session.expire_all()
    assert db_session.get(Subscriber, soft.subscriber_id).attributes["soft_bounces"] == 2  # type: ignore[arg-type,union-attr]


def test_two_reports_of_one_bounce_count_one_event(
    app: Flask, dovecot: Dovecot, user: str, deliveries: list[Delivery], db_session: Session
) -> None:
    hard = deliveries[0]
    _append(
        dovecot,
        user,
        _dsn(_address(hard), "failed", "5.1.1", "mx1"),
        _dsn(_address(hard), "failed", "5.1.1", "mx2"),
    )
    read_mailbox(db_session, _config(app, dovecot.settings(user)))
    assert db_session.scalar(select(func.count()).select_from(InboundReport)) == 2
    assert db_session.scalars(select(Event.kind)).all() == [EventKind.BOUNCE]


def test_a_malformed_report_is_set_aside_and_the_batch_goes_on(
    app: Flask,
    dovecot: Dovecot,
    user: str,
    deliveries: list[Delivery],
    db_session: Session,
    *,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = deliveries[0], deliveries[1]
    _append(
        dovecot,
        user,
        _dsn(_address(first), "failed", "5.1.1", "ok-1"),
        _malformed(_address(first), "bad-1"),
        _dsn(_address(second), "failed", "5.2.1", "ok-2"),
    )
    with caplog.at_level(logging.WARNING):
        result = read_mailbox(db_session, _config(app, dovecot.settings(user)), batch=2)
    assert result == RunResult(processed=2, set_aside=1)

    db_session.expire_all()
    for delivery in (first, second):
        assert db_session.get(Delivery, delivery.id).status is DeliveryStatus.BOUNCED  # type: ignore[union-attr]
    malformed = db_session.scalars(
        select(InboundReport).where(InboundReport.kind == ReportKind.MALFORMED)
    ).one()
    assert malformed.detail == "champ Action absent ou illisible"
    assert malformed.delivery_id == first.id  # it did name its delivery
    entry = db_session.scalars(
        select(AuditEntry).where(AuditEntry.action == "bounce.malformed")
    ).one()
    assert entry.target_id == malformed.id
    assert entry.details["message_id"] == "<bad-1@mx.example.net>"
    warnings = [r for r in caplog.records if "Malformed bounce report" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].exc_info is None

    assert _count(dovecot, user, "INBOX") == 0
    assert _count(dovecot, user, ASIDE) == 1
    assert _count(dovecot, user, DONE) == 2

    # Set aside for good: the next run neither reads nor logs it again.
    caplog.clear()
    assert read_mailbox(db_session, _config(app, dovecot.settings(user))) == RunResult()
    assert not [r for r in caplog.records if "Malformed" in r.getMessage()]


def test_a_wrong_password_gives_a_clear_status(
    app: Flask,
    dovecot: Dovecot,
    user: str,
    deliveries: list[Delivery],
    db_session: Session,
    *,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _append(dovecot, user, _dsn(_address(deliveries[0]), "failed", "5.1.1", "wait"))
    with caplog.at_level(logging.INFO, logger="service.delivery.imap"):
        result = read_mailbox(db_session, _config(app, dovecot.settings(user, "faux")))
    assert result.error is not None
    assert result.error.kind == "auth"
    records = [r for r in caplog.records if r.name == "service.delivery.imap"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is None
    assert f"{user}@127.0.0.1" in records[0].getMessage()
    state = db_session.get(MailboxState, MAILBOX)
    assert state is not None
    assert state.last_error_kind == "auth"
    assert state.last_error is not None
    assert user in state.last_error
    assert state.lease_until is None  # released: the next tick tries again
    assert _count(dovecot, user, "INBOX") == 1  # untouched

    # Negative control: with the right password the same mailbox is read, the error cleared.
    assert read_mailbox(db_session, _config(app, dovecot.settings(user))).processed == 1
    db_session.expire_all()
    state = db_session.get(MailboxState, MAILBOX)
    assert state is not None
    assert state.last_error_kind is None


def test_tls_and_connection_failures(
    app: Flask, dovecot: Dovecot, user: str, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def kind(settings: ImapSettings) -> str | None:
        error = read_mailbox(db_session, _config(app, settings)).error
        return error.kind if error else None

    # The server's certificate is not trusted by this machine.
    assert kind(dovecot.settings(user, tls="implicit")) == "tls"
    assert kind(dovecot.settings(user, tls="starttls")) == "tls"
    # TLS spoken to a plain-text port.
    assert kind(replace(dovecot.settings(user, tls="implicit"), port=dovecot.port)) == "tls"
    # Nobody listening.
    assert kind(replace(dovecot.settings(user), port=free_port())) == "connection"
    state = db_session.get(MailboxState, MAILBOX)
    assert state is not None
    assert "127.0.0.1" in (state.last_error or "")

    # Negative control: once its certificate is trusted, both TLS modes read the mailbox.
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.ca_file))
    assert kind(dovecot.settings(user, tls="implicit")) is None
    assert kind(dovecot.settings(user, tls="starttls")) is None


def test_a_held_lease_skips_the_tick(
    app: Flask, dovecot: Dovecot, user: str, deliveries: list[Delivery], db_session: Session
) -> None:
    """Two beat ticks overlapping: the second one reads nothing."""
    _append(dovecot, user, _dsn(_address(deliveries[0]), "failed", "5.1.1", "lease"))
    db_session.add(MailboxState(name=MAILBOX, lease_until=utcnow() + LEASE))
    db_session.commit()
    config = _config(app, dovecot.settings(user))
    assert read_mailbox(db_session, config) == RunResult(skipped="busy")
    assert _count(dovecot, user, "INBOX") == 1

    # Negative control: a lease left by a reader that died has expired: the tick runs.
    state = db_session.get(MailboxState, MAILBOX)
    assert state is not None
    state.lease_until = utcnow() - LEASE
    db_session.commit()
    assert read_mailbox(db_session, config).processed == 1


def test_runs_are_bounded(
    app: Flask, dovecot: Dovecot, user: str, deliveries: list[Delivery], db_session: Session
) -> None:
    _append(
        dovecot,
        user,
        *(_dsn(_address(deliveries[0]), "delayed", "4.2.2", f"n{i}") for i in range(5)),
    )
    config = _config(app, dovecot.settings(user))
    assert read_mailbox(db_session, config, batch=2, limit=3).processed == 3
    assert _count(dovecot, user, "INBOX") == 2
    assert read_mailbox(db_session, config, batch=2, limit=3).processed == 2
    assert _count(dovecot, user, DONE) == 5


def test_without_a_host_the_reader_does_nothing(app: Flask, db_session: Session) -> None:
    assert read_mailbox(db_session, _config(app, None)) == RunResult(skipped="disabled")
    assert db_session.get(MailboxState, MAILBOX) is None


def test_imap_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in ("HOST", "PORT", "USER", "PASSWORD", "TLS", "FOLDER"):
        monkeypatch.delenv(f"BOUNCE_IMAP_{name}", raising=False)
    assert load_config(instance_path=tmp_path, secret_key="x").bounce_imap is None
    monkeypatch.setenv("BOUNCE_IMAP_HOST", "imap.aula.example.org")
    monkeypatch.setenv("BOUNCE_IMAP_USER", "retours")
    monkeypatch.setenv("BOUNCE_IMAP_PASSWORD", "secret-imap")
    monkeypatch.setenv("BOUNCE_IMAP_PORT", "")  # docker compose's unset variable
    settings = load_config(instance_path=tmp_path, secret_key="x").bounce_imap
    assert settings == ImapSettings("imap.aula.example.org", 993, "retours", "secret-imap")
    assert "secret-imap" not in repr(settings)
    monkeypatch.setenv("BOUNCE_IMAP_TLS", "STARTTLS")
    monkeypatch.setenv("BOUNCE_IMAP_FOLDER", "Retours")
    settings = load_config(instance_path=tmp_path, secret_key="x").bounce_imap
    assert settings is not None
    assert (settings.port, settings.tls, settings.folder) == (143, "starttls", "Retours")
    monkeypatch.setenv("BOUNCE_IMAP_TLS", "ssl")
    with pytest.raises(ConfigError, match="BOUNCE_IMAP_TLS"):
        load_config(instance_path=tmp_path, secret_key="x")


def test_the_beat_reads_the_mailbox_every_minute(app: Flask) -> None:
    import workers.tasks  # noqa: F401, PLC0415 - registers the tasks on the app's Celery

    celery = app.extensions["celery"]
    entry = celery.conf.beat_schedule["bounce_mailbox"]
    assert entry["schedule"] == 60.0
    assert entry["task"] in celery.tasks


def test_an_unknown_folder_is_reported(
    app: Flask, dovecot: Dovecot, user: str, db_session: Session
) -> None:
    settings = replace(dovecot.settings(user), folder="Inexistant")
    error = read_mailbox(db_session, _config(app, settings)).error
    assert error is not None
    assert error.kind == "folder"
    assert "Inexistant" in str(error)


def test_imaplib_is_the_client(dovecot: Dovecot, user: str) -> None:
    """The fixture's server speaks IMAP4rev1 with MOVE once logged in (what the reader uses)."""
    with dovecot.client(user) as conn:
        typ, data = conn.capability()
        assert typ == "OK"
        assert b"MOVE" in data[0]
    with pytest.raises(imaplib.IMAP4.error), dovecot.client(user, "faux"):
        pass


def test_the_webhook_records_its_reports_too(
    app: Flask, client: FlaskClient, deliveries: list[Delivery], db_session: Session
) -> None:
    app.extensions["lettrine_config"] = replace(
        app.extensions["lettrine_config"], bounce_webhook_token="jeton"
    )

    def post(raw: bytes) -> dict[str, object]:
        response = client.post(
            "/webhooks/bounces", data=raw, headers={"Authorization": "Bearer jeton"}
        )
        assert response.status_code == 202
        return response.get_json()  # type: ignore[no-any-return]

    assert post(_malformed(_address(deliveries[0]), "hook-bad"))["kind"] == "malformed"
    hard = _dsn(_address(deliveries[1]), "failed", "5.1.1", "hook-1")
    assert post(hard)["kind"] == "hard"
    assert post(hard)["kind"] == "hard"  # the provider retried: recognised, not applied again
    reports = db_session.scalars(select(InboundReport).order_by(InboundReport.id)).all()
    assert [(r.source, r.kind) for r in reports] == [
        ("webhook", ReportKind.MALFORMED),
        ("webhook", ReportKind.HARD),
    ]
    assert db_session.scalars(select(AuditEntry.action)).all().count("bounce.malformed") == 1
    assert db_session.scalar(select(func.count()).select_from(Event)) == 1


def test_the_page_shows_reports_and_the_reader_status(
    app: Flask,
    client: FlaskClient,
    dovecot: Dovecot,
    user: str,
    deliveries: list[Delivery],
    *,
    db_session: Session,
) -> None:
    UserFactory(email="pub@agence.example.org", role=Role.PUBLISHER)
    login(client, "pub@agence.example.org")
    page = client.get("/retours/").get_data(as_text=True)
    assert "Retours de messagerie" in page
    assert 'data-mailbox="disabled"' in page
    assert "Aucun retour reçu" in page

    settings = dovecot.settings(user)
    app.extensions["lettrine_config"] = _config(app, settings)
    read_mailbox(db_session, _config(app, replace(settings, password="faux")))
    page = client.get("/retours/").get_data(as_text=True)
    assert 'data-error-kind="auth"' in page
    assert "Identifiants refusés" in page

    hard = deliveries[0]
    _append(
        dovecot,
        user,
        _dsn(_address(hard), "failed", "5.1.1", "page-1"),
        _malformed("nobody@example.org", "page-2"),
    )
    read_mailbox(db_session, _config(app, settings))
    page = client.get("/retours/").get_data(as_text=True)
    assert 'data-mailbox="ok"' in page
    assert "1 retour(s) traité(s), 1 mis de côté" in page
    row = page[page.index('data-kind="hard"') :].split("</tr>")[0]
    assert "Rejet définitif" in row
    assert "5.1.1" in row
    issue = db_session.get(Issue, hard.issue_id)
    subscriber = db_session.get(Subscriber, hard.subscriber_id)
    assert issue is not None
    assert subscriber is not None
    assert f"/numeros/{issue.id}" in row
    assert subscriber.email in row
    malformed = page[page.index('data-kind="malformed"') :].split("</tr>")[0]
    assert "Malformé" in malformed
    assert "envoi non reconnu" in malformed
    # Who else may open it: tests/test_security.py walks every route for every role.


@pytest.mark.slow
@pytest.mark.postgres_only
def test_a_worker_reads_the_mailbox_under_overlapping_ticks(
    engine: Engine, database_url: str, tmp_path: Path, dovecot: Dovecot, user: str
) -> None:
    """The Celery task for real: four ticks at once on two worker processes, each
    report applied once, every message filed."""
    count = 20
    with OrmSession(engine) as session:
        issue = IssueFactory.build()
        session.add(issue)
        session.flush()
        rows = [
            Delivery(
                issue_id=issue.id,
                subscriber_id=_subscriber(session, n).id,
                status=DeliveryStatus.SENT,
            )
            for n in range(count)
        ]
        session.add_all(rows)
        session.commit()
        ids = [row.id for row in rows]
    signer = TokenSigner(SECRET)
    _append(
        dovecot,
        user,
        *(
            _dsn(bounce_address(signer, delivery_id, DOMAIN), "failed", "5.1.1", f"w{n}")
            for n, delivery_id in enumerate(ids)
        ),
        _malformed("nobody@example.org", "w-bad"),
    )
    env = worker_env(
        tmp_path / "instance",
        database_url,
        REDIS_URL=TEST_REDIS_URL,
        BOUNCE_IMAP_HOST="127.0.0.1",
        BOUNCE_IMAP_PORT=str(dovecot.port),
        BOUNCE_IMAP_USER=user,
        BOUNCE_IMAP_PASSWORD=PASSWORD,
        BOUNCE_IMAP_TLS="none",
    )
    log = tmp_path / "worker.log"
    worker = start_worker(env, log, concurrency=2)
    app = create_app(
        make_config(
            tmp_path / "app", database_url, broker_url=TEST_REDIS_URL, redis_url=TEST_REDIS_URL
        )
    )
    try:
        for _ in range(4):
            app.extensions["celery"].send_task("lettrine.delivery.read_bounce_mailbox")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                pytest.fail(f"worker died:\n{log.read_text()[-3000:]}")
            with OrmSession(engine) as check:
                reports = check.scalar(select(func.count()).select_from(InboundReport))
                state = check.get(MailboxState, MAILBOX)
                idle = state is not None and state.lease_until is None
            if reports == count + 1 and idle and _count(dovecot, user, "INBOX") == 0:
                break
            time.sleep(0.2)  # polling the ledger and the mailbox: they are the events awaited
        else:
            pytest.fail(f"mailbox not drained:\n{log.read_text()[-3000:]}")
        with OrmSession(engine) as check:
            events = check.execute(select(Event.kind, Event.delivery_id)).all()
            assert sorted(d for _k, d in events) == sorted(ids)
            assert {k for k, _d in events} == {EventKind.BOUNCE}
            assert check.scalar(select(func.count()).select_from(Suppression)) == count
            statuses = set(check.scalars(select(Delivery.status)))
            assert statuses == {DeliveryStatus.BOUNCED}
            state = check.get(MailboxState, MAILBOX)
            assert state is not None
            assert state.last_error is None
        assert _count(dovecot, user, DONE) == count
        assert _count(dovecot, user, ASIDE) == 1
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        app.extensions["engine"].dispose()
        truncate_all(engine)


def _subscriber(session: OrmSession, n: int) -> Subscriber:
    subscriber = Subscriber(email=f"elu{n}@ternois.example.fr", status=SubscriberStatus.ACTIVE)
    session.add(subscriber)
    session.flush()
    return subscriber
