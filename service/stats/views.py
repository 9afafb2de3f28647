"""Statistics pages: the issue dashboard, its click map, the lists behind its figures,
exports and a printable report; trends across issues."""

import datetime as dt
import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import format_datetime, format_decimal, format_percent, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from emails import RenderError
from emails.blocks import BlockValidationError
from service.accounts.models import Role
from service.accounts.permissions import ALL_STAFF, roles_required
from service.audience.models import Segment
from service.db import Session, utcnow
from service.delivery.models import DeliveryStatus
from service.issues.models import Issue, IssueStatus
from service.issues.views import PREVIEW_POLICY
from service.stats import exports, services
from service.stats.clickmap import click_map

bp = Blueprint("stats", __name__, url_prefix="/statistiques")

# Lists of recipients are personal data: the roles that may see subscribers (analysts
# read figures only, as on the audience pages).
PEOPLE = (Role.ADMIN, Role.PUBLISHER, Role.EDITOR)
PAGE = 50
SHOWN = (IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT, IssueStatus.CANCELLED)
STATUS_LABELS = {
    DeliveryStatus.QUEUED: _l("En attente"),
    DeliveryStatus.LEASED: _l("En cours"),
    DeliveryStatus.SENT: _l("Délivrés"),
    DeliveryStatus.DEFERRED: _l("Différés"),
    DeliveryStatus.FAILED: _l("Échecs"),
    DeliveryStatus.BOUNCED: _l("Rejetés (bounces)"),
    DeliveryStatus.UNKNOWN: _l("Incertains"),
    DeliveryStatus.CANCELLED: _l("Annulés"),
}
LIST_TITLES = {
    "destinataires": _l("Destinataires"),
    "ouverts": _l("Destinataires ayant ouvert (ouverture humaine ou clic)"),
    "cliqueurs": _l("Destinataires ayant cliqué"),
    "lien": _l("Destinataires ayant cliqué sur ce lien"),
    "desinscrits": _l("Destinataires désinscrits depuis ce numéro"),
    "plaintes": _l("Destinataires ayant signalé un indésirable"),
    "statut": _l("Destinataires par statut d'envoi"),
}


def _percent(value: float | None) -> str:
    return "—" if value is None else format_percent(value, "#,##0.0 %")


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"percent": _percent, "delivery_status_label": lambda s: STATUS_LABELS[s]}


def _issue(issue_id: int) -> Issue:
    issue = Session.get(Issue, issue_id)
    if issue is None:
        abort(404)
    return issue


def _can_list(issue: Issue) -> bool:
    return bool(current_user.role in PEOPLE) and issue.newsletter is not None


def _series_json(stats: services.IssueStats) -> str:
    points = stats.series
    return json.dumps(
        {
            "labels": [
                format_datetime(p.start, "EEE d MMM HH'h'" if p.hourly else "EEE d MMM")
                for p in points
            ],
            "datasets": [
                {"label": _("Ouvertures humaines"), "data": [p.human_opens for p in points]},
                {"label": _("Clics humains"), "data": [p.human_clicks for p in points]},
                {"label": _("Ouvertures machines"), "data": [p.machine_opens for p in points]},
            ],
        }
    )


@bp.route("/")
@roles_required(*ALL_STAFF)
def index() -> ResponseReturnValue:
    """Trends across issues and subscriber growth by segment."""
    issues = list(
        Session.scalars(
            select(Issue)
            .where(Issue.status.in_(SHOWN))
            .order_by(Issue.send_started_at.asc().nulls_last(), Issue.id)
            .limit(60)
        )
    )
    rows = services.trends(Session(), issues)
    ends = services.month_ends(12)
    growth = services.segment_growth(
        Session(), Session.scalars(select(Segment).order_by(Segment.name)), ends
    )
    chart = json.dumps(
        {
            "labels": [f"n° {r.stats.issue.number}" for r in rows],
            "datasets": [
                {
                    "label": _("Taux d'ouverture (%)"),
                    "data": [_pct_number(r.stats.open_rate) for r in rows],
                },
                {
                    "label": _("Taux de clic (%)"),
                    "data": [_pct_number(r.stats.click_rate) for r in rows],
                },
            ],
        }
    )
    return render_template(
        "stats/index.html",
        rows=rows,
        growth=growth,
        months=[format_datetime(end, "MMM yyyy") for end in _month_starts(ends)],
        chart=chart,
    )


def _pct_number(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _month_starts(ends: list[dt.datetime]) -> list[dt.datetime]:
    return [end - dt.timedelta(days=1) for end in ends]


@bp.route("/numeros/<int:issue_id>")
@roles_required(*ALL_STAFF)
def issue(issue_id: int) -> ResponseReturnValue:
    issue = _issue(issue_id)
    stats = services.issue_stats(Session(), issue)
    return render_template(
        "stats/issue.html",
        issue=issue,
        stats=stats,
        series=_series_json(stats),
        can_list=_can_list(issue),
        individual=stats.uniques_available,
        statuses=list(DeliveryStatus),
        can_edit=current_user.role in PEOPLE,
    )


@bp.route("/numeros/<int:issue_id>/carte")
@roles_required(*ALL_STAFF)
def clicks_map(issue_id: int) -> ResponseReturnValue:
    """The email with each link's clicks, for the dashboard's sandboxed iframe."""
    issue = _issue(issue_id)
    stats = services.issue_stats(Session(), issue)
    clicks = {row.link.position: (row.clicks, row.unique) for row in stats.links}
    try:
        body = click_map(
            issue,
            current_app.extensions["lettrine_config"],
            clicks,
            lambda count: ngettext(
                "%(clicks)s clic", "%(clicks)s clics", count, clicks=format_decimal(count)
            ),
        )
    except (RenderError, BlockValidationError) as error:
        return Response(str(error), status=422, mimetype="text/plain")
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.route("/numeros/<int:issue_id>/destinataires")
@roles_required(*PEOPLE)
def recipients(issue_id: int) -> ResponseReturnValue:
    """The people behind a figure (a page at a time)."""
    issue = _issue(issue_id)
    what = request.args.get("quoi") or "destinataires"
    if what not in services.LIST_FILTERS:
        abort(404)
    link_id = request.args.get("lien", type=int)
    status = request.args.get("statut") or None
    segment_id = request.args.get("segment", type=int)
    segment = Session.get(Segment, segment_id) if segment_id else None
    try:
        rows = services.recipients(
            Session(),
            issue,
            what,
            link_id=link_id,
            status=status,
            segment=segment,
            after=request.args.get("apres", type=int),
            limit=PAGE + 1,
        )
    except ValueError:
        abort(404)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "apres"}
    return render_template(
        "stats/recipients.html",
        issue=issue,
        rows=rows,
        title=LIST_TITLES[what],
        status=DeliveryStatus(status) if status in set(DeliveryStatus) else None,
        segment=segment,
        next_url=url_for("stats.recipients", issue_id=issue.id, apres=rows[-1][0].id, **args)
        if more
        else None,
    )


@bp.route("/numeros/<int:issue_id>/export.csv")
@roles_required(*ALL_STAFF)
def export_csv(issue_id: int) -> ResponseReturnValue:
    """One table of the dashboard (``?tableau=``) as CSV."""
    issue = _issue(issue_id)
    tables = exports.tables(services.issue_stats(Session(), issue))
    table = request.args.get("tableau") or "synthese"
    if table not in tables:
        abort(404)
    name = f"statistiques-numero-{issue.number}-{table}.csv"
    return Response(
        exports.csv_bytes(tables[table]),
        mimetype=exports.CSV_MIMETYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.route("/numeros/<int:issue_id>/export.xlsx")
@roles_required(*ALL_STAFF)
def export_xlsx(issue_id: int) -> ResponseReturnValue:
    """Every table of the dashboard, one sheet each."""
    issue = _issue(issue_id)
    handle = exports.workbook(exports.tables(services.issue_stats(Session(), issue)))
    return Response(
        stream_with_context(exports.file_chunks(handle)),
        mimetype=exports.XLSX_MIMETYPE,
        headers={
            "Content-Disposition": f'attachment; filename="statistiques-numero-{issue.number}.xlsx"'
        },
    )


@bp.route("/numeros/<int:issue_id>/rapport")
@roles_required(*ALL_STAFF)
def report(issue_id: int) -> ResponseReturnValue:
    """One printable page for elected officials."""
    issue = _issue(issue_id)
    stats = services.issue_stats(Session(), issue)
    # Links nobody clicked are not « the most read »: with few clicks the list is shorter.
    top = sorted((r for r in stats.links if r.clicks), key=lambda r: r.clicks, reverse=True)[:5]
    return render_template("stats/report.html", issue=issue, stats=stats, top=top, now=utcnow())
