import pytest

from service.issues.models import Issue, IssueStatus
from service.issues.states import ALLOWED, TransitionError, can_transition, transition

S = IssueStatus


def test_every_status_has_rules() -> None:
    assert set(ALLOWED) == set(IssueStatus)


def test_the_happy_path() -> None:
    issue = Issue(status=S.DRAFT)
    for target in (S.IN_REVIEW, S.APPROVED, S.SCHEDULED, S.SENDING, S.PAUSED, S.SENDING, S.SENT):
        transition(issue, target)
    assert issue.status is S.SENT


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.DRAFT, S.APPROVED),  # no approval without review
        (S.DRAFT, S.SENDING),
        (S.IN_REVIEW, S.SENDING),
        (S.SENT, S.DRAFT),  # sent is final (except to resend unknown outcomes)
        (S.SENT, S.PAUSED),
        (S.CANCELLED, S.DRAFT),  # so is cancelled
        (S.SENDING, S.DRAFT),
        (S.PAUSED, S.SENT),  # finishing needs sending first
    ],
)
def test_forbidden_transitions(current: IssueStatus, target: IssueStatus) -> None:
    issue = Issue(status=current)
    assert not can_transition(current, target)
    with pytest.raises(TransitionError):
        transition(issue, target)
    assert issue.status is current


def test_terminal_statuses() -> None:
    assert [status for status, targets in ALLOWED.items() if not targets] == [S.CANCELLED]
    assert ALLOWED[S.SENT] == {S.SENDING}
