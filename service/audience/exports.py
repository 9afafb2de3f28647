"""Subscriber exports for French office software, streamed, defused against formula injection.

CSV is UTF-8 with a BOM and ``;`` separators: that is what French Excel opens
correctly with a double click. XLSX is written by openpyxl's write-only mode
(rows go straight to a temporary file), then streamed.
"""

import csv
import io
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from flask_babel import gettext as _
from openpyxl import Workbook
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from service.audience.models import Membership, Segment, Subscriber

# A cell starting with one of these is a formula (or becomes one) in Excel,
# LibreOffice and Google Sheets: "=HYPERLINK(...)", "+33…", "@SUM", a leading tab or CR.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# What XML 1.0 (and so XLSX) cannot hold at all; openpyxl refuses these.
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
YIELD_PER = 1000
CHUNK = 1 << 16
# Werkzeug adds « ; charset=utf-8 » to a text/* mimetype itself.
CSV_MIMETYPE = "text/csv"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def defuse(value: Any) -> str:
    """The cell as text that no spreadsheet will evaluate (OWASP "CSV injection")."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def header() -> list[str]:
    return [
        _("Adresse e-mail"),
        _("Civilité"),
        _("Prénom"),
        _("Nom"),
        _("Organisme"),
        _("Fonction"),
        _("Commune"),
        _("EPCI"),
        _("Statut"),
        _("Inscrit le"),
        _("Autres informations"),
    ]


def _attributes(attributes: dict[str, Any] | None) -> str:
    return " | ".join(f"{key} : {value}" for key, value in (attributes or {}).items())


def subscriber_rows(
    session: Session,
    segment: Segment | None = None,
    where: Sequence[ColumnElement[bool]] = (),
) -> Iterator[list[str]]:
    """Every subscriber (or a static segment's members, with their membership status, or
    the result of a search), read in chunks from a server-side cursor, already defused."""
    status_column: Any = Subscriber.status if segment is None else Membership.status
    statement = select(
        Subscriber.email,
        Subscriber.civility,
        Subscriber.first_name,
        Subscriber.last_name,
        Subscriber.organisation,
        Subscriber.function,
        Subscriber.commune,
        Subscriber.epci,
        status_column,
        Subscriber.created_at,
        Subscriber.attributes,
    ).order_by(Subscriber.id)
    if where:
        statement = statement.where(*where)
    if segment is not None:
        statement = statement.join(Membership, Membership.subscriber_id == Subscriber.id).where(
            Membership.segment_id == segment.id
        )
    result = session.execute(statement.execution_options(yield_per=YIELD_PER))
    for row in result:
        *fields, status, created, attributes = row
        yield [
            *(defuse(value) for value in fields),
            defuse(status.value),
            created.strftime("%d/%m/%Y %H:%M"),
            defuse(_attributes(attributes)),
        ]


def csv_chunks(rows: Iterable[list[str]], header_row: list[str]) -> Iterator[bytes]:
    """UTF-8 with BOM, ``;``, CRLF: bytes for a streamed response, ~64 KiB at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([defuse(cell) for cell in header_row])
    first = True
    for row in rows:
        writer.writerow(row)
        if buffer.tell() >= CHUNK:
            yield _encode(buffer, bom=first)
            first = False
    yield _encode(buffer, bom=first)


def _encode(buffer: io.StringIO, *, bom: bool) -> bytes:
    data = buffer.getvalue().encode("utf-8-sig" if bom else "utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


def xlsx_file(rows: Iterable[list[str]], header_row: list[str], title: str) -> IO[bytes]:
    """An XLSX workbook in an anonymous temporary file, positioned at its start.

    Every cell is written as a string: the defused text, never a formula.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31] or "Abonnés")
    sheet.append([_ILLEGAL_XML.sub("", defuse(cell)) for cell in header_row])
    for row in rows:
        sheet.append([_ILLEGAL_XML.sub("", cell) for cell in row])
    output = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, closed by file_chunks
    workbook.save(output)
    output.seek(0)
    return output


def file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """Stream a file and close it at the end (the temporary file then disappears)."""
    try:
        while chunk := handle.read(CHUNK):
            yield chunk
    finally:
        handle.close()
