"""Types judged from the bytes alone (DESIGN.md §7: uploads checked by content)."""

import pytest

from service.assets.detect import Detected, DetectionError, Kind, detect
from tests.assets import samples

OOXML_TYPE = "application/vnd.openxmlformats-officedocument."


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (samples.png(3, 2), Detected("image/png", "png", 3, 2)),
        (samples.jpeg(640, 480), Detected("image/jpeg", "jpg", 640, 480)),
        (samples.GIF, Detected("image/gif", "gif", 1, 1)),
        (samples.webp_lossless(5, 7), Detected("image/webp", "webp", 5, 7)),
        (samples.webp_extended(1200, 630), Detected("image/webp", "webp", 1200, 630)),
    ],
    ids=["png", "jpeg", "gif", "webp-lossless", "webp-extended"],
)
def test_images_and_their_dimensions(data: bytes, expected: Detected) -> None:
    assert detect(data, "image") == expected


@pytest.mark.parametrize(
    ("data", "content_type", "extension"),
    [
        (samples.PDF, "application/pdf", "pdf"),
        (samples.ooxml("docx"), OOXML_TYPE + "wordprocessingml.document", "docx"),
        (samples.ooxml("xlsx"), OOXML_TYPE + "spreadsheetml.sheet", "xlsx"),
        (samples.ooxml("pptx"), OOXML_TYPE + "presentationml.presentation", "pptx"),
        (samples.odf("odt"), "application/vnd.oasis.opendocument.text", "odt"),
        (samples.odf("ods"), "application/vnd.oasis.opendocument.spreadsheet", "ods"),
        (samples.CSV_UTF8, "text/csv; charset=utf-8", "csv"),
        (samples.TEXT_CP1252, "text/plain; charset=windows-1252", "txt"),
        ("Une seule ligne, en UTF-8 : été.".encode(), "text/plain; charset=utf-8", "txt"),
    ],
    ids=["pdf", "docx", "xlsx", "pptx", "odt", "ods", "csv", "text-cp1252", "text-utf8"],
)
def test_documents(data: bytes, content_type: str, extension: str) -> None:
    assert detect(data, "document") == Detected(content_type, extension)


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (samples.SVG, "image", "SVG"),
        (samples.SVG, "document", "SVG"),
        (samples.HTML, "document", "HTML"),
        (samples.EXE, "document", "Type de fichier non accepté"),
        (samples.EXE, "image", "n'est pas une image"),
        (samples.plain_zip(), "document", "Type de fichier non accepté"),
        (samples.ooxml("docx", macros=True), "document", "macros"),
        (samples.PDF, "image", "n'est pas une image"),
        (samples.png(), "document", "Type de fichier non accepté"),
        (b"", "document", "vide"),
        (samples.png()[:20], "image", "Image PNG illisible"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image", "Image JPEG illisible"),
        (b"PK\x03\x04 truncated", "document", "ZIP illisible"),
        ("Texte UTF-16".encode("utf-16"), "document", "Type de fichier non accepté"),
    ],
    ids=[
        "svg-image",
        "svg-document",
        "html",
        "exe",
        "exe-as-image",
        "zip",
        "docx-with-macros",
        "pdf-as-image",
        "png-as-document",
        "empty",
        "truncated-png",
        "truncated-jpeg",
        "truncated-zip",
        "utf16-text",
    ],
)
def test_refused(data: bytes, kind: Kind, message: str) -> None:
    with pytest.raises(DetectionError, match=message):
        detect(data, kind)


def test_zero_sized_image_is_refused() -> None:
    with pytest.raises(DetectionError, match="illisible"):
        detect(samples.png(0, 1), "image")
