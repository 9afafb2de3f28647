"""What an uploaded file really is, judged from its bytes alone.

The filename and the browser's Content-Type are whatever the client says; only the
content decides. Each detector returns a ``Detected`` or ``None`` ("not this type");
a file that claims a type by its signature but is broken raises ``DetectionError``.
Images get their width and height from the header, without decoding pixels.
"""

import io
import re
import struct
import zipfile
from dataclasses import dataclass
from typing import Literal

from flask_babel import gettext as _

Kind = Literal["image", "document"]


class DetectionError(Exception):
    """The content is refused; the message is French and meant for the user."""


@dataclass(frozen=True)
class Detected:
    content_type: str
    extension: str  # canonical, without the dot: the stored filename gets it
    width: int | None = None
    height: int | None = None


# ---------------------------------------------------------------- images

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the dimensions (C4 DHT, C8 JPG, CC DAC do not).
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Anything with markup may carry script: SVG is refused as an image and markup as text.
MARKUP_RE = re.compile(
    rb"<\s*(?:svg|html|script|!doctype|\?xml|body|iframe|object|embed|head|meta)\b",
    re.IGNORECASE,
)


def _broken(fmt: str) -> DetectionError:
    return DetectionError(_("Image %(format)s illisible ou tronquée.", format=fmt))


def _sized(content_type: str, extension: str, width: int, height: int) -> Detected:
    if width <= 0 or height <= 0:
        raise _broken(extension.upper())
    return Detected(content_type, extension, width, height)


def _png(data: bytes) -> Detected | None:
    if not data.startswith(PNG_SIGNATURE):
        return None
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise _broken("PNG")
    width, height = struct.unpack(">II", data[16:24])
    return _sized("image/png", "png", width, height)


def _jpeg(data: bytes) -> Detected | None:
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise _broken("JPEG")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            raise _broken("JPEG")
        if marker in JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return _sized("image/jpeg", "jpg", width, height)
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        pos += 2 + length
    raise _broken("JPEG")


def _gif(data: bytes) -> Detected | None:
    if not data.startswith((b"GIF87a", b"GIF89a")):
        return None
    if len(data) < 10:
        raise _broken("GIF")
    width, height = struct.unpack("<HH", data[6:10])
    return _sized("image/gif", "gif", width, height)


def _webp(data: bytes) -> Detected | None:
    if not (data.startswith(b"RIFF") and data[8:12] == b"WEBP"):
        return None
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return _sized("image/webp", "webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return _sized("image/webp", "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _sized("image/webp", "webp", width, height)
    raise _broken("WebP")


def detect_image(data: bytes) -> Detected:
    for detector in (_png, _jpeg, _gif, _webp):
        if (found := detector(data)) is not None:
            return found
    if MARKUP_RE.search(data[:4096]):
        raise DetectionError(
            _(
                "Les images SVG ou HTML ne sont pas acceptées : elles peuvent contenir des "
                "scripts. Enregistrez l'image en PNG ou en JPEG."
            )
        )
    raise DetectionError(_("Ce fichier n'est pas une image PNG, JPEG, GIF ou WebP."))


# ---------------------------------------------------------------- documents

OOXML_MAIN_TYPES = {
    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "pptx",
    ),
}
ODF_TYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
}
# Only small members are read, and only up to this many bytes: a zip bomb stays packed.
ZIP_MEMBER_LIMIT = 1_000_000
TEXT_SAMPLE_LINES = 20
CSV_DELIMITERS = (b";", b",", b"\t")
# C0 controls other than tab, line feed, vertical tab, form feed and carriage return.
CONTROL_RE = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")


def _not_accepted() -> DetectionError:
    return DetectionError(
        _(
            "Type de fichier non accepté : les documents peuvent être en PDF, DOCX, XLSX, "
            "PPTX, ODT, ODS, CSV ou texte."
        )
    )


def _pdf(data: bytes) -> Detected | None:
    return Detected("application/pdf", "pdf") if data.startswith(b"%PDF-") else None


def _member(archive: zipfile.ZipFile, name: str) -> bytes | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    if info.file_size > ZIP_MEMBER_LIMIT:
        return None
    with archive.open(info) as member:
        return member.read(ZIP_MEMBER_LIMIT)


def _is_macro(name: str) -> bool:
    # VBA in Office files; Basic and scripts folders in OpenDocument ones.
    lowered = name.lower()
    return lowered.endswith("vbaproject.bin") or lowered.startswith(("basic/", "scripts/"))


def _office(data: bytes) -> Detected | None:
    if not data.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if any(_is_macro(name) for name in names):
                raise DetectionError(
                    _(
                        "Les documents avec macros ne sont pas acceptés : enregistrez-le "
                        "sans macros (DOCX, XLSX, PPTX, ODT ou ODS)."
                    )
                )
            mimetype = _member(archive, "mimetype")
            if mimetype is not None and (extension := ODF_TYPES.get(mimetype.strip())):
                return Detected(mimetype.strip().decode("ascii"), extension)
            types = _member(archive, "[Content_Types].xml") or b""
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as error:
        raise DetectionError(_("Archive ZIP illisible ou tronquée.")) from error
    for main_type, (content_type, extension) in OOXML_MAIN_TYPES.items():
        if b'ContentType="' + main_type + b'"' in types:
            return Detected(content_type, extension)
    raise _not_accepted()


def _looks_like_csv(data: bytes) -> bool:
    """At least two lines, each with the same (non-zero) count of one delimiter."""
    lines = [line for line in data.splitlines()[:TEXT_SAMPLE_LINES] if line.strip()]
    if len(lines) < 2:
        return False
    for delimiter in CSV_DELIMITERS:
        counts = {line.count(delimiter) for line in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return True
    return False


def _text(data: bytes) -> Detected | None:
    if CONTROL_RE.search(data):  # NUL and friends: binary, whatever its name
        return None
    body = data.removeprefix(b"\xef\xbb\xbf")
    try:
        body.decode("utf-8")
        charset = "utf-8"
    except UnicodeDecodeError:
        try:
            body.decode("cp1252")
            charset = "windows-1252"
        except UnicodeDecodeError:
            return None
    if body.lstrip().startswith(b"<") or MARKUP_RE.search(body):
        raise DetectionError(
            _("Fichiers HTML, SVG ou XML refusés : ils peuvent contenir des scripts.")
        )
    if _looks_like_csv(body):
        return Detected(f"text/csv; charset={charset}", "csv")
    return Detected(f"text/plain; charset={charset}", "txt")


def detect_document(data: bytes) -> Detected:
    for detector in (_pdf, _office, _text):
        if (found := detector(data)) is not None:
            return found
    raise _not_accepted()


def detect(data: bytes, kind: Kind) -> Detected:
    if not data:
        raise DetectionError(_("Le fichier est vide."))
    return detect_image(data) if kind == "image" else detect_document(data)
