"""Subscriber imports: read files as French office software writes them, map their
columns to fields, check every line (dry run), then write in set-based batches.

Reading: CSV with ``;``, ``,`` or tab (sniffed from the header line), in UTF-8 with or
without BOM, Windows-1252 or UTF-16 (Excel's "Texte Unicode"); XLSX, XLS and ODS
through calamine. Files are streamed (CSV) so memory stays flat whatever their size.

Writing: per batch of ``BATCH`` lines, one query for the suppression HMACs, one for
the subscribers already known, one multi-row ``INSERT … ON CONFLICT DO NOTHING`` for
the new subscribers and one for the memberships, an executemany ``UPDATE`` for the
updated ones. An unsubscribed or suppressed person is never subscribed again.

Line numbers are the ones the person sees in their spreadsheet (header = line 1).
"""

import codecs
import csv
import datetime as dt
import hashlib
import shutil
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import python_calamine
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.audience.exports import defuse
from service.audience.models import (
    Import,
    ImportStatus,
    Membership,
    MembershipStatus,
    Segment,
    SegmentKind,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from service.audience.services import InvalidAddressError, address_hmac, normalise_address
from service.audit.services import record
from service.config import Config
from service.db import utcnow

MAX_COLUMNS = 200
PREVIEW_ROWS = 10
BATCH = 1000
CHUNK = 1 << 16
MAX_CELL = 100_000  # characters; the csv module's own limit is 131,072
ATTRIBUTE_NAME = 60
ATTRIBUTE_VALUE = 500

# Field → French label, in the order the mapping page offers them.
FIELDS: dict[str, Any] = {
    "email": _l("Adresse e-mail"),
    "civility": _l("Civilité"),
    "first_name": _l("Prénom"),
    "last_name": _l("Nom"),
    "organisation": _l("Organisme"),
    "function": _l("Fonction"),
    "commune": _l("Commune"),
    "epci": _l("EPCI"),
}
ATTRIBUTE = "attribute"  # kept in Subscriber.attributes under the column's header
IGNORE = "ignore"
CHOICES: dict[str, Any] = {
    **FIELDS,
    ATTRIBUTE: _l("Autre information (gardée telle quelle)"),
    IGNORE: _l("Ne pas importer"),
}
# Lengths of the Subscriber columns: longer values are cut, and the report says so.
LENGTHS = {
    "civility": 10,
    "first_name": 100,
    "last_name": 100,
    "organisation": 200,
    "function": 120,
    "commune": 120,
    "epci": 120,
}
# Headers as people write them, reduced by ``_key`` (no accents, case, spaces or dashes).
ALIASES = {
    "email": {
        "email",
        "mail",
        "courriel",
        "adresseemail",
        "adressemail",
        "adressecourriel",
        "adresseelectronique",
        "adressemel",
        "mel",
        "emailaddress",
        "adresse",
    },
    "civility": {"civilite", "civ", "titre", "salutation"},
    "first_name": {"prenom", "firstname", "prenoms"},
    "last_name": {"nom", "nomdefamille", "nomdusage", "lastname", "name"},
    "organisation": {
        "organisme",
        "organisation",
        "structure",
        "collectivite",
        "entreprise",
        "societe",
        "employeur",
        "etablissement",
    },
    "function": {"fonction", "poste", "qualite", "mandat", "metier"},
    "commune": {"commune", "ville", "localite"},
    "epci": {"epci", "intercommunalite", "interco", "communautedecommunes", "agglomeration"},
}
_BY_ALIAS = {alias: name for name, aliases in ALIASES.items() for alias in aliases}


class FileError(ValueError):
    """The file cannot be read as a subscriber list; the message is French."""


class ImportOptionsError(ValueError):
    """The mapping or the options are not usable; the message is French."""


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SUPPRESSED = "suppressed"
    UNSUBSCRIBED = "unsubscribed"


OUTCOME_LABELS: dict[str, Any] = {
    Outcome.CREATED: _l("Nouvel abonné"),
    Outcome.UPDATED: _l("Déjà abonné, mis à jour"),
    Outcome.UNCHANGED: _l("Déjà abonné, inchangé"),
    Outcome.INVALID: _l("Adresse invalide"),
    Outcome.DUPLICATE: _l("Doublon dans le fichier"),
    Outcome.SUPPRESSED: _l("Adresse exclue"),
    Outcome.UNSUBSCRIBED: _l("Désabonné, non réinscrit"),
}
# The report is written by the worker, outside any request: plain French, like the reasons.
REPORT_LABELS = {
    Outcome.CREATED: "Nouvel abonné",
    Outcome.UPDATED: "Déjà abonné, mis à jour",
    Outcome.UNCHANGED: "Déjà abonné, inchangé",
    Outcome.INVALID: "Adresse invalide",
    Outcome.DUPLICATE: "Doublon dans le fichier",
    Outcome.SUPPRESSED: "Adresse exclue",
    Outcome.UNSUBSCRIBED: "Désabonné, non réinscrit",
}
FIELD_NAMES = {
    "civility": "Civilité",
    "first_name": "Prénom",
    "last_name": "Nom",
    "organisation": "Organisme",
    "function": "Fonction",
    "commune": "Commune",
    "epci": "EPCI",
}
# A person who left, bounced or complained is never subscribed again by an import.
GONE = frozenset(
    {SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED}
)


# ------------------------------------------------------------------ reading


@dataclass(frozen=True)
class TableInfo:
    file_format: str  # csv | xlsx | xls | ods
    encoding: str | None
    delimiter: str | None
    headers: list[str]
    total_rows: int


def import_folder(config: Config, import_id: int) -> Path:
    return config.instance_path / "imports" / str(import_id)


def source_path(config: Config, record_: Import) -> Path:
    return import_folder(config, record_.id) / f"source.{record_.file_format}"


def report_path(config: Config, record_: Import) -> Path:
    return import_folder(config, record_.id) / "report.csv"


def _key(header: str) -> str:
    """« Adresse e-mail » → « adresseemail »: how headers are compared."""
    plain = unicodedata.normalize("NFKD", header.strip().lower())
    return "".join(c for c in plain if c.isalnum() and not unicodedata.combining(c))


def guess_mapping(headers: list[str]) -> dict[str, str]:
    """Known French (and English) headers to fields; other named columns to attributes."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for index, name in enumerate(headers):
        guess = _BY_ALIAS.get(_key(name))
        if guess is not None and guess not in taken:
            mapping[str(index)] = guess
            taken.add(guess)
        else:
            mapping[str(index)] = ATTRIBUTE if name.strip() else IGNORE
    return mapping


def _detect_format(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                if "mimetype" in names:
                    kind = archive.read("mimetype").strip()
                    if kind == b"application/vnd.oasis.opendocument.spreadsheet":
                        return "ods"
                if "xl/workbook.xml" in names:
                    return "xlsx"
        except (zipfile.BadZipFile, OSError, KeyError, EOFError):
            raise FileError(
                "Le classeur est endommagé ou incomplet (archive illisible). "
                "Ouvrez-le dans votre tableur, enregistrez-le à nouveau et recommencez."
            ) from None
        raise FileError(
            "Ce fichier compressé n'est pas un classeur (XLSX ou ODS). "
            "Envoyez un fichier CSV, XLSX ou ODS."
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"
    return "csv"


def _detect_encoding(path: Path) -> str:
    """BOM → utf-8-sig (or UTF-16); else UTF-8 if the whole file decodes strictly;
    else Windows-1252 (what Excel writes for "CSV (séparateur : point-virgule)")."""
    with path.open("rb") as handle:
        head = handle.read(4)
        if head.startswith(codecs.BOM_UTF8):
            candidates = ["utf-8-sig"]
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            candidates = ["utf-16"]
        else:
            candidates = ["utf-8", "cp1252"]
        for encoding in candidates:
            handle.seek(0)
            if _decodes(handle, encoding):
                return encoding
    raise FileError(
        "L'encodage du fichier n'est pas reconnu (ni UTF-8 ni Windows-1252). "
        "Dans votre tableur, enregistrez-le en « CSV UTF-8 » et recommencez."
    )


def _decodes(handle: BinaryIO, encoding: str) -> bool:
    """Whether the whole file decodes strictly, read a chunk at a time."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        while chunk := handle.read(CHUNK):
            text = decoder.decode(chunk)
            if "\x00" in text:
                raise FileError(
                    "Ce fichier n'est pas un texte (il contient des octets nuls) : "
                    "envoyez un fichier CSV, XLSX ou ODS."
                )
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _sniff_delimiter(path: Path, encoding: str) -> str:
    """The separator of the header line: the most frequent of ``;``, tab and ``,``
    outside quotes (``;`` when there is only one column)."""
    with path.open(encoding=encoding, newline="") as handle:
        line = handle.readline(CHUNK)
    counts = Counter()  # type: Counter[str]
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in ";\t,":
            counts[char] += 1
    if not counts:
        return ";"
    return max(";\t,", key=lambda char: counts[char])


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "VRAI" if value else "FAUX"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return "" if value is None else str(value)


def _csv_records(path: Path, info: TableInfo) -> Iterator[list[str]]:
    with path.open(encoding=info.encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=info.delimiter or ";")
        try:
            yield from reader
        except csv.Error as error:
            raise FileError(
                f"Le fichier CSV est mal formé vers la ligne {reader.line_num} ({error}). "
                "Vérifiez les guillemets, ou enregistrez-le à nouveau depuis votre tableur."
            ) from None


def _sheet_records(path: Path, file_format: str) -> Iterator[list[str]]:
    try:
        workbook = python_calamine.CalamineWorkbook.from_path(str(path))
        visible = [
            meta.name
            for meta in workbook.sheets_metadata
            if meta.visible == python_calamine.SheetVisibleEnum.Visible
            and meta.typ == python_calamine.SheetTypeEnum.WorkSheet
        ]
        if not visible:
            raise FileError("Le classeur ne contient aucune feuille visible.")
        sheet = workbook.get_sheet_by_name(visible[0])
        rows = sheet.iter_rows()
    except python_calamine.PasswordError:
        raise FileError(
            "Le classeur est protégé par un mot de passe : enregistrez-en une copie sans "
            "mot de passe et recommencez."
        ) from None
    except (python_calamine.CalamineError, ValueError, OSError):
        raise FileError(
            f"Le classeur {file_format.upper()} est endommagé ou incomplet. Ouvrez-le dans "
            "votre tableur, enregistrez-le à nouveau et recommencez."
        ) from None
    for row in rows:
        yield [_cell(value) for value in row]


def _records(path: Path, info: TableInfo) -> Iterator[tuple[int, list[str]]]:
    """Every record with its line number as a spreadsheet shows it (1 = header)."""
    source = (
        _csv_records(path, info)
        if info.file_format == "csv"
        else _sheet_records(path, info.file_format)
    )
    yield from enumerate(source, start=1)


def _blank(record_: list[str]) -> bool:
    return not any(cell.strip() for cell in record_)


def _headers(record_: list[str]) -> list[str]:
    while record_ and not record_[-1].strip():
        record_ = record_[:-1]
    if len(record_) > MAX_COLUMNS:
        raise FileError(
            f"Le fichier compte {len(record_)} colonnes ; Lettrine en lit {MAX_COLUMNS} au plus. "
            "Supprimez les colonnes inutiles et recommencez."
        )
    headers: list[str] = []
    for index, raw in enumerate(record_):
        name = " ".join(raw.split())[:ATTRIBUTE_NAME] or f"Colonne {index + 1}"
        candidate, suffix = name, 2
        while candidate in headers:
            candidate, suffix = f"{name} ({suffix})", suffix + 1
        headers.append(candidate)
    return headers


def read_table(path: Path) -> TableInfo:
    """Check the whole file once (format, encoding, size, shape) and describe it."""
    if path.stat().st_size == 0:
        raise FileError("Le fichier est vide.")
    file_format = _detect_format(path)
    encoding = delimiter = None
    if file_format == "csv":
        encoding = _detect_encoding(path)
        delimiter = _sniff_delimiter(path, encoding)
    info = TableInfo(file_format, encoding, delimiter, [], 0)
    headers: list[str] | None = None
    total = 0
    for _number, record_ in _records(path, info):
        if headers is None:
            if not _blank(record_):
                headers = _headers(record_)
            continue
        if any(len(cell) > MAX_CELL for cell in record_):
            raise FileError(
                f"Une cellule dépasse {MAX_CELL} caractères : ce fichier n'est pas "
                "une liste d'abonnés."
            )
        if not _blank(record_):
            total += 1
    if headers is None:
        raise FileError("Le fichier ne contient aucune donnée.")
    if total == 0:
        raise FileError(
            "Le fichier ne contient qu'une ligne d'en-tête : aucune personne à importer."
        )
    return TableInfo(file_format, encoding, delimiter, headers, total)


def _info(record_: Import) -> TableInfo:
    return TableInfo(
        record_.file_format,
        record_.encoding,
        record_.delimiter,
        list(record_.headers),
        record_.total_rows,
    )


def data_rows(path: Path, info: TableInfo) -> Iterator[tuple[int, list[str]]]:
    """The non-blank lines after the header, with their spreadsheet line numbers."""
    seen_header = False
    for number, record_ in _records(path, info):
        if _blank(record_):
            continue
        if not seen_header:
            seen_header = True
            continue
        yield number, record_


def preview(
    config: Config, record_: Import, count: int = PREVIEW_ROWS
) -> list[tuple[int, list[str]]]:
    path = source_path(config, record_)
    if not path.exists():
        raise FileError("Le fichier de cet import n'est plus disponible : envoyez-le à nouveau.")
    rows = []
    width = len(record_.headers)
    for number, cells in data_rows(path, _info(record_)):
        rows.append((number, (cells + [""] * width)[:width]))
        if len(rows) >= count:
            break
    return rows


# ------------------------------------------------------------------ use cases


def create_import(
    session: Session, config: Config, upload: Path, filename: str, user_id: int | None
) -> Import:
    """Use case: a file was uploaded (to ``upload``); read it, keep it, describe it. Commits.

    Raises FileError (and removes the upload) when the file cannot be read.
    """
    try:
        info = read_table(upload)
    except FileError:
        upload.unlink(missing_ok=True)
        raise
    record_ = Import(
        created_by_id=user_id,
        filename=filename[:255] or "fichier",
        file_format=info.file_format,
        encoding=info.encoding,
        delimiter=info.delimiter,
        headers=info.headers,
        mapping=guess_mapping(info.headers),
        options={
            "segment_ids": [],
            "existing": "update",
            "consent_basis": "",
            "all_or_nothing": False,
        },
        total_rows=info.total_rows,
    )
    session.add(record_)
    session.flush()
    target = source_path(config, record_)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(upload, target)
    record(
        session,
        user_id,
        "import.uploaded",
        "import",
        record_.id,
        {"filename": record_.filename, "rows": info.total_rows},
    )
    session.commit()
    return record_


def check_mapping(headers: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """A complete, valid mapping (index → choice), or ImportOptionsError."""
    cleaned: dict[str, str] = {}
    used: dict[str, str] = {}
    for index, name in enumerate(headers):
        choice = mapping.get(str(index), IGNORE)
        if choice not in CHOICES:
            raise ImportOptionsError(f"Choix inconnu pour la colonne « {name} ».")
        if choice in FIELDS:
            if choice in used:
                raise ImportOptionsError(
                    f"Les colonnes « {used[choice]} » et « {name} » vont toutes deux dans "
                    f"« {FIELDS[choice]} » : choisissez-en une."
                )
            used[choice] = name
        cleaned[str(index)] = choice
    if "email" not in used:
        raise ImportOptionsError("Indiquez la colonne qui contient l'adresse e-mail.")
    return cleaned


def start_check(
    session: Session,
    record_: Import,
    mapping: dict[str, str],
    options: dict[str, Any],
    user_id: int | None,
) -> None:
    """Use case: the mapping and options are chosen; queue the dry run. Commits."""
    from service.taskqueue import enqueue_after_commit  # noqa: PLC0415 - needs Flask's app

    if record_.status not in {ImportStatus.UPLOADED, ImportStatus.CHECKED, ImportStatus.FAILED}:
        raise ImportOptionsError("Cet import est déjà en cours ou terminé.")
    record_.mapping = check_mapping(list(record_.headers), mapping)
    segment_ids = [int(i) for i in options.get("segment_ids", [])]
    if segment_ids:
        found = set(
            session.scalars(
                select(Segment.id).where(
                    Segment.id.in_(segment_ids), Segment.kind == SegmentKind.STATIC
                )
            )
        )
        if found != set(segment_ids):
            raise ImportOptionsError("Un des segments choisis n'existe pas ou n'est pas une liste.")
    record_.options = {
        "segment_ids": sorted(segment_ids),
        "existing": "skip" if options.get("existing") == "skip" else "update",
        "consent_basis": " ".join(str(options.get("consent_basis") or "").split())[:500],
        "all_or_nothing": bool(options.get("all_or_nothing")),
    }
    record_.status = ImportStatus.CHECKING
    record_.error = None
    record_.processed_rows = 0
    record_.counts = {}
    record(session, user_id, "import.checked", "import", record_.id, dict(record_.options))
    enqueue_after_commit(session, "lettrine.audience.run_import", record_.id)
    session.commit()


def start_import(session: Session, record_: Import, user_id: int | None) -> None:
    """Use case: after reading the dry-run report, the user launches the import. Commits."""
    from service.taskqueue import enqueue_after_commit  # noqa: PLC0415 - needs Flask's app

    if record_.status != ImportStatus.CHECKED:
        raise ImportOptionsError("Lancez d'abord la vérification du fichier.")
    record_.status = ImportStatus.IMPORTING
    record_.processed_rows = 0
    record_.counts = {}
    record(
        session,
        user_id,
        "import.launched",
        "import",
        record_.id,
        {"filename": record_.filename, **record_.options},
    )
    enqueue_after_commit(session, "lettrine.audience.run_import", record_.id)
    session.commit()


def run(session: Session, config: Config, import_id: int) -> None:
    """Use case run by the worker: the dry run or the import the row waits for. Commits.

    Idempotent: a row in any other state is left alone; running an import twice
    (a worker lost mid-way) writes nothing twice, since every insert skips conflicts.
    """
    record_ = session.get(Import, import_id)
    if record_ is None or record_.status not in {ImportStatus.CHECKING, ImportStatus.IMPORTING}:
        return
    write = record_.status == ImportStatus.IMPORTING
    record_.started_at = utcnow()
    record_.processed_rows = 0
    record_.counts = {}
    session.commit()
    try:
        if write and record_.options.get("all_or_nothing"):
            _all_or_nothing(session, config, record_)
        else:
            counts = _Pass(session, config, record_, write=write).run(commit_each_batch=True)
            _finish(session, record_, counts, write=write)
    except FileError as error:
        session.rollback()
        _fail(session, import_id, str(error))
    except Exception:
        session.rollback()
        _fail(session, import_id, "Erreur inattendue pendant l'import ; elle a été consignée.")
        raise


def _all_or_nothing(session: Session, config: Config, record_: Import) -> None:
    """Check every line first; write only if none is invalid, in one transaction."""
    checked = _Pass(session, config, record_, write=False).run(commit_each_batch=True)
    if checked.get(Outcome.INVALID):
        record_.counts = checked
        _fail(
            session,
            record_.id,
            f"{checked[Outcome.INVALID]} ligne(s) invalide(s) : rien n'a été importé "
            "(option « tout ou rien »). Corrigez-les d'après le rapport et recommencez.",
        )
        return
    counts = _Pass(session, config, record_, write=True).run(commit_each_batch=False)
    _finish(session, record_, counts, write=True)


def _finish(session: Session, record_: Import, counts: dict[str, int], *, write: bool) -> None:
    record_.counts = counts
    record_.processed_rows = sum(counts.values())
    record_.finished_at = utcnow()
    if write:
        record_.status = ImportStatus.DONE
        record(
            session,
            record_.created_by_id,
            "import.finished",
            "import",
            record_.id,
            {"counts": counts},
        )
    else:
        record_.status = ImportStatus.CHECKED
        record_.dry_run_counts = counts
    session.commit()


def _fail(session: Session, import_id: int, message: str) -> Import:
    record_ = session.get_one(Import, import_id)
    record_.status = ImportStatus.FAILED
    record_.error = message
    record_.finished_at = utcnow()
    record(session, record_.created_by_id, "import.failed", "import", import_id, {"error": message})
    session.commit()
    return record_


# ------------------------------------------------------------------ one pass over the file


@dataclass
class _Line:
    number: int
    address: str
    values: dict[str, str]
    attributes: dict[str, str]
    notes: list[str] = field(default_factory=list)


class _Pass:
    """One pass over the file: classify each line, write if asked, report every line."""

    def __init__(self, session: Session, config: Config, record_: Import, *, write: bool):
        self.session = session
        self.secret = config.secret_key
        self.record = record_
        self.write = write
        self.path = source_path(config, record_)
        self.report = report_path(config, record_)
        self.counts: Counter[str] = Counter()
        self.lines: list[tuple[int, str, str, str]] = []
        # 8-byte digests of the addresses seen so far → first line: duplicates in the
        # file are found without keeping the addresses (~100 bytes a line).
        self.seen: dict[bytes, int] = {}
        options = record_.options
        self.update_existing = options.get("existing") != "skip"
        basis = str(options.get("consent_basis") or "")
        segments = list(
            session.scalars(select(Segment).where(Segment.id.in_(options.get("segment_ids", []))))
        )
        # Consent: active in a double opt-in segment only with a declared basis.
        self.membership_status = {
            s.id: MembershipStatus.ACTIVE
            if basis or not s.double_opt_in
            else MembershipStatus.PENDING
            for s in segments
        }
        active = bool(basis) or any(not s.double_opt_in for s in segments)
        self.new_status = SubscriberStatus.ACTIVE if active else SubscriberStatus.PENDING
        self.consent_source = f"import:{record_.id}" if basis else None
        mapping = record_.mapping
        self.columns = {int(i): choice for i, choice in mapping.items() if choice in FIELDS}
        self.attribute_columns = {
            int(i): record_.headers[int(i)] for i, choice in mapping.items() if choice == ATTRIBUTE
        }
        self.email_column = next(i for i, choice in self.columns.items() if choice == "email")
        dialect = session.get_bind().dialect.name
        self.insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def run(self, *, commit_each_batch: bool) -> dict[str, int]:
        self.report.parent.mkdir(parents=True, exist_ok=True)
        with self.report.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
            writer.writerow(["ligne", "adresse", "résultat", "motif"])
            self.writer = writer
            batch: list[tuple[int, list[str]]] = []
            for row in data_rows(self.path, _info(self.record)):
                batch.append(row)
                if len(batch) >= BATCH:
                    self._batch(batch, commit=commit_each_batch)
                    batch = []
            if batch:
                self._batch(batch, commit=commit_each_batch)
        return dict(self.counts)

    def _out(self, number: int, address: str, outcome: str, reason: str = "") -> None:
        self.counts[outcome] += 1
        self.lines.append((number, defuse(address), REPORT_LABELS[outcome], defuse(reason)))

    def _parse(self, number: int, cells: list[str]) -> _Line | None:
        raw = cells[self.email_column] if self.email_column < len(cells) else ""
        try:
            address = normalise_address(raw)
        except InvalidAddressError as error:
            self._out(number, raw.strip(), Outcome.INVALID, str(error))
            return None
        digest = hashlib.blake2b(address.encode(), digest_size=8).digest()
        first = self.seen.get(digest)
        if first is not None:
            self._out(
                number,
                address,
                Outcome.DUPLICATE,
                f"Même adresse qu'à la ligne {first} : seule la première ligne est gardée.",
            )
            return None
        self.seen[digest] = number
        line = _Line(number, address, {}, {})
        for index, name in self.columns.items():
            if name == "email" or index >= len(cells):
                continue
            value = " ".join(cells[index].split())
            if not value:
                continue
            self._formula(line, value, FIELD_NAMES[name])
            limit = LENGTHS[name]
            if len(value) > limit:
                line.notes.append(f"« {FIELD_NAMES[name]} » coupé à {limit} caractères")
                value = value[:limit]
            line.values[name] = value
        for index, header in self.attribute_columns.items():
            value = cells[index].strip() if index < len(cells) else ""
            if value:
                self._formula(line, value, header)
                line.attributes[header] = value[:ATTRIBUTE_VALUE]
        return line

    @staticmethod
    def _formula(line: _Line, value: str, column: Any) -> None:
        if value.startswith("="):
            line.notes.append(f"formule dans « {column} » gardée comme texte")

    def _batch(self, rows: list[tuple[int, list[str]]], *, commit: bool) -> None:
        lines = [line for number, cells in rows if (line := self._parse(number, cells))]
        digests = {address_hmac(self.secret, line.address): line for line in lines}
        suppressed = {
            digests[d].address
            for d in self.session.scalars(
                select(Suppression.address_hmac).where(Suppression.address_hmac.in_(digests))
            )
        }
        addresses = [line.address for line in lines if line.address not in suppressed]
        existing = {
            row.email: row
            for row in self.session.execute(
                select(
                    Subscriber.id, Subscriber.email, Subscriber.status, Subscriber.attributes
                ).where(Subscriber.email.in_(addresses))
            )
        }
        new: list[_Line] = []
        updates: list[dict[str, Any]] = []
        members: list[str] = []
        for line in lines:
            notes = ("; ".join(line.notes) + ".") if line.notes else ""
            known = existing.get(line.address)
            if line.address in suppressed:
                self._out(
                    line.number,
                    line.address,
                    Outcome.SUPPRESSED,
                    "Adresse sur la liste d'exclusion (désinscription, rejet ou effacement) : "
                    "elle n'est jamais réinscrite.",
                )
            elif known is not None and known.status in GONE:
                self._out(
                    line.number,
                    line.address,
                    Outcome.UNSUBSCRIBED,
                    "Cette personne s'est désabonnée ou son adresse rejette nos envois : "
                    "elle n'est pas réinscrite.",
                )
            elif known is not None:
                members.append(line.address)
                if self.update_existing and (line.values or line.attributes):
                    updates.append(
                        {
                            "id": known.id,
                            **line.values,
                            "attributes": {**(known.attributes or {}), **line.attributes},
                            "updated_at": utcnow(),
                        }
                    )
                    self._out(line.number, line.address, Outcome.UPDATED, notes)
                else:
                    self._out(line.number, line.address, Outcome.UNCHANGED, notes)
            else:
                new.append(line)
                members.append(line.address)
                self._out(line.number, line.address, Outcome.CREATED, notes)
        if self.write:
            self._write(new, updates, members)
        self.writer.writerows(sorted(self.lines))  # in the file's order, whatever the outcome
        self.lines.clear()
        self.record.processed_rows += len(rows)
        self.record.counts = dict(self.counts)
        if commit:
            self.session.commit()
        else:
            self.session.flush()

    def _write(self, new: list[_Line], updates: list[dict[str, Any]], members: list[str]) -> None:
        now = utcnow()
        if new:
            consent_at = now if self.consent_source else None
            self.session.execute(
                self.insert(Subscriber).on_conflict_do_nothing(index_elements=["email"]),
                [
                    {
                        "email": line.address,
                        **dict.fromkeys(LENGTHS),
                        **line.values,
                        "attributes": line.attributes,
                        "status": self.new_status,
                        "language": "fr",
                        "consent_source": self.consent_source,
                        "consent_at": consent_at,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for line in new
                ],
            )
        if updates:
            # ORM bulk UPDATE by primary key: executemany, grouped by the columns each line fills.
            self.session.execute(update(Subscriber), updates)
        if members and self.membership_status:
            ids = self.session.scalars(
                select(Subscriber.id).where(Subscriber.email.in_(members))
            ).all()
            self.session.execute(
                self.insert(Membership).on_conflict_do_nothing(),
                [
                    {
                        "subscriber_id": subscriber_id,
                        "segment_id": segment_id,
                        "status": status,
                        "created_at": now,
                    }
                    for subscriber_id in ids
                    for segment_id, status in self.membership_status.items()
                ],
            )


def counts_with_labels(counts: dict[str, Any]) -> list[tuple[str, Any, int]]:
    """(outcome, French label, count) in a stable order, zeros left out."""
    return [
        (outcome, label, int(counts.get(outcome, 0)))
        for outcome, label in OUTCOME_LABELS.items()
        if counts.get(outcome)
    ]
