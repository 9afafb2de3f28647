"""Reading files as French office software writes them, and refusing the others clearly."""

import codecs
import io
import zipfile
from pathlib import Path

import pytest

from service.audience.imports import MAX_COLUMNS, FileError, data_rows, guess_mapping, read_table
from tests.imports.files import HEADERS, ROWS, csv_bytes, ods_bytes, xlsx_bytes


def _read(tmp_path: Path, data: bytes) -> tuple[list[str], list[tuple[int, list[str]]], object]:
    path = tmp_path / "upload"
    path.write_bytes(data)
    info = read_table(path)
    return info.headers, list(data_rows(path, info)), info


@pytest.mark.parametrize(
    ("data", "encoding", "delimiter"),
    [
        (csv_bytes(ROWS, sep=";", encoding="cp1252"), "cp1252", ";"),
        (csv_bytes(ROWS, sep=";", encoding="utf-8-sig"), "utf-8-sig", ";"),
        (csv_bytes(ROWS, sep=",", encoding="utf-8"), "utf-8", ","),
        (csv_bytes(ROWS, sep=",", encoding="utf-8-sig"), "utf-8-sig", ","),
        (csv_bytes(ROWS, sep="\t", encoding="utf-16"), "utf-16", "\t"),
    ],
    ids=["cp1252-semicolon", "bom-semicolon", "utf8-comma", "bom-comma", "utf16-tab"],
)
def test_csv_variants(tmp_path: Path, data: bytes, encoding: str, delimiter: str) -> None:
    headers, rows, info = _read(tmp_path, data)
    assert (info.encoding, info.delimiter) == (encoding, delimiter)  # type: ignore[attr-defined]
    assert headers == HEADERS
    assert rows == [(2, ROWS[0]), (3, ROWS[1])]


def test_quoted_separators_and_line_breaks_keep_spreadsheet_line_numbers(tmp_path: Path) -> None:
    data = (
        'Courriel;Organisme\r\n"a@b.fr";"Mairie; service ""urbanisme"""\r\n'
        '\r\n"c@d.fr";"Sur deux\r\nlignes"\r\ne@f.fr;x\r\n'
    ).encode("cp1252")
    _headers, rows, _info = _read(tmp_path, data)
    assert rows == [
        (2, ["a@b.fr", 'Mairie; service "urbanisme"']),
        (4, ["c@d.fr", "Sur deux\r\nlignes"]),
        (5, ["e@f.fr", "x"]),
    ]


def test_xlsx_and_ods(tmp_path: Path) -> None:
    for data in (xlsx_bytes(ROWS), ods_bytes(ROWS)):
        headers, rows, _info = _read(tmp_path, data)
        assert headers == HEADERS
        assert rows == [(2, ROWS[0]), (3, ROWS[1])]


def test_xlsx_numbers_and_empty_cells_become_text(tmp_path: Path) -> None:
    _headers, rows, _info = _read(tmp_path, xlsx_bytes([[None, "Zoé", 62000.0, "z@y.fr"]]))
    assert rows == [(2, ["", "Zoé", "62000", "z@y.fr", "", "", ""])]


def test_french_headers_are_mapped() -> None:
    mapping = guess_mapping(
        [
            "Courriel",
            "CIVILITÉ",
            "Prénom",
            "Nom",
            "Organisme",
            "Fonction",
            "Ville",
            "EPCI",
            "Âge",
            "",
        ]
    )
    assert mapping == {
        "0": "email",
        "1": "civility",
        "2": "first_name",
        "3": "last_name",
        "4": "organisation",
        "5": "function",
        "6": "commune",
        "7": "epci",
        "8": "attribute",
        "9": "ignore",
    }
    assert guess_mapping(["Adresse e-mail", "E-mail"]) == {"0": "email", "1": "attribute"}


def _truncated_xlsx() -> bytes:
    data = xlsx_bytes(ROWS)
    return data[: len(data) // 2]


def _zip_of_nothing() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "Le fichier est vide."),
        (b"\r\n;;\r\n", "aucune donnée"),
        (csv_bytes([]), "qu'une ligne d'en-tête"),
        (b"%PDF-1.7\n\x00\x01\x02binary", "n'est pas un texte"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "n'est pas un texte"),
        (_truncated_xlsx(), "endommagé ou incomplet"),
        (b"PK\x03\x04" + b"x" * 200, "endommagé ou incomplet"),
        (_zip_of_nothing(), "n'est pas un classeur"),
        (
            ";".join(f"c{i}" for i in range(MAX_COLUMNS + 1)).encode() + b"\r\na@b.fr\r\n",
            "201 colonnes",
        ),
        (b"Courriel\r\na@b.fr\r\n" + b"\x81\x8d\xc3", "encodage"),
        (codecs.BOM_UTF8 + b"Courriel\r\n\xff\xfe@b.fr\r\n", "encodage"),
    ],
    ids=[
        "empty",
        "blank",
        "header-only",
        "pdf",
        "png",
        "truncated-xlsx",
        "fake-zip",
        "zip-not-workbook",
        "too-many-columns",
        "wrong-encoding",
        "bom-but-not-utf8",
    ],
)
def test_bad_files_get_a_french_message(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "upload"
    path.write_bytes(data)
    with pytest.raises(FileError, match=message):
        read_table(path)


def test_huge_cell_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    path.write_bytes(b"Courriel;Notes\r\na@b.fr;" + b"x" * 200_000 + b"\r\n")
    with pytest.raises(FileError, match=r"mal formé|dépasse"):
        read_table(path)
