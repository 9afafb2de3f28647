"""Issue and block use cases: each commits once; errors are domain exceptions
that the views turn into French messages."""

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from emails import Personaliser, Recipient, build_template, compile_variant
from emails.blocks import get_kind
from service.accounts.models import User
from service.audience.models import Segment
from service.audience.services import InvalidAddressError, normalise_address
from service.audit.services import record
from service.config import Config
from service.db import utcnow
from service.delivery.sender import SendError, make_sender
from service.issues.models import Block, Issue, IssueStatus
from service.issues.rendering import dkim_signer, issue_data, render_settings
from service.issues.states import transition

EDITABLE = {IssueStatus.DRAFT, IssueStatus.IN_REVIEW, IssueStatus.APPROVED}
MAX_TEST_RECIPIENTS = 10


class IssueError(Exception):
    """A use case refused: the message is French and meant for the user."""


class StaleIssueError(IssueError):
    """Someone saved the issue since this form was loaded."""


def validated_block_data(
    kind: str, data: Mapping[str, Any], previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate and clean block data for storage (rich text sanitised here, on save).

    Raises ``emails.blocks.BlockValidationError`` with French field-level errors.
    ``previous`` is the stored data being replaced, if any (agenda SEQUENCE numbers).
    """
    block_kind = get_kind(kind)
    return block_kind.updated(previous, block_kind.validate(data))


def _check_version(issue: Issue, expected: int | None) -> None:
    if expected is None or expected != issue.version:
        raise StaleIssueError(
            "Ce numéro a été modifié par quelqu'un d'autre depuis que vous l'avez ouvert : "
            "vos changements n'ont pas été enregistrés. Ils sont repris ci-dessous ; "
            "vérifiez la version actuelle, puis enregistrez de nouveau."
        )


def _touch_for_edit(session: Session, issue: Issue, user: User) -> None:
    """Every edit goes through the issue row: its version changes, concurrent
    editors are detected, and an approved issue goes back to draft."""
    if issue.status not in EDITABLE:
        raise IssueError("Ce numéro n'est plus modifiable : il est programmé ou déjà envoyé.")
    if issue.status in {IssueStatus.IN_REVIEW, IssueStatus.APPROVED}:
        previous = transition(issue, IssueStatus.DRAFT)
        issue.approved_at = None
        issue.approved_by_id = None
        record(
            session,
            user.id,
            "issue.back_to_draft",
            "issue",
            issue.id,
            {"from": previous.value, "reason": "modification"},
        )
    issue.updated_at = utcnow()


def _segments(session: Session, ids: Sequence[int]) -> list[Segment]:
    return list(session.scalars(select(Segment).where(Segment.id.in_(ids)))) if ids else []


def create_issue(session: Session, newsletter_id: int, title: str, user: User) -> Issue:
    number = (
        session.scalar(select(func.max(Issue.number)).where(Issue.newsletter_id == newsletter_id))
        or 0
    ) + 1
    issue = Issue(
        newsletter_id=newsletter_id,
        number=number,
        title=title.strip(),
        subject=title.strip(),
        created_by_id=user.id,
    )
    session.add(issue)
    session.flush()
    record(session, user.id, "issue.created", "issue", issue.id, {"title": issue.title})
    session.commit()
    return issue


def duplicate_issue(session: Session, source: Issue, user: User) -> Issue:
    number = (
        session.scalar(
            select(func.max(Issue.number)).where(Issue.newsletter_id == source.newsletter_id)
        )
        or 0
    ) + 1
    copy_ = Issue(
        newsletter_id=source.newsletter_id,
        number=number,
        title=f"{source.title} (copie)",
        subject=source.subject,
        preheader=source.preheader,
        created_by_id=user.id,
        segments=list(source.segments),
    )
    for block in source.blocks:
        copy_.blocks.append(
            Block(  # a copy's events are new events: fresh calendar UIDs
                data=get_kind(block.kind).duplicated(block.data),
                position=block.position,
                kind=block.kind,
                segments=list(block.segments),
            )
        )
    session.add(copy_)
    session.flush()
    record(session, user.id, "issue.duplicated", "issue", copy_.id, {"from": source.id})
    session.commit()
    return copy_


def update_settings(
    session: Session,
    issue: Issue,
    user: User,
    *,
    expected_version: int | None,
    title: str,
    subject: str,
    preheader: str,
    segment_ids: Sequence[int],
) -> None:
    _check_version(issue, expected_version)
    _touch_for_edit(session, issue, user)
    issue.title, issue.subject, issue.preheader = title.strip(), subject.strip(), preheader.strip()
    issue.segments = _segments(session, segment_ids)
    record(session, user.id, "issue.settings_saved", "issue", issue.id)
    commit(session)


def save_block(
    session: Session,
    issue: Issue,
    user: User,
    *,
    kind: str,
    data: dict[str, Any],
    segment_ids: Sequence[int],
    expected_version: int | None,
    block: Block | None = None,
) -> Block:
    """Add a block (``block`` None) or replace one's data; ``data`` is already validated."""
    _check_version(issue, expected_version)
    _touch_for_edit(session, issue, user)
    if block is None:
        position = max((b.position for b in issue.blocks), default=-1) + 1
        block = Block(kind=kind, position=position, data=get_kind(kind).updated(None, data))
        issue.blocks.append(block)
        action = "block.added"
    else:
        block.data = get_kind(kind).updated(block.data, data)
        action = "block.saved"
    block.segments = _segments(session, segment_ids)
    session.flush()
    record(session, user.id, action, "issue", issue.id, {"block": block.id, "kind": kind})
    commit(session)
    return block


def move_block(
    session: Session,
    issue: Issue,
    user: User,
    *,
    block_id: int,
    delta: int,
    expected_version: int | None,
) -> None:
    order = [b.id for b in sorted(issue.blocks, key=lambda b: b.position)]
    if block_id not in order:
        raise IssueError("Ce bloc n'appartient pas à ce numéro.")
    index = order.index(block_id)
    target = min(max(index + delta, 0), len(order) - 1)
    order.insert(target, order.pop(index))
    reorder_blocks(session, issue, user, order, expected_version)


def reorder_blocks(
    session: Session,
    issue: Issue,
    user: User,
    ordered_ids: Sequence[int],
    expected_version: int | None,
) -> None:
    _check_version(issue, expected_version)
    by_id = {b.id: b for b in issue.blocks}
    if sorted(ordered_ids) != sorted(by_id):
        raise IssueError("L'ordre reçu ne correspond pas aux blocs du numéro : rechargez la page.")
    _touch_for_edit(session, issue, user)
    for position, block_id in enumerate(ordered_ids):
        by_id[block_id].position = position
    record(session, user.id, "block.reordered", "issue", issue.id, {"order": list(ordered_ids)})
    commit(session)


def delete_block(
    session: Session, issue: Issue, user: User, block: Block, expected_version: int | None
) -> None:
    _check_version(issue, expected_version)
    _touch_for_edit(session, issue, user)
    issue.blocks.remove(block)
    for position, remaining in enumerate(sorted(issue.blocks, key=lambda b: b.position)):
        remaining.position = position
    record(
        session,
        user.id,
        "block.deleted",
        "issue",
        issue.id,
        {"block": block.id, "kind": block.kind},
    )
    commit(session)


def delete_issue(session: Session, issue: Issue, user: User, expected_version: int | None) -> None:
    _check_version(issue, expected_version)
    if issue.status is not IssueStatus.DRAFT:
        raise IssueError("Seul un brouillon peut être supprimé.")
    record(
        session,
        user.id,
        "issue.deleted",
        "issue",
        issue.id,
        {"title": issue.title, "number": issue.number},
    )
    session.delete(issue)
    session.commit()


def submit_for_review(session: Session, issue: Issue, user: User, errors: int) -> None:
    if errors:
        raise IssueError(
            "Le numéro ne peut pas être soumis : corrigez d'abord les erreurs signalées "
            "par les vérifications avant envoi."
        )
    transition(issue, IssueStatus.IN_REVIEW)
    record(session, user.id, "issue.submitted", "issue", issue.id)
    session.commit()


def approve(session: Session, issue: Issue, user: User) -> None:
    transition(issue, IssueStatus.APPROVED)
    issue.approved_at = utcnow()
    issue.approved_by_id = user.id
    record(session, user.id, "issue.approved", "issue", issue.id)
    session.commit()


def send_back(session: Session, issue: Issue, user: User, comment: str) -> None:
    if not comment.strip():
        raise IssueError("Expliquez au rédacteur ce qu'il faut reprendre.")
    transition(issue, IssueStatus.DRAFT)
    record(session, user.id, "issue.sent_back", "issue", issue.id, {"comment": comment.strip()})
    session.commit()


def commit(session: Session) -> None:
    """Commit a use case; a concurrent save caught by the row version becomes a French error."""
    try:
        session.commit()
    except StaleDataError:
        session.rollback()
        raise StaleIssueError(
            "Ce numéro vient d'être modifié par quelqu'un d'autre : vos changements n'ont pas "
            "été enregistrés. Ils sont repris ci-dessous ; vérifiez, puis enregistrez de nouveau."
        ) from None


def parse_test_addresses(raw: str) -> list[str]:
    """Up to ten addresses, separated by commas, semicolons or new lines."""
    candidates = [part.strip() for part in re.split(r"[,;\s]+", raw) if part.strip()]
    if not candidates:
        raise IssueError("Indiquez au moins une adresse.")
    if len(candidates) > MAX_TEST_RECIPIENTS:
        raise IssueError(f"{MAX_TEST_RECIPIENTS} adresses au plus pour un envoi de test.")
    addresses = []
    for candidate in candidates:
        try:
            addresses.append(normalise_address(candidate))
        except InvalidAddressError as error:
            raise IssueError(str(error)) from None
    return list(dict.fromkeys(addresses))


def send_test(
    session: Session,
    issue: Issue,
    user: User,
    config: Config,
    *,
    raw_addresses: str,
    segment_slug: str | None = None,
) -> list[str]:
    """Use case: the real rendering, without tracking, subject prefixed « [TEST] »."""
    addresses = parse_test_addresses(raw_addresses)
    data = issue_data(issue, config=config)
    data = replace(data, subject=f"[TEST] {data.subject}")
    settings = render_settings(config, issue.id)
    variant = compile_variant(data, [segment_slug] if segment_slug else None)
    personaliser = Personaliser(
        data, build_template(data, variant, settings, tracked=False), settings
    )
    signer = dkim_signer(config)
    sender_address = issue.newsletter.sender_email
    # End the read transaction before talking SMTP: in embedded mode the outbox process
    # writes to the same SQLite file meanwhile, and an open reader would block our audit write.
    session.commit()
    with make_sender(config) as sender:
        for address in addresses:
            message = personaliser.render(Recipient(secrets.randbits(40), address))
            if signer is not None:
                message = signer.sign(message)
            try:
                sender.send(sender_address, [address], message)
            except SendError as error:
                raise IssueError(
                    f"Le serveur d'envoi a refusé le message pour {address} : {error}"
                ) from None
    record(session, user.id, "issue.test_sent", "issue", issue.id, {"to": addresses})
    session.commit()
    return addresses
