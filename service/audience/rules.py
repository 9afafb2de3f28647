"""Rule-based segments: conditions over subscriber fields, evaluated in SQL.

A rule is JSON: ``{"all": [cond, ...]}`` or ``{"any": [cond, ...]}``, nestable;
a condition is ``{"field": "function", "op": "eq", "value": "Élu"}``. Fields are
the subscriber's columns below or ``attributes.<key>`` for imported extras.
The same rule compiles to one WHERE clause on PostgreSQL and SQLite, so the
live count, the send-time snapshot and the list all agree.
"""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, true

from service.audience.models import Subscriber

FIELDS: dict[str, str] = {
    "civility": "Civilité",
    "first_name": "Prénom",
    "last_name": "Nom",
    "organisation": "Organisme",
    "function": "Fonction",
    "commune": "Commune",
    "epci": "EPCI",
    "language": "Langue",
}
OPERATORS: dict[str, str] = {
    "eq": "est",
    "ne": "n'est pas",
    "contains": "contient",
    "starts": "commence par",
    "in": "est l'un de (séparés par des virgules)",
    "empty": "est vide",
    "not_empty": "est renseigné",
}
MAX_DEPTH = 4
MAX_CONDITIONS = 50


class RuleError(ValueError):
    """The rule cannot be used; the message is French."""


def _column(field: str) -> ColumnElement[Any]:
    if field in FIELDS:
        return getattr(Subscriber, field)  # type: ignore[no-any-return]
    if field.startswith("attributes.") and len(field) > len("attributes.") and len(field) < 80:
        value: ColumnElement[Any] = Subscriber.attributes[
            field.removeprefix("attributes.")
        ].as_string()
        return value
    raise RuleError(f"Champ inconnu dans la règle : « {field} ».")


def _condition(cond: Mapping[str, Any]) -> ColumnElement[bool]:
    column = _column(str(cond.get("field", "")))
    op = cond.get("op")
    value = cond.get("value")
    text = "" if value is None else str(value).strip()
    lowered = func.lower(func.coalesce(column, ""))
    if op == "empty":
        return or_(column.is_(None), column == "")
    if op == "not_empty":
        return and_(column.is_not(None), column != "")
    if op not in OPERATORS:
        raise RuleError(f"Opérateur inconnu : « {op} ».")
    if not text:
        raise RuleError(
            f"Indiquez une valeur pour « {FIELDS.get(str(cond.get('field')), cond.get('field'))} »."
        )
    return _compare(lowered, str(op), text.lower())


def _compare(lowered: ColumnElement[Any], op: str, text: str) -> ColumnElement[bool]:
    comparisons = {
        "eq": lambda: lowered == text,
        "ne": lambda: lowered != text,
        "contains": lambda: lowered.contains(text, autoescape=True),
        "starts": lambda: lowered.startswith(text, autoescape=True),
        "in": lambda: lowered.in_([v.strip() for v in text.split(",") if v.strip()]),
    }
    return comparisons[op]()  # type: ignore[no-untyped-call]


def compile_rule(rule: Mapping[str, Any] | None, depth: int = 0) -> ColumnElement[bool]:
    """The WHERE clause of ``rule`` over ``Subscriber`` (raises RuleError)."""
    if not rule:
        raise RuleError("La règle est vide : ajoutez au moins une condition.")
    if depth > MAX_DEPTH:
        raise RuleError("La règle est trop imbriquée.")
    if "field" in rule:
        return _condition(rule)
    mode = "all" if "all" in rule else "any" if "any" in rule else None
    if mode is None:
        raise RuleError("Règle illisible : « all » ou « any » attendu.")
    items = rule[mode]
    if not isinstance(items, list) or not items:
        raise RuleError("La règle est vide : ajoutez au moins une condition.")
    if len(items) > MAX_CONDITIONS:
        raise RuleError(f"{MAX_CONDITIONS} conditions au plus.")
    clauses = [compile_rule(item, depth + 1) for item in items]
    return and_(true(), *clauses) if mode == "all" else or_(false(), *clauses)


def negate(rule: Mapping[str, Any]) -> ColumnElement[bool]:
    return not_(compile_rule(rule))
