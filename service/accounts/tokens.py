"""Signed links that let someone choose a password: invitations and resets.

A token names the user and carries a fingerprint of their current password
hash. Setting a password changes the hash (argon2 salts every hash), so a link
works once: afterwards its fingerprint no longer matches. Tokens are signed, not
encrypted; the fingerprint is a digest, so the hash itself never leaves the server.
Each purpose has its own salt, so an invitation can never be replayed as a reset
(or the other way round), and its own lifetime, checked when the token is read.
"""

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(enum.StrEnum):
    INVITE = "invite"
    RESET = "reset"


SALTS = {
    Purpose.INVITE: "lettrine.accounts.invite",
    Purpose.RESET: "lettrine.accounts.password-reset",
}
MAX_AGE = {
    Purpose.INVITE: dt.timedelta(days=7),
    Purpose.RESET: dt.timedelta(hours=1),
}


class InvalidTokenError(Exception):
    """The link is unusable: tampered with, expired, already used or for a gone account.

    ``expired`` is set when the signature was good but too old (for logs and
    tests; the page says the same thing either way)."""

    def __init__(self, *, expired: bool = False) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@dataclass(frozen=True)
class TokenClaims:
    purpose: Purpose
    user_id: int
    fingerprint: str


def password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def serializer(secret_key: str, purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALTS[purpose])


def make_token(secret_key: str, purpose: Purpose, user_id: int, password_hash: str) -> str:
    return serializer(secret_key, purpose).dumps([user_id, password_fingerprint(password_hash)])


def read_token(secret_key: str, token: str) -> TokenClaims:
    """Check the signature and age of ``token`` for each purpose in turn.

    Only the signature and the age are checked here; whether the fingerprint
    still matches the account is for the caller, which holds the database.
    """
    expired = False
    for purpose in Purpose:
        try:
            payload = serializer(secret_key, purpose).loads(
                token, max_age=int(MAX_AGE[purpose].total_seconds())
            )
        except SignatureExpired:
            expired = True
            continue
        except BadSignature:
            continue
        match payload:
            case [int() as user_id, str() as fingerprint] if not isinstance(user_id, bool):
                return TokenClaims(purpose, user_id, fingerprint)
            case _:
                raise InvalidTokenError
    raise InvalidTokenError(expired=expired)
