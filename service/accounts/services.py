"""Account use cases: password hashing and address normalisation.

Argon2id with argon2-cffi's default parameters (RFC 9106 "low memory"
profile); hashes carry their own parameters, so raising them later only needs
a rehash on the next successful login.
"""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.models import Role, User
from service.db import utcnow

# One hasher for the process: it holds only the parameters, no state.
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Return an encoded argon2id hash (salt and parameters included)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Tell whether ``password`` matches ``password_hash``.

    A wrong password, a corrupted hash or a string that is not an argon2 hash
    at all are all just "no": a login form must never turn them into a 500.
    ``VerificationError`` is the parent of ``VerifyMismatchError`` and also
    covers hashes that fail to decode.
    """
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(addr: str) -> str:
    """Trim and lower-case the whole address.

    RFC 5321 lets the local part be case-sensitive, but no mailbox provider
    our audiences use treats it so, while people do type ``Jean.Dupont@`` one
    day and ``jean.dupont@`` the next. Lower-casing everything means one
    person is one subscriber (the unique constraint holds), one suppression
    HMAC and one unsubscribe, which matters more than the theoretical case of
    two mailboxes differing only by case.
    """
    return addr.strip().lower()


# A real hash to check against when the address is unknown, so that a login
# attempt takes as long whether or not the account exists.
_DUMMY_HASH = _hasher.hash("lettrine-timing-equaliser")


def authenticate(session: Session, email: str, password: str) -> User | None:
    """Use case: check a login. Returns the user, or None for any failure.

    Unknown address, disabled account and wrong password look the same to the
    caller, and cost the same time.
    """
    user = session.scalars(select(User).where(User.email == normalise_email(email))).first()
    if user is None or not user.active:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    session.commit()
    return user


def create_user(session: Session, *, email: str, name: str, role: Role, password: str) -> User:
    """Use case: add a back-office account."""
    user = User(
        email=normalise_email(email), name=name, role=role, password_hash=hash_password(password)
    )
    session.add(user)
    session.commit()
    return user
