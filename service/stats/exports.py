"""The dashboard's tables as CSV or XLSX, defused like the subscriber exports."""

import tempfile
from dataclasses import dataclass
from typing import IO

from flask_babel import gettext as _
from flask_babel import to_user_timezone
from openpyxl import Workbook

from service.audience.exports import (
    CSV_MIMETYPE,
    XLSX_MIMETYPE,
    csv_chunks,
    defuse,
    file_chunks,
)
from service.labels import link_kind_label
from service.stats.services import IssueStats

__all__ = ["CSV_MIMETYPE", "XLSX_MIMETYPE", "csv_bytes", "file_chunks", "tables", "workbook"]

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[Cell]]


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def tables(stats: IssueStats) -> dict[str, Table]:
    """Every table of the dashboard, keyed by the name used in export URLs."""
    unique = stats.uniques_available
    summary: list[list[Cell]] = [
        [_("Audience"), stats.audience],
        [_("Envoyés"), stats.sent],
        [_("Délivrés"), stats.delivered],
        [_("Différés"), stats.status_count("deferred")],
        [_("Échecs"), stats.status_count("failed")],
        [_("Rejetés (bounces)"), stats.status_count("bounced")],
        [_("Désinscriptions"), stats.unsubscribed],
        [_("Plaintes"), stats.complaints],
        [_("Ouvertures humaines (total)"), stats.human_opens],
        [_("Ouvertures machines (total)"), stats.machine_opens],
        [_("Ouvreurs uniques"), stats.unique_openers],
        [_("Clics humains (total)"), stats.human_clicks],
        [_("Clics machines (total)"), stats.machine_clicks],
        [_("Cliqueurs uniques"), stats.unique_clickers],
        [_("Taux d'ouverture (%)"), _rate(stats.open_rate)],
        [_("Taux de clic (%)"), _rate(stats.click_rate)],
        [_("Clics / ouvertures (%)"), _rate(stats.click_to_open)],
    ]
    links: list[list[Cell]] = [
        [
            row.link.position + 1,
            row.link.label or "",
            row.link.url,
            link_kind_label(row.link.kind),
            row.clicks,
            row.unique if unique else None,
            row.machine_clicks,
        ]
        for row in stats.links
    ]
    blocks: list[list[Cell]] = [
        [
            row.block.position + 1,
            row.block.data.get("title") or row.block.kind,
            row.clicks,
            row.unique,
        ]
        for row in stats.blocks
    ]
    segments: list[list[Cell]] = [
        [
            row.segment.name,
            row.recipients,
            row.delivered,
            row.openers,
            row.clickers,
            _rate(row.open_rate),
            _rate(row.click_rate),
        ]
        for row in stats.segments
    ]
    series: list[list[Cell]] = [
        [
            to_user_timezone(point.start).strftime("%Y-%m-%d %H:%M"),
            _("heure") if point.hourly else _("jour"),
            point.human_opens,
            point.human_clicks,
            point.machine_opens,
            point.machine_clicks,
        ]
        for point in stats.series
    ]
    return {
        "synthese": Table(_("Synthèse"), [_("Indicateur"), _("Valeur")], summary),
        "liens": Table(
            _("Liens"),
            [
                _("N°"),
                _("Libellé"),
                _("Adresse"),
                _("Type"),
                _("Clics humains"),
                _("Cliqueurs uniques"),
                _("Clics machines"),
            ],
            links,
        ),
        "blocs": Table(
            _("Blocs"),
            [_("Position"), _("Bloc"), _("Clics humains"), _("Cliqueurs uniques")],
            blocks,
        ),
        "segments": Table(
            _("Segments"),
            [
                _("Segment"),
                _("Destinataires"),
                _("Délivrés"),
                _("Ouvreurs uniques"),
                _("Cliqueurs uniques"),
                _("Taux d'ouverture (%)"),
                _("Taux de clic (%)"),
            ],
            segments,
        ),
        "chronologie": Table(
            _("Chronologie"),
            [
                _("Début (heure de Paris)"),
                _("Pas"),
                _("Ouvertures humaines"),
                _("Clics humains"),
                _("Ouvertures machines"),
                _("Clics machines"),
            ],
            series,
        ),
    }


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float):
        return f"{cell:.2f}".replace(".", ",")  # French Excel reads a decimal comma
    if isinstance(cell, int):
        return str(cell)
    return defuse(cell)


def csv_bytes(table: Table) -> bytes:
    return b"".join(csv_chunks(([_text(c) for c in row] for row in table.rows), table.header))


def _xlsx(cell: Cell) -> str | int | float | None:
    """Numbers stay numbers; text is defused and stripped of what XML cannot hold."""
    if cell is None or isinstance(cell, int | float):
        return cell
    return "".join(ch for ch in defuse(cell) if ch in "\t\n\r" or ord(ch) >= 32)


def workbook(all_tables: dict[str, Table]) -> IO[bytes]:
    """One sheet per table, in an anonymous temporary file positioned at its start."""
    book = Workbook(write_only=True)
    for table in all_tables.values():
        sheet = book.create_sheet(title=table.title[:31])
        sheet.append([_xlsx(cell) for cell in table.header])
        for row in table.rows:
            sheet.append([_xlsx(cell) for cell in row])
    output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by file_chunks
    book.save(output)
    output.seek(0)
    return output
