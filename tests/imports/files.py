"""Files as office software writes them, built in the test (no binary fixtures)."""

import io
import zipfile
from xml.sax.saxutils import escape

from openpyxl import Workbook

HEADERS = ["Civilité", "Prénom", "Nom", "Adresse e-mail", "Organisme", "Commune", "Remarque"]
ROWS = [
    ["Mme", "Clémence", "Dupont", "clemence.dupont@mairie-lievin.fr", "Mairie", "Liévin", ""],
    ["M.", "Jérôme", "Lefèvre", "jerome.lefevre@cc-ternois.fr", "CC du Ternois", "Saint-Pol", ""],
]


def csv_bytes(
    rows: list[list[str]], *, sep: str = ";", encoding: str = "cp1252", headers: list[str] = HEADERS
) -> bytes:
    lines = [sep.join(headers), *(sep.join(row) for row in rows)]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows: list[list[object]], headers: list[str] = HEADERS) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def ods_bytes(rows: list[list[str]], headers: list[str] = HEADERS) -> bytes:
    """A minimal OpenDocument spreadsheet, as LibreOffice would lay it out."""

    def row(cells: list[str]) -> str:
        return (
            "<table:table-row>"
            + "".join(
                f'<table:table-cell office:value-type="string"><text:p>{escape(c)}</text:p>'
                "</table:table-cell>"
                for c in cells
            )
            + "</table:table-row>"
        )

    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Abonnés">'
        + row(headers)
        + "".join(row(r) for r in rows)
        + "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"'
        ' manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet"
        )
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return out.getvalue()
