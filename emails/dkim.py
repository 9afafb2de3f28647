"""DKIM signing (RFC 6376) on the hot path, with OpenSSL through ``cryptography``.

dkimpy's pure-Python RSA costs ~10 ms a message (DESIGN.md §9); here a
signature is one OpenSSL RSA operation (~0.7 ms) plus a SHA-256 of the body.
Our messages have CRLF lines and no trailing blank lines, so "simple" body
canonicalisation is the body itself; headers use "relaxed". Tests verify the
signatures with dkimpy.
"""

import base64
import hashlib
import re
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
)

_WSP = re.compile(rb"[ \t]+")


class DkimSigner:
    def __init__(self, domain: str, selector: str, private_key_pem: bytes) -> None:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("DKIM key must be an RSA private key")
        self.key = key
        self.domain = domain
        self.selector = selector

    def sign(self, message: bytes, now: float | None = None) -> bytes:
        """Return ``message`` with a DKIM-Signature header in front."""
        head, _, body = message.partition(b"\r\n\r\n")
        body_hash = base64.b64encode(hashlib.sha256(_simple_body(body)).digest()).decode()
        headers = _parse_headers(head)
        present = [name for name in SIGNED_HEADERS if name.lower() in headers]
        timestamp = int(now if now is not None else time.time())
        # Over-signing (RFC 6376 §8.15): every header is named once more than it occurs,
        # so nobody can add a second Subject, or a Reply-To, without breaking the signature.
        names = ":".join([*present, *SIGNED_HEADERS])
        value = (
            f"v=1; a=rsa-sha256; c=relaxed/simple; d={self.domain}; s={self.selector}; "
            f"t={timestamp}; h={names}; bh={body_hash}; b="
        )
        signed = b"".join(_relaxed(name, headers[name.lower()]) + b"\r\n" for name in present)
        signed += _relaxed("DKIM-Signature", value.encode())
        signature = self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        b64 = base64.b64encode(signature).decode()
        folded = "\r\n\t".join(b64[i : i + 72] for i in range(0, len(b64), 72))
        return f"DKIM-Signature: {value}\r\n\t{folded}\r\n".encode() + message


def _simple_body(body: bytes) -> bytes:
    stripped = body.rstrip(b"\r\n")
    return stripped + b"\r\n"


def _parse_headers(head: bytes) -> dict[str, bytes]:
    """Last occurrence of each header, unfolded value (RFC 6376 §5.4.2 signs the last)."""
    found: dict[str, bytes] = {}
    name = None
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and name is not None:
            found[name] += b"\r\n" + line
        else:
            raw_name, _, value = line.partition(b":")
            name = raw_name.decode("ascii").strip().lower()
            found[name] = value
    return found


def _relaxed(name: str, value: bytes) -> bytes:
    unfolded = value.replace(b"\r\n", b"")
    return name.lower().encode() + b":" + _WSP.sub(b" ", unfolded).strip()


def public_key_record(private_key_pem: bytes) -> str:
    """The TXT record to publish at ``selector._domainkey.domain``."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


__all__: Sequence[str] = ["SIGNED_HEADERS", "DkimSigner", "public_key_record"]
