"""Signed, compact tokens for tracked links, the open pixel, unsubscribe and
preferences links.

Per-recipient personalisation must stay in microseconds (DESIGN.md §9), so a
recipient's tags come from one SHAKE-256 call keyed by the secret: link ``p``
of delivery ``d`` gets bytes ``[6p, 6p+6)`` of ``SHAKE256(key ‖ "L" ‖ d)``.
SHAKE-256 with a secret prefix is a PRF (no length extension, unlike SHA-2),
so a tag cannot be forged or moved to another delivery or link; 48-bit tags
are plenty against online guessing, where each guess is an HTTP request.

A token is 20 base64url characters: kind (1 byte) ‖ id (6) ‖ position (2) ‖ tag (6).
"""

import base64
import binascii
import hashlib
import hmac
from typing import Literal, NamedTuple

TAG = 6
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
# Kinds: a link of one delivery, a link of an issue (anonymous tracking), and the
# per-delivery system tokens.
DELIVERY_LINK, ISSUE_LINK, OPEN, UNSUBSCRIBE, PREFERENCES = b"d", b"i", b"o", b"u", b"p"
ISSUE_OPEN = b"a"  # the open pixel of an anonymously tracked issue
BOUNCE = b"b"  # the envelope sender of a delivery: bounces come back naming it
# Links per issue we ever sign; verifying costs a hash of 6 bytes per position, so a
# forged token naming position 65535 must be refused before hashing.
MAX_LINKS = 4096
SYSTEM_KINDS = (OPEN, UNSUBSCRIBE, PREFERENCES)

TokenKind = Literal[
    "delivery_link", "issue_link", "open", "unsubscribe", "preferences", "issue_open", "bounce"
]
_NAMES: dict[bytes, TokenKind] = {
    DELIVERY_LINK: "delivery_link",
    ISSUE_LINK: "issue_link",
    OPEN: "open",
    UNSUBSCRIBE: "unsubscribe",
    PREFERENCES: "preferences",
    ISSUE_OPEN: "issue_open",
    BOUNCE: "bounce",
}


class Token(NamedTuple):
    kind: TokenKind
    id: int  # a delivery id, or an issue id for issue_link
    position: int  # link position in the issue (0 for system tokens)


class TokenSigner:
    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        # SHAKE-256 already fed with the key: each stream copies it (cheaper than a new
        # hash object, which OpenSSL 3 looks up again each time) and adds domain and id.
        self._keyed = hashlib.shake_256(hashlib.sha256(b"lettrine-tokens\x00" + raw).digest())

    def _stream(self, domain: bytes, ident: int, length: int) -> bytes:
        stream = self._keyed.copy()
        stream.update(domain + ident.to_bytes(6, "big"))
        return stream.digest(length)

    @staticmethod
    def _encode(kind: bytes, ident: int, position: int, tag: bytes) -> str:
        raw = kind + ident.to_bytes(6, "big") + position.to_bytes(2, "big") + tag
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def link_tokens(self, delivery_id: int, count: int) -> list[str]:
        """Tokens for links 0..count-1 of one delivery, from one hash call."""
        stream = self._stream(b"L", delivery_id, count * TAG)
        prefix = DELIVERY_LINK + delivery_id.to_bytes(6, "big")
        b64, urlsafe = binascii.b2a_base64, _URLSAFE
        return [
            b64(prefix + p.to_bytes(2, "big") + stream[p * TAG : p * TAG + TAG], newline=False)
            .translate(urlsafe)
            .decode("ascii")
            for p in range(count)
        ]

    def issue_link_token(self, issue_id: int, position: int) -> str:
        stream = self._stream(b"I", issue_id, (position + 1) * TAG)
        return self._encode(ISSUE_LINK, issue_id, position, stream[position * TAG :])

    def bounce_token(self, delivery_id: int) -> str:
        return self._encode(BOUNCE, delivery_id, 0, self._stream(b"B", delivery_id, TAG))

    def issue_open_token(self, issue_id: int) -> str:
        return self._encode(ISSUE_OPEN, issue_id, 0, self._stream(b"A", issue_id, TAG))

    def system_tokens(self, delivery_id: int) -> tuple[str, str, str]:
        """(open, unsubscribe, preferences) tokens of one delivery."""
        stream = self._stream(b"S", delivery_id, len(SYSTEM_KINDS) * TAG)
        open_, unsub, prefs = (
            self._encode(kind, delivery_id, 0, stream[i * TAG : i * TAG + TAG])
            for i, kind in enumerate(SYSTEM_KINDS)
        )
        return open_, unsub, prefs

    def verify(self, token: str) -> Token | None:
        """The token's meaning, or None if it was not made by us (tampered, truncated…)."""
        if len(token) != 20:
            return None
        try:  # what base64.urlsafe_b64decode does, in one call (this is on every hit)
            raw = binascii.a2b_base64(token.encode("ascii").translate(_FROM_URLSAFE))
        except (binascii.Error, UnicodeEncodeError):
            return None
        kind, ident = raw[:1], int.from_bytes(raw[1:7], "big")
        position, tag = int.from_bytes(raw[7:9], "big"), raw[9:]
        if position >= MAX_LINKS:
            return None
        if kind == ISSUE_OPEN and position == 0:
            expected = self._stream(b"A", ident, TAG)
        elif kind == BOUNCE and position == 0:
            expected = self._stream(b"B", ident, TAG)
        elif kind == DELIVERY_LINK:
            expected = self._stream(b"L", ident, (position + 1) * TAG)[position * TAG :]
        elif kind == ISSUE_LINK:
            expected = self._stream(b"I", ident, (position + 1) * TAG)[position * TAG :]
        elif kind in SYSTEM_KINDS and position == 0:
            index = SYSTEM_KINDS.index(kind)
            expected = self._stream(b"S", ident, len(SYSTEM_KINDS) * TAG)[
                index * TAG : index * TAG + TAG
            ]
        else:
            return None
        if not hmac.compare_digest(expected, tag):
            return None
        return Token(_NAMES[kind], ident, position)


def as_local_part(token: str) -> str:
    """A token for an address's local part: hex, since some servers change its case."""
    return base64.urlsafe_b64decode(token.encode("ascii")).hex()


def from_local_part(value: str) -> str | None:
    """The token back from ``as_local_part`` (None if it is not one)."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return base64.urlsafe_b64encode(raw).decode("ascii") if len(raw) == 15 else None
