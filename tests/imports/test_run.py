"""Dry run and import: report lines, duplicates, people who left, consent, all-or-nothing."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.audience.imports import Outcome
from service.audience.models import (
    ImportStatus,
    Membership,
    MembershipStatus,
    Subscriber,
    SubscriberStatus,
    SuppressionReason,
)
from service.audience.services import suppress
from service.audit.models import AuditEntry
from service.config import Config
from tests.factories import MembershipFactory, SegmentFactory, SubscriberFactory
from tests.imports.conftest import MakeImport, launch, report_lines
from tests.imports.files import csv_bytes

HEAD = ["Adresse e-mail", "Prénom", "Nom", "Commune", "Notes"]


def _csv(*rows: list[str]) -> bytes:
    return csv_bytes(list(rows), headers=HEAD)


def _subscriber(session: Session, email: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).first()


def test_dry_run_reports_every_line_and_writes_nothing(
    db_session: Session, config: Config, make_import: MakeImport
) -> None:
    gone = SubscriberFactory(email="parti@lens.fr", status=SubscriberStatus.UNSUBSCRIBED)
    SubscriberFactory(email="deja@lens.fr", first_name="Ancien")
    suppress(db_session, config.secret_key, "exclu@lens.fr", SuppressionReason.HARD_BOUNCE)
    db_session.commit()
    record = make_import(
        _csv(
            ["Nouveau@Lievin.FR", "Anne", "Martin", "Liévin", ""],
            ["pas-une-adresse", "B", "C", "Lens", ""],
            ["nouveau@lievin.fr", "Anne", "Bis", "Liévin", ""],
            ["exclu@lens.fr", "D", "E", "Lens", ""],
            [gone.email, "F", "G", "Lens", ""],
            ["deja@lens.fr", "Nouveau", "Nom", "Lens", ""],
            ["formule@lens.fr", '=HYPERLINK("http://x")', "H", "Lens", "=1+1"],
        )
    )
    assert record.status == ImportStatus.CHECKED
    assert record.dry_run_counts == {
        Outcome.CREATED: 2,
        Outcome.INVALID: 1,
        Outcome.DUPLICATE: 1,
        Outcome.SUPPRESSED: 1,
        Outcome.UNSUBSCRIBED: 1,
        Outcome.UPDATED: 1,
    }
    lines = report_lines(config, record)
    assert [line[:3] for line in lines] == [
        ["2", "nouveau@lievin.fr", "Nouvel abonné"],
        ["3", "pas-une-adresse", "Adresse invalide"],
        ["4", "nouveau@lievin.fr", "Doublon dans le fichier"],
        ["5", "exclu@lens.fr", "Adresse exclue"],
        ["6", "parti@lens.fr", "Désabonné, non réinscrit"],
        ["7", "deja@lens.fr", "Déjà abonné, mis à jour"],
        ["8", "formule@lens.fr", "Nouvel abonné"],
    ]
    assert lines[1][3] == "Adresse invalide : « pas-une-adresse » (il manque le @)."
    assert "ligne 2" in lines[2][3]
    assert "jamais réinscrite" in lines[3][3]
    assert "gardée comme texte" in lines[6][3]
    # Nothing written.
    assert _subscriber(db_session, "nouveau@lievin.fr") is None
    assert _subscriber(db_session, "deja@lens.fr").first_name == "Ancien"  # type: ignore[union-attr]


def test_import_writes_and_never_resubscribes(
    db_session: Session, config: Config, make_import: MakeImport
) -> None:
    segment = SegmentFactory(double_opt_in=False)
    gone = SubscriberFactory(email="parti@lens.fr", status=SubscriberStatus.UNSUBSCRIBED)
    left_segment = MembershipFactory(
        segment=segment, subscriber__email="reste@lens.fr", status=MembershipStatus.UNSUBSCRIBED
    )
    suppress(db_session, config.secret_key, "exclu@lens.fr", SuppressionReason.UNSUBSCRIBED)
    db_session.commit()
    record = make_import(
        _csv(
            ["nouveau@lievin.fr", "Anne", "Martin", "Liévin", "=1+1"],
            ["exclu@lens.fr", "D", "E", "Lens", ""],
            [gone.email, "F", "G", "Lens", ""],
            ["reste@lens.fr", "Reste", "Là", "Lens", ""],
        ),
        segment_ids=[segment.id],
    )
    record = launch(db_session, config, record)
    assert record.status == ImportStatus.DONE
    assert record.counts == {
        Outcome.CREATED: 1,
        Outcome.SUPPRESSED: 1,
        Outcome.UNSUBSCRIBED: 1,
        Outcome.UPDATED: 1,
    }
    created = _subscriber(db_session, "nouveau@lievin.fr")
    assert created is not None
    assert (created.first_name, created.last_name, created.commune) == ("Anne", "Martin", "Liévin")
    assert created.attributes == {"Notes": "=1+1"}  # kept as text, never evaluated
    assert created.status == SubscriberStatus.ACTIVE  # a segment without double opt-in
    assert [m.status for m in created.memberships] == [MembershipStatus.ACTIVE]
    assert _subscriber(db_session, "exclu@lens.fr") is None
    db_session.refresh(gone)
    assert gone.status == SubscriberStatus.UNSUBSCRIBED
    assert gone.memberships == []
    db_session.refresh(left_segment)
    assert left_segment.status == MembershipStatus.UNSUBSCRIBED  # left this segment: stays out
    actions = set(
        db_session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == record.id))
    )
    assert {"import.uploaded", "import.checked", "import.launched", "import.finished"} <= actions


def test_existing_subscribers_updated_or_skipped(
    db_session: Session, config: Config, make_import: MakeImport
) -> None:
    SubscriberFactory(email="a@lens.fr", first_name="Ancien", commune="Lens", attributes={"x": "1"})
    data = _csv(["a@lens.fr", "Nouveau", "", "Liévin", "note"])
    record = launch(db_session, config, make_import(data, existing="skip"))
    assert record.counts == {Outcome.UNCHANGED: 1}
    subscriber = _subscriber(db_session, "a@lens.fr")
    assert subscriber is not None
    assert (subscriber.first_name, subscriber.commune) == ("Ancien", "Lens")

    record = launch(db_session, config, make_import(data, existing="update"))
    assert record.counts == {Outcome.UPDATED: 1}
    db_session.refresh(subscriber)
    # Filled cells replace, empty ones keep what was there; attributes are merged.
    assert (subscriber.first_name, subscriber.last_name, subscriber.commune) == (
        "Nouveau",
        subscriber.last_name,
        "Liévin",
    )
    assert subscriber.attributes == {"x": "1", "Notes": "note"}


def test_consent_rule_for_double_opt_in_segments(
    db_session: Session, config: Config, make_import: MakeImport
) -> None:
    doi = SegmentFactory(double_opt_in=True)
    plain = SegmentFactory(double_opt_in=False)
    record = launch(
        db_session,
        config,
        make_import(_csv(["sans@lens.fr", "", "", "", ""]), segment_ids=[doi.id, plain.id]),
    )
    subscriber = _subscriber(db_session, "sans@lens.fr")
    assert subscriber is not None
    statuses = {m.segment_id: m.status for m in subscriber.memberships}
    assert statuses == {doi.id: MembershipStatus.PENDING, plain.id: MembershipStatus.ACTIVE}
    assert subscriber.consent_source is None
    assert subscriber.consent_at is None

    only_doi = launch(
        db_session,
        config,
        make_import(_csv(["seul@lens.fr", "", "", "", ""]), segment_ids=[doi.id]),
    )
    assert only_doi.status == ImportStatus.DONE
    alone = _subscriber(db_session, "seul@lens.fr")
    assert alone is not None
    assert alone.status == SubscriberStatus.PENDING
    assert [m.status for m in alone.memberships] == [MembershipStatus.PENDING]

    basis = "Inscrits à l'atelier du 12 mars, case cochée sur le formulaire papier"
    declared = launch(
        db_session,
        config,
        make_import(
            _csv(["avec@lens.fr", "", "", "", ""]), segment_ids=[doi.id], consent_basis=basis
        ),
    )
    with_basis = _subscriber(db_session, "avec@lens.fr")
    assert with_basis is not None
    assert with_basis.status == SubscriberStatus.ACTIVE
    assert [m.status for m in with_basis.memberships] == [MembershipStatus.ACTIVE]
    assert with_basis.consent_source == f"import:{declared.id}"
    assert with_basis.consent_at is not None
    assert declared.options["consent_basis"] == basis
    assert record.id != declared.id


def test_all_or_nothing_imports_nobody_when_a_line_is_invalid(
    db_session: Session, config: Config, make_import: MakeImport
) -> None:
    before = db_session.scalar(select(func.count(Subscriber.id)))
    record = make_import(
        _csv(["bon@lens.fr", "", "", "", ""], ["mauvais", "", "", "", ""]), all_or_nothing=True
    )
    assert record.dry_run_counts == {Outcome.CREATED: 1, Outcome.INVALID: 1}
    record = launch(db_session, config, record)
    assert record.status == ImportStatus.FAILED
    assert "rien n'a été importé" in (record.error or "")
    assert db_session.scalar(select(func.count(Subscriber.id))) == before
    assert [line[2] for line in report_lines(config, record)] == [
        "Nouvel abonné",
        "Adresse invalide",
    ]

    good = launch(
        db_session, config, make_import(_csv(["bon@lens.fr", "", "", "", ""]), all_or_nothing=True)
    )
    assert good.status == ImportStatus.DONE
    assert _subscriber(db_session, "bon@lens.fr") is not None


def test_running_twice_writes_nothing_twice(
    db_session: Session, config: Config, make_import: MakeImport
) -> None:
    segment = SegmentFactory(double_opt_in=False)
    record = launch(
        db_session,
        config,
        make_import(_csv(["un@lens.fr", "", "", "", ""]), segment_ids=[segment.id]),
    )
    # A redelivered task (worker lost after the work) finds the import done: nothing happens.
    from service.audience.imports import run  # noqa: PLC0415

    run(db_session, config, record.id)
    assert db_session.scalar(select(func.count()).select_from(Membership)) == 1
    assert db_session.scalar(select(func.count(Subscriber.id))) == 1


def test_batches_across_many_lines(
    db_session: Session, config: Config, make_import: MakeImport
) -> None:
    rows = [[f"personne{i}@commune.fr", "Prénom", f"Nom{i}", "Lens", ""] for i in range(2500)]
    rows.insert(1500, ["personne3@commune.fr", "", "", "", ""])
    record = launch(db_session, config, make_import(_csv(*rows)))
    assert record.counts == {Outcome.CREATED: 2500, Outcome.DUPLICATE: 1}
    assert record.processed_rows == 2501
    assert db_session.scalar(select(func.count(Subscriber.id))) == 2500
    duplicate = next(line for line in report_lines(config, record) if line[2].startswith("Doublon"))
    assert duplicate[0] == "1502"
    assert "ligne 5" in duplicate[3]
