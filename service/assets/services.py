"""Asset use cases: store an upload once per content, describe and address it,
and check image URLs typed by hand.

Files live under ``{instance}/media/{sha256[:2]}/{sha256}``: content-addressed, so
the same bytes uploaded twice are one row and one file (``Asset.sha256`` is unique).
"""

import hashlib
import ipaddress
import math
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlsplit

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from emails.formatting import format_label
from service.assets.detect import DetectionError, Kind, detect

__all__ = [
    "Kind",
    "UploadError",
    "describe",
    "format_name",
    "is_image",
    "is_public_http_url",
    "media_path",
    "public_path",
    "public_url",
    "store_upload",
]
from service.assets.models import Asset
from service.config import Config

MEDIA_PREFIX = "/media"
MEGA = 10**6  # decimal units, as emails.formatting.french_size shows sizes
LIMITS: dict[str, int] = {"image": 5 * MEGA, "document": 20 * MEGA}
FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WebP",
    "application/pdf": "PDF",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "XLSX",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PPTX",
    "application/vnd.oasis.opendocument.text": "ODT",
    "application/vnd.oasis.opendocument.spreadsheet": "ODS",
    "text/csv": "CSV",
    "text/plain": "TXT",
}
DNS_TIMEOUT = 2.0
CHUNK = 1 << 16


class UploadError(ValueError):
    """The upload is refused; the message is French and meant for the user."""


# ---------------------------------------------------------------- storing


def media_path(config: Config, sha256: str) -> Path:
    return config.instance_path / "media" / sha256[:2] / sha256


def _megabytes(size: int) -> str:
    """27 300 000 → « 27,3 Mo », rounded up so that a refused size never reads as the limit."""
    return f"{math.ceil(size / (MEGA / 10)) / 10:.1f}".replace(".", ",") + " Mo"


def _read(stream: IO[bytes], limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) <= limit:
        return data
    size = len(data)
    while chunk := stream.read(CHUNK):  # counted, not kept
        size += len(chunk)
    raise UploadError(
        _(
            "Fichier trop volumineux : %(size)s (%(limit)s au plus).",
            size=_megabytes(size),
            limit=f"{limit // MEGA} Mo",
        )
    )


def stored_filename(original: str | None, extension: str) -> str:
    """A safe ASCII name whose extension matches the detected content."""
    name = secure_filename(original or "")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{stem[:200] or 'fichier'}.{extension}"


def _write(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically (never a half file under the final name).

    Returns False when an identical file was already there.
    """
    if path.is_file() and path.stat().st_size == len(data):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".upload-", delete=False) as handle:
        try:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            # Public content: readable by a web server that might serve media/ directly.
            os.fchmod(handle.fileno(), 0o644)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
    Path(handle.name).replace(path)
    return True


def _by_hash(session: Session, sha256: str) -> Asset | None:
    return session.scalar(select(Asset).where(Asset.sha256 == sha256))


def store_upload(
    session: Session, file_storage: FileStorage, *, kind: Kind, user_id: int | None
) -> Asset:
    """Use case: keep an uploaded image or document, once per content. Commits.

    The type comes from the bytes only. Raises ``UploadError`` (French) when the
    file is refused; nothing is written then. The row is inserted (and the hash
    reserved: a concurrent identical upload waits on the unique index) before the
    file is written, and the file is removed again if the commit fails, so a row
    never lacks its file. A crash between the write and the commit can only leave an
    unreferenced file, which the next upload of the same content reuses.
    """
    if kind not in LIMITS:
        raise ValueError(f"unknown asset kind {kind!r}")
    config: Config = current_app.extensions["lettrine_config"]
    data = _read(file_storage.stream, LIMITS[kind])
    try:
        detected = detect(data, kind)
    except DetectionError as error:
        raise UploadError(str(error)) from error
    digest = hashlib.sha256(data).hexdigest()
    path = media_path(config, digest)

    if (existing := _by_hash(session, digest)) is not None:
        _write(path, data)  # puts back a file lost from the disk; a no-op otherwise
        return existing
    asset = Asset(
        sha256=digest,
        filename=stored_filename(file_storage.filename, detected.extension),
        content_type=detected.content_type,
        size=len(data),
        width=detected.width,
        height=detected.height,
        uploaded_by_id=user_id,
    )
    try:
        with session.begin_nested():
            session.add(asset)
    except IntegrityError:
        # The same content was committed by a concurrent upload meanwhile.
        if (existing := _by_hash(session, digest)) is None:
            raise
        _write(path, data)
        return existing
    try:
        created = _write(path, data)
    except BaseException:
        session.rollback()
        raise
    try:
        session.commit()
    except BaseException:
        session.rollback()
        if created:
            path.unlink(missing_ok=True)
        raise
    return asset


# ---------------------------------------------------------------- describing


def base_type(asset: Asset) -> str:
    return asset.content_type.split(";", 1)[0].strip()


def is_image(asset: Asset) -> bool:
    return base_type(asset).startswith("image/")


def format_name(asset: Asset) -> str:
    return FORMATS.get(base_type(asset), asset.filename.rsplit(".", 1)[-1].upper())


def public_path(asset: Asset) -> str:
    return f"{MEDIA_PREFIX}/{asset.id}/{quote(asset.filename)}"


def public_url(config: Config, asset: Asset) -> str:
    """Absolute URL of the file, for e-mails and public pages."""
    return config.base_url + public_path(asset)


def describe(config: Config, asset: Asset) -> dict[str, Any]:
    """What the block editor needs to know about an asset (JSON-ready)."""
    fmt = format_name(asset)
    return {
        "id": asset.id,
        "url": public_url(config, asset),
        "filename": asset.filename,
        "content_type": asset.content_type,
        "size": asset.size,
        "size_label": format_label(fmt, asset.size),
        "format": fmt,
        "width": asset.width,
        "height": asset.height,
    }


# ---------------------------------------------------------------- remote image URLs

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _is_public_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 carried inside IPv6 is judged as the IPv4 address it is.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _is_public_address(embedded)
    return address.is_global and not address.is_multicast


def _resolve(host: str, timeout: float) -> list[str] | OSError | None:
    """The host's addresses, the resolver's error, or None when it took too long.

    ``getaddrinfo`` has no timeout of its own: it runs in a daemon thread that is
    left to finish on its own if it hangs.
    """
    outcome: list[list[str] | OSError] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            outcome.append([str(info[4][0]) for info in infos])
        except OSError as error:
            outcome.append(error)
        except UnicodeError as error:  # a name the IDNA codec refuses
            outcome.append(OSError(str(error)))

    thread = threading.Thread(target=lookup, name="lettrine-dns-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else None


class _RefusedError(Exception):
    """Internal: the URL is refused, with the French reason."""


def _private() -> _RefusedError:
    return _RefusedError(
        _(
            "Cette adresse désigne un serveur local ou privé : "
            "l'image doit être publiée sur un site public."
        )
    )


def _http_host(url: str) -> str:
    """The host named by an http(s) URL without credentials."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").rstrip(".")
        _port = parts.port  # raises ValueError when not a number
    except ValueError:
        raise _RefusedError(_("Cette adresse n'est pas valide.")) from None
    if parts.scheme.lower() not in {"http", "https"}:
        raise _RefusedError(_("L'adresse doit commencer par http:// ou https://."))
    if parts.username is not None or parts.password is not None:
        raise _RefusedError(_("L'adresse ne doit contenir ni identifiant ni mot de passe."))
    if not host:
        raise _RefusedError(_("L'adresse ne nomme aucun serveur."))
    return host


def _check_host(host: str, timeout: float) -> None:
    if host == "localhost" or host.endswith(".localhost"):
        raise _private()
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        if not _is_public_address(literal):
            raise _private()
        return
    resolved = _resolve(host, timeout)
    if resolved is None:
        raise _RefusedError(
            _("Le serveur « %(host)s » n'a pas répondu à temps ; réessayez.", host=host)
        )
    if isinstance(resolved, OSError) or not resolved:
        raise _RefusedError(_("Le serveur « %(host)s » est introuvable.", host=host))
    for text in resolved:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise _private() from None
        if not _is_public_address(address):
            raise _private()


def is_public_http_url(url: str, *, timeout: float = DNS_TIMEOUT) -> str | None:
    """None when ``url`` is http(s) on a public address, else a French error.

    Refuses other schemes, credentials in the URL, ``localhost`` and any host that
    is, or resolves to, a private, loopback, link-local or otherwise non-public
    address (every address the name resolves to must be public). This checks what
    the user typed; DNS can change afterwards, so any server-side fetch must check
    the address it actually connects to.
    """
    try:
        _check_host(_http_host(url), timeout)
    except _RefusedError as refused:
        return str(refused)
    return None
