"""The issue life cycle, in one place (DESIGN.md §3).

draft → in_review → approved → scheduled → sending → sent, with paused and
cancelled. Every status change goes through ``transition`` so that the rules
and the audit trail cannot drift apart.
"""

from service.issues.models import Issue, IssueStatus

S = IssueStatus

ALLOWED: dict[IssueStatus, frozenset[IssueStatus]] = {
    S.DRAFT: frozenset({S.IN_REVIEW, S.CANCELLED}),
    # Sent back with a comment, or approved.
    S.IN_REVIEW: frozenset({S.DRAFT, S.APPROVED, S.CANCELLED}),
    # Any edit after approval sends the issue back to draft.
    S.APPROVED: frozenset({S.DRAFT, S.SCHEDULED, S.SENDING, S.CANCELLED}),
    S.SCHEDULED: frozenset({S.APPROVED, S.SENDING, S.CANCELLED}),
    S.SENDING: frozenset({S.PAUSED, S.SENT, S.CANCELLED}),
    S.PAUSED: frozenset({S.SENDING, S.CANCELLED}),
    # Only to send again messages whose outcome was unknown, when an operator asks.
    S.SENT: frozenset({S.SENDING}),
    S.CANCELLED: frozenset(),
}


class TransitionError(Exception):
    """The issue cannot move from its current status to the one asked."""

    def __init__(self, issue: Issue, target: IssueStatus) -> None:
        super().__init__(f"issue {issue.id}: {issue.status.value} → {target.value} is not allowed")
        self.current = issue.status
        self.target = target


def can_transition(current: IssueStatus, target: IssueStatus) -> bool:
    return target in ALLOWED[current]


def transition(issue: Issue, target: IssueStatus) -> IssueStatus:
    """Move ``issue`` to ``target`` or raise; returns the previous status. Does not commit."""
    if not can_transition(issue.status, target):
        raise TransitionError(issue, target)
    previous = issue.status
    issue.status = target
    return previous
