"""The audit trail reads in French: every action recorded on an issue has a phrase."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from service.audit.labels import AUDIT_LABELS, actor_name, audit_label

SERVICE = Path(__file__).parents[2] / "service"


def _constants(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):  # "issue.paused" if paused else "issue.resumed"
        yield from _constants(node.body)
        yield from _constants(node.orelse)


def recorded_on_issues() -> set[str]:
    """Actions passed as literals to ``record(session, actor, action, "issue", ...)``."""
    found: set[str] = set()
    for path in SERVICE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "record"
                and len(node.args) >= 4
            ):
                continue
            target = node.args[3]
            if isinstance(target, ast.Constant) and target.value == "issue":
                found.update(_constants(node.args[2]))
    return found


def test_every_action_recorded_on_an_issue_has_a_label() -> None:
    actions = recorded_on_issues()
    # The scan itself works: it sees the sending actions the trial found raw.
    assert {
        "issue.sending",
        "issue.sent",
        "issue.paused",
        "issue.resumed",
        "issue.cancelled",
        "issue.scheduled",
        "issue.schedule_failed",
        "delivery.unknown_confirmed",
        "delivery.unknown_resent",
    } <= actions
    assert sorted(actions - AUDIT_LABELS.keys()) == []
    assert "bounce.malformed" in AUDIT_LABELS


@pytest.mark.parametrize(
    ("action", "phrase"),
    [
        ("issue.sent", "a terminé l'envoi"),
        ("issue.schedule_failed", "n'a pas pu lancer l'envoi programmé"),
        ("delivery.unknown_resent", "a fait renvoyer les messages au sort inconnu"),
        ("bounce.malformed", "a mis de côté un rapport de retour illisible"),
    ],
)
def test_labels_are_french_phrases(app: Flask, action: str, phrase: str) -> None:
    with app.test_request_context():
        assert audit_label(action).startswith(phrase)


def test_an_unlabelled_action_shows_its_key(app: Flask) -> None:
    with app.test_request_context():
        assert audit_label("something.new") == "something.new"


def test_an_entry_without_actor_is_the_service(app: Flask) -> None:
    with app.test_request_context():
        assert actor_name(None, {1: "Claire Dumont"}) == "Lettrine"
        assert actor_name(1, {1: "Claire Dumont"}) == "Claire Dumont"
        assert actor_name(2, {1: "Claire Dumont"}) == "—"
