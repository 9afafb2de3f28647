"""Back office: subscribers (list, detail, GDPR) and segments (static or by rule)."""

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import ColumnElement, func, select

from service.accounts.models import Role, User
from service.accounts.permissions import roles_required
from service.audience import gdpr, segments
from service.audience.models import (
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
)
from service.audience.rules import FIELDS, OPERATORS, RuleError
from service.audience.search import FILTERS, search_clauses
from service.audit.services import history, record
from service.db import Session
from service.delivery.models import Delivery
from service.issues.models import Issue
from service.labels import delivery_status_label, event_kind_label
from service.tracking.models import Event

bp = Blueprint("audience", __name__, url_prefix="/abonnes")

SUBSCRIBER_LABELS = {
    SubscriberStatus.PENDING: _l("En attente de confirmation"),
    SubscriberStatus.ACTIVE: _l("Actif"),
    SubscriberStatus.UNSUBSCRIBED: _l("Désinscrit"),
    SubscriberStatus.BOUNCED: _l("Adresse en erreur"),
    SubscriberStatus.COMPLAINED: _l("Plainte"),
}
MEMBERSHIP_LABELS = {
    MembershipStatus.PENDING: _l("en attente de confirmation"),
    MembershipStatus.ACTIVE: _l("actif"),
    MembershipStatus.UNSUBSCRIBED: _l("désinscrit"),
}


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "subscriber_status_label": lambda s: SUBSCRIBER_LABELS[SubscriberStatus(s)],
        "membership_status_label": lambda s: MEMBERSHIP_LABELS[MembershipStatus(s)],
        "delivery_label": delivery_status_label,
        "event_label": event_kind_label,
    }


# Personal data: the people who build the audience. Analysts read statistics instead.
STAFF = (Role.ADMIN, Role.PUBLISHER, Role.EDITOR)
PAGE = 50


def _user() -> User:
    user: User = current_user._get_current_object()
    return user


def _filters() -> tuple[list[ColumnElement[bool]], dict[str, str]]:
    args = {k: (request.args.get(k) or "").strip() for k in FILTERS}
    return search_clauses(Session(), args), args


@bp.route("/")
@roles_required(*STAFF)
def index() -> ResponseReturnValue:
    clauses, args = _filters()
    total = Session.scalar(select(func.count()).select_from(Subscriber).where(*clauses)) or 0
    # Keyset paging (newest first): as fast on page 2,000 as on page 1.
    after = request.args.get("apres", type=int)
    statement = select(Subscriber).where(*clauses).order_by(Subscriber.id.desc()).limit(PAGE + 1)
    if after:
        statement = statement.where(Subscriber.id < after)
    rows = list(Session.scalars(statement))
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    communes = list(
        Session.scalars(
            select(Subscriber.commune)
            .distinct()
            .where(Subscriber.commune.is_not(None))
            .order_by(Subscriber.commune)
        )
    )
    epcis = list(
        Session.scalars(
            select(Subscriber.epci)
            .distinct()
            .where(Subscriber.epci.is_not(None))
            .order_by(Subscriber.epci)
        )
    )
    return render_template(
        "audience/index.html",
        subscribers=rows,
        total=total,
        next_after=rows[-1].id if more and rows else None,
        args=args,
        segments=list(Session.scalars(select(Segment).order_by(Segment.name))),
        statuses=list(SubscriberStatus),
        communes=communes,
        epcis=epcis,
    )


def _subscriber(subscriber_id: int) -> Subscriber:
    subscriber = Session.get(Subscriber, subscriber_id)
    if subscriber is None:
        abort(404)
    return subscriber


@bp.route("/<int:subscriber_id>")
@roles_required(*STAFF)
def detail(subscriber_id: int) -> ResponseReturnValue:
    subscriber = _subscriber(subscriber_id)
    deliveries = Session.execute(
        select(Delivery, Issue)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.id.desc())
        .limit(50)
    ).all()
    events = list(
        Session.scalars(
            select(Event)
            .where(Event.delivery_id.in_([d.id for d, _i in deliveries] or [0]))
            .order_by(Event.occurred_at.desc())
            .limit(100)
        )
    )
    return render_template(
        "audience/detail.html",
        subscriber=subscriber,
        memberships=list(subscriber.memberships),
        deliveries=deliveries,
        events=events,
        history=history(Session(), "subscriber", subscriber.id),
        form=FlaskForm(),
    )


@bp.route("/<int:subscriber_id>/donnees.json")
@roles_required(Role.ADMIN)
def export_json(subscriber_id: int) -> ResponseReturnValue:
    subscriber = _subscriber(subscriber_id)
    data = gdpr.export_subscriber(Session(), subscriber)
    record(Session(), _user().id, "subscriber.exported", "subscriber", subscriber.id)
    Session.commit()
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="abonne-{subscriber_id}.json"'},
    )


@bp.route("/<int:subscriber_id>/effacer", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def erase(subscriber_id: int) -> ResponseReturnValue:
    subscriber = _subscriber(subscriber_id)
    form = FlaskForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("audience/erase.html", subscriber=subscriber, form=form)
    gdpr.erase_subscriber(
        Session(), current_app.extensions["lettrine_config"].secret_key, subscriber, _user()
    )
    flash(
        _("Les données de la personne ont été effacées ; son adresse ne recevra plus rien."),
        "success",
    )
    return redirect(url_for("audience.index"))


# --- Segments -----------------------------------------------------------------------


def _rule_from_form() -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Rows of (field, op, value) posted by the rule builder; blank rows ignored."""
    rows = []
    for index in range(segments_max_rows()):
        field = request.form.get(f"cond-{index}-field", "")
        op = request.form.get(f"cond-{index}-op", "")
        value = request.form.get(f"cond-{index}-value", "")
        if field or value:
            rows.append({"field": field, "op": op, "value": value})
    mode = "any" if request.form.get("mode") == "any" else "all"
    return {mode: rows}, rows


def segments_max_rows() -> int:
    return 30


@bp.route("/segments/")
@roles_required(*STAFF)
def segment_list() -> ResponseReturnValue:
    items = [
        (s, segments.count_members(Session(), s))
        for s in Session.scalars(select(Segment).order_by(Segment.name))
    ]
    return render_template("audience/segments.html", items=items)


@bp.route("/segments/nouveau", methods=["GET", "POST"])
@roles_required(Role.ADMIN, Role.PUBLISHER)
def segment_new() -> ResponseReturnValue:
    return _segment_editor(None)


@bp.route("/segments/<int:segment_id>", methods=["GET", "POST"])
@roles_required(Role.ADMIN, Role.PUBLISHER)
def segment_edit(segment_id: int) -> ResponseReturnValue:
    segment = Session.get(Segment, segment_id)
    if segment is None:
        abort(404)
    return _segment_editor(segment)


def _rows_of(rule: dict[str, Any] | None) -> tuple[str, list[dict[str, str]]]:
    if not rule:
        return "all", []
    mode = "any" if "any" in rule else "all"
    return mode, [
        {
            "field": str(c.get("field", "")),
            "op": str(c.get("op", "")),
            "value": str(c.get("value", "")),
        }
        for c in rule.get(mode, [])
        if "field" in c
    ]


def _segment_editor(segment: Segment | None) -> ResponseReturnValue:
    form = FlaskForm()
    if request.method == "POST" and form.validate_on_submit():
        posted, rows = _rule_from_form()
        rule: dict[str, Any] | None = posted
        kind = SegmentKind.RULE if request.form.get("kind") == "rule" else SegmentKind.STATIC
        values: dict[str, Any] = {
            "name": request.form.get("name", ""),
            "description": request.form.get("description", ""),
            "is_public": bool(request.form.get("is_public")),
            "double_opt_in": bool(request.form.get("double_opt_in")),
            "kind": kind,
        }
        if request.form.get("action") != "add-row":
            try:
                saved = segments.save_segment(
                    Session(), _user(), segment=segment, rule=rule, **values
                )
            except segments.SegmentError as error:
                Session.rollback()
                flash(str(error), "error")
                return _segment_page(segment, values, rule, rows, status=400)
            flash(_("Segment enregistré."), "success")
            return redirect(url_for("audience.segment_edit", segment_id=saved.id))
        rows.append({"field": "", "op": "eq", "value": ""})
        return _segment_page(segment, values, rule, rows)
    if segment is None:
        values = {
            "name": "",
            "description": "",
            "is_public": False,
            "double_opt_in": True,
            "kind": SegmentKind.STATIC,
        }
        rule, rows = None, []
    else:
        values = {
            "name": segment.name,
            "description": segment.description,
            "is_public": segment.is_public,
            "double_opt_in": segment.double_opt_in,
            "kind": segment.kind,
        }
        rule = segment.rule
        rows = _rows_of(segment.rule)[1]
    if not rows:
        rows = [{"field": "function", "op": "eq", "value": ""}]
    return _segment_page(segment, values, rule, rows)


def _segment_page(
    segment: Segment | None,
    values: dict[str, Any],
    rule: dict[str, Any] | None,
    rows: list[dict[str, str]],
    status: int = 200,
) -> ResponseReturnValue:
    mode = "any" if rule and "any" in rule else "all"
    count = (
        segments.count_members(Session(), segment)
        if segment is not None and request.method == "GET"
        else None
    )
    return render_template(
        "audience/segment_form.html",
        segment=segment,
        values=values,
        rows=rows,
        mode=mode,
        fields=FIELDS,
        operators=OPERATORS,
        form=FlaskForm(),
        count=count,
    ), status


@bp.route("/segments/compter", methods=["POST"])
@roles_required(Role.ADMIN, Role.PUBLISHER)
def segment_count() -> ResponseReturnValue:
    """The live count shown while a rule is edited (an htmx fragment)."""
    rule, _rows = _rule_from_form()
    try:
        count = segments.count_rule(Session(), rule)
    except RuleError as error:
        return render_template("audience/_count.html", error=str(error), count=None)
    return render_template("audience/_count.html", error=None, count=count)
