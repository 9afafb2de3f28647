"""The message template: headers and both parts pre-encoded once, with slots.

Building a message with ``email.message`` costs ~5 ms (DESIGN.md §9), far too
slow per recipient. The library builds the static headers once; the parts are
quoted-printable encoded once. Each per-recipient value sits on its own QP line
between soft line breaks ("=\\r\\n"), so filling a slot never disturbs the
encoding around it, and a message is a ``b"".join`` of pre-encoded pieces.
"""

import binascii
import email.policy
import email.utils
import html
import re
import secrets
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr

from emails.model import IssueData, Recipient
from emails.render import CompiledVariant, RenderSettings, resolve

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"

# Slot contexts: how a raw per-recipient string becomes bytes in its place.
HEADER, HTML_QP, TEXT_QP = "header", "html", "text"


class HeaderInjectionError(ValueError):
    """A header value carried CR or LF: refused, never emitted."""


# Everything that can end or fold a header line, for some parser somewhere.
HEADER_BREAKING = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def check_header_value(name: str, value: str | None) -> None:
    if value and HEADER_BREAKING.search(value):
        raise HeaderInjectionError(
            f"{name} : les retours à la ligne et caractères de contrôle sont interdits "
            "dans un en-tête."
        )


def _split_line(line: bytes, limit: int) -> list[bytes]:
    """Cut an encoded line into pieces of at most ``limit`` characters plus "=".

    binascii's encoder can exceed 76 characters (an encoded trailing tab, for one),
    and our pieces end on a soft break it does not know about.
    """
    pieces = []
    while len(line) > limit:
        cut = limit
        if line[cut - 1 : cut] == b"=":  # never split an "=XX" escape
            cut -= 1
        elif line[cut - 2 : cut - 1] == b"=":
            cut -= 2
        pieces.append(line[:cut] + b"=")
        line = line[cut:]
    pieces.append(line)
    return pieces


def _soft_end(encoded: bytes) -> bytes:
    """CRLF line ends, every line within QP's 76 characters, ending on a soft break."""
    if len(encoded) <= 75 and b"\n" not in encoded:  # the common case: a short value
        return encoded + SOFT_BREAK
    lines = encoded.split(b"\n")
    out: list[bytes] = []
    for index, line in enumerate(lines):
        last = index == len(lines) - 1
        # a hard line may use 76 characters; the last one gets a trailing "=" added
        out += _split_line(line, 75 if last else 76) if len(line) > (75 if last else 76) else [line]
    return CRLF.join(out) + SOFT_BREAK


def _lines(data: str) -> str:
    # Browsers post text areas with CRLF; a lone CR must never reach the wire.
    return data.replace("\r\n", "\n").replace("\r", "\n")


def _qp(data: str) -> bytes:
    """Quoted-printable with CRLF line ends, ending on a soft break so a slot may follow."""
    data = _lines(data)
    encoded = binascii.b2a_qp(data.encode("utf-8"), quotetabs=False, istext=True, header=False)
    if encoded.endswith(b"\n"):  # already ends a line: no soft break needed
        return _soft_end(encoded[:-1])[: -len(SOFT_BREAK)] + CRLF
    return _soft_end(encoded)


def _qp_value(data: str) -> bytes:
    return _soft_end(binascii.b2a_qp(_lines(data).encode("utf-8"), quotetabs=True, header=False))


def _encoded_word_name(name: str) -> str:
    """RFC 2047 display name, fast path for the per-recipient To header."""
    if name.isascii() and not any(c in name for c in '"\\()<>,;:@[]'):
        return name
    if name.isascii():
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    words, chunk = [], ""
    for char in name:  # at most 40 characters per word keeps each under 75 octets
        if len((chunk + char).encode()) > 39:
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return " ".join(f"=?utf-8?b?{b64encode(w.encode()).decode()}?=" for w in words)


@dataclass(frozen=True)
class MessageTemplate:
    """Pieces of one message: bytes, and slot indices into ``slots``."""

    pieces: tuple[bytes | int, ...]
    slots: tuple[tuple[str, str], ...]  # (name, context)
    link_positions: tuple[int, ...]  # tracked links present (individual mode)
    html_size: int  # bytes of the HTML part before per-recipient values


def _static_headers(issue: IssueData, boundary: str, list_domain: str) -> bytes:
    """Headers that are the same for every recipient, folded and encoded by the library."""
    newsletter = issue.newsletter
    for name, value in (
        ("Objet", issue.subject),
        ("Nom de l'expéditeur", newsletter.sender_name),
        ("Adresse de l'expéditeur", newsletter.sender_email),
        ("Adresse de réponse", newsletter.reply_to),
        ("Nom de la lettre", newsletter.name),
    ):
        check_header_value(name, value)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = formataddr((newsletter.sender_name, newsletter.sender_email))
    if newsletter.reply_to:
        msg["Reply-To"] = newsletter.reply_to
    msg["Subject"] = issue.subject
    msg["List-Id"] = f"{newsletter.name} <{newsletter.slug}.{list_domain}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = f'multipart/alternative; boundary="{boundary}"'
    head = msg.as_bytes().split(b"\r\n\r\n", 1)[0]
    return head + CRLF


_URL_SLOTS = frozenset({"O", "U", "P"})
_QP_SAFE = re.compile(r"[!-<>-~]+")  # printable ASCII except "=": QP leaves it as it is
_MARKER = re.compile(r"(x[0-9a-f]{12})([LNOUPV])(\d*)Z")


class _Builder:
    """Splits rendered parts at their markers into pre-encoded pieces and slots."""

    def __init__(
        self, issue: IssueData, variant: CompiledVariant, settings: RenderSettings, tracked: bool
    ) -> None:
        self.issue, self.variant, self.settings = issue, variant, settings
        mode = issue.newsletter.tracking_mode if tracked else "off"
        self.mode = mode
        self.links = {link.position: link for link in variant.links}
        self.slots: list[tuple[str, str]] = []
        self.slot_index: dict[tuple[str, str], int] = {}
        self.pieces: list[bytes | int] = []
        self.used_links: set[int] = set()
        self.tracked = tracked

    def slot(self, name: str, context: str) -> int:
        key = (name, context)
        if key not in self.slot_index:
            self.slot_index[key] = len(self.slots)
            self.slots.append(key)
        return self.slot_index[key]

    def static_value(self, kind: str, arg: str) -> str | None:  # noqa: PLR0911 - one per kind
        """The value when it is the same for every recipient, else None (a slot)."""
        settings, issue_id = self.settings, self.issue.id
        if kind == "V":
            return settings.view_online_url
        if kind == "L":
            position = int(arg)
            if self.mode == "individual":
                return None
            if self.mode == "anonymous":  # counted per issue: one URL for everyone
                return (
                    f"{settings.base_url}/c/{settings.signer.issue_link_token(issue_id, position)}"
                )
            return resolve(self.links[position], settings)
        if kind == "O":
            if self.mode == "anonymous":
                token = settings.signer.issue_open_token(issue_id)
                return f"{settings.base_url}/o/{token}.gif"
            return None if self.mode == "individual" else ""
        return None

    def add_part(self, source: str, context: str) -> None:
        escape = context == HTML_QP
        position = 0
        buffer: list[str] = []
        for match in _MARKER.finditer(source):
            if match.group(1) != self.variant.nonce:
                continue
            buffer.append(source[position : match.start()])
            position = match.end()
            kind, arg = match.group(2), match.group(3)
            static = self.static_value(kind, arg)
            if static is not None:
                buffer.append(html.escape(static) if escape else static)
                continue
            if kind == "L":
                self.used_links.add(int(arg))
            self.pieces.append(_qp("".join(buffer)))
            buffer = []
            self.pieces.append(self.slot(kind + arg, context))
        buffer.append(source[position:])
        self.pieces.append(_qp("".join(buffer)))

    def build(self) -> MessageTemplate:
        boundary = "=_lettrine_" + secrets.token_hex(12)  # "=_" never occurs in QP text
        self.pieces.append(_static_headers(self.issue, boundary, self.settings.list_domain))
        for header in ("To", "Date", "Message-ID", "List-Unsubscribe"):
            self.pieces += [f"{header}: ".encode(), self.slot(header, HEADER), CRLF]
        self.pieces.append(CRLF)
        head = (
            'Content-Type: text/{}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self.pieces.append(f"--{boundary}\r\n{head.format('plain')}".encode())
        self.add_part(self.variant.text, TEXT_QP)
        self.pieces.append(f"\r\n--{boundary}\r\n{head.format('html')}".encode())
        self.add_part(self.variant.html, HTML_QP)
        self.pieces.append(f"\r\n--{boundary}--\r\n".encode())

        merged: list[bytes | int] = []
        for piece in self.pieces:  # join neighbouring bytes: fewer pieces, faster fill
            if isinstance(piece, bytes) and merged and isinstance(merged[-1], bytes):
                merged[-1] += piece
            else:
                merged.append(piece)
        return MessageTemplate(
            pieces=tuple(merged),
            slots=tuple(self.slots),
            link_positions=tuple(sorted(self.used_links)),
            html_size=len(self.variant.html.encode()),
        )


def build_template(
    issue: IssueData, variant: CompiledVariant, settings: RenderSettings, *, tracked: bool = True
) -> MessageTemplate:
    """Pre-encode a compiled variant. ``tracked=False`` (test sends): no tracking at all."""
    return _Builder(issue, variant, settings, tracked).build()


class Personaliser:
    """Fills a template for one recipient after another: the per-message hot path."""

    def __init__(
        self,
        issue: IssueData,
        template: MessageTemplate,
        settings: RenderSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issue_id = issue.id
        self.template = template
        self.settings = settings
        self.clock = clock
        self._date_second = -1
        self._date = ""
        self._link_count = max(template.link_positions, default=-1) + 1
        local, _, domain = settings.unsubscribe_mailbox.partition("@")
        self._mailto = (local, domain)
        names = {name for name, _ in template.slots}
        self._links = [p for p in template.link_positions if f"L{p}" in names]
        # A tracked URL is the base plus /c/ and a 20-character base64url token: when that
        # fits on one QP line and the base has no "=", it needs no encoding at all.
        # The longest is the pixel: base + "/o/" + 20 + ".gif", then the soft break "=".
        self._qp_url = len(settings.base_url) + 28 <= 76 and bool(
            _QP_SAFE.fullmatch(settings.base_url)
        )

    def _date_header(self) -> str:
        now = self.clock()
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date = email.utils.formatdate(now).replace("-0000", "+0000")
        return self._date

    def values(self, recipient: Recipient) -> dict[str, str]:
        check_header_value("Adresse du destinataire", recipient.email)
        if not recipient.email.isascii():
            raise HeaderInjectionError("Adresse du destinataire non ASCII : non prise en charge.")
        base = self.settings.base_url
        delivery_id = recipient.delivery_id
        open_token, unsub_token, prefs_token = self.settings.signer.system_tokens(delivery_id)
        # No line breaks or control characters from imported data, in any header.
        name = " ".join(HEADER_BREAKING.sub(" ", recipient.display_name).split())
        local, domain = self._mailto
        unsubscribe = f"{base}/u/{unsub_token}"
        values = {
            "To": f"{_encoded_word_name(name)} <{recipient.email}>" if name else recipient.email,
            "Date": self._date_header(),
            "Message-ID": f"<{self.issue_id}.{delivery_id}@{self.settings.list_domain}>",
            "List-Unsubscribe": f"<{unsubscribe}>, <mailto:{local}+{unsub_token}@{domain}>",
            "N": f"Bonjour {name}," if name else "Bonjour,",
            "O": f"{base}/o/{open_token}.gif",
            "U": unsubscribe,
            "P": f"{base}/p/{prefs_token}",
        }
        if self._links:
            tokens = self.settings.signer.link_tokens(delivery_id, self._link_count)
            for position in self._links:
                values[f"L{position}"] = f"{base}/c/{tokens[position]}"
        return values

    def render(self, recipient: Recipient) -> bytes:
        values = self.values(recipient)
        encoded: dict[tuple[str, str], bytes] = {}
        qp_url = self._qp_url
        for key in self.template.slots:
            name, context = key
            raw = values[name]
            if context == HEADER:
                encoded[key] = raw.encode("ascii")
            elif name in _URL_SLOTS or name[0] == "L":
                # Our own URLs: the same bytes in both parts, QP-safe by construction.
                encoded[key] = (raw + "=\r\n").encode("ascii") if qp_url else _qp_value(raw)
            elif context == HTML_QP:
                encoded[key] = _qp_value(html.escape(raw))
            else:
                encoded[key] = _qp_value(raw)
        slots = [encoded[key] for key in self.template.slots]
        return b"".join(
            [p if p.__class__ is bytes else slots[p] for p in self.template.pieces]  # type: ignore[index]
        )
