"""Account use cases: passwords, logins, and the administration of accounts.

Each use case commits once (or rolls back and raises an ``AccountError`` that the
view turns into a French message); the audit entry is part of the same commit.

Argon2id with argon2-cffi's default parameters (RFC 9106 "low memory"
profile); hashes carry their own parameters, so raising them later only needs
a rehash on the next successful login.
"""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.accounts.models import UNUSABLE_PASSWORD_PREFIX, Role, User
from service.accounts.tokens import InvalidTokenError, Purpose, TokenClaims, password_fingerprint
from service.audit.services import record
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

    Unknown address, disabled account, pending invitation and wrong password
    look the same to the caller, and cost the same time.
    """
    user = session.scalars(select(User).where(User.email == normalise_email(email))).first()
    if user is None or not user.active or not user.has_usable_password:
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


# --- Administration of accounts ---------------------------------------------------------


class AccountError(Exception):
    """A use case refused to run; nothing was written."""


class NotAllowedError(AccountError):
    """The actor is no longer an active administrator."""


class UserNotFoundError(AccountError):
    pass


class EmailTakenError(AccountError):
    pass


class SelfChangeError(AccountError):
    """Administrators may not demote or deactivate themselves."""


class LastAdminError(AccountError):
    """The change would leave no active administrator."""


class NotInvitedError(AccountError):
    """Only active accounts still waiting for a password get an invitation."""


@contextmanager
def _use_case(session: Session) -> Iterator[None]:
    """Commit once at the end, or roll back everything if anything raised."""
    try:
        yield
    except BaseException:
        session.rollback()
        raise
    session.commit()


def unusable_password_hash() -> str:
    return UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(32)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.active.desc(), User.name, User.id)))


def _active_admins_locked(session: Session) -> list[User]:
    """Lock the active administrators' rows (in id order: no deadlock between two callers).

    Every change that could remove an administrator takes this lock first, so two
    administrators demoting each other at the same moment run one after the other,
    and the second sees that it would leave nobody. (SQLite ignores FOR UPDATE but
    serialises writers, and refuses a write based on a stale read.)
    """
    query = (
        select(User)
        .where(User.role == Role.ADMIN, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    )
    return list(session.scalars(query.execution_options(populate_existing=True)))


def _check_actor(admins: list[User], actor_id: int | None) -> None:
    # None: the command line or the system, trusted by construction.
    if actor_id is not None and all(admin.id != actor_id for admin in admins):
        raise NotAllowedError


def _target(session: Session, user_id: int) -> User:
    user = session.get(User, user_id, with_for_update=True, populate_existing=True)
    if user is None:
        raise UserNotFoundError
    return user


def invite_user(
    session: Session, *, actor_id: int | None, email: str, name: str, role: Role
) -> User:
    """Use case: open an account with no usable password; the invitation link sets it.

    The email itself is sent by the caller once this has committed.
    """
    with _use_case(session):
        _check_actor(_active_admins_locked(session), actor_id)
        address = normalise_email(email)
        if session.scalars(select(User.id).where(User.email == address)).first() is not None:
            raise EmailTakenError
        user = User(
            email=address, name=name.strip(), role=role, password_hash=unusable_password_hash()
        )
        session.add(user)
        try:
            session.flush()
        except IntegrityError:  # the same address invited at the same moment
            raise EmailTakenError from None
        record(
            session,
            actor_id,
            "user.invited",
            "user",
            user.id,
            {"email": address, "role": role.value},
        )
    return user


def resend_invitation(session: Session, *, actor_id: int | None, user_id: int) -> User:
    """Use case: record that the invitation is sent again (the caller sends it)."""
    with _use_case(session):
        _check_actor(_active_admins_locked(session), actor_id)
        user = _target(session, user_id)
        if not user.active or user.has_usable_password:
            raise NotInvitedError
        record(session, actor_id, "user.invitation_resent", "user", user.id, {})
    return user


def change_role(session: Session, *, actor_id: int | None, user_id: int, role: Role) -> User:
    with _use_case(session):
        admins = _active_admins_locked(session)
        _check_actor(admins, actor_id)
        user = _target(session, user_id)
        if user.role != role:
            if role != Role.ADMIN:
                if user.id == actor_id:
                    raise SelfChangeError
                if user in admins and len(admins) == 1:
                    raise LastAdminError
            previous, user.role = user.role, role
            record(
                session,
                actor_id,
                "user.role_changed",
                "user",
                user.id,
                {"from": previous.value, "to": role.value},
            )
    return user


def deactivate_user(session: Session, *, actor_id: int | None, user_id: int) -> User:
    """Use case: the account can no longer log in; open sessions end at the next request."""
    with _use_case(session):
        admins = _active_admins_locked(session)
        _check_actor(admins, actor_id)
        user = _target(session, user_id)
        if user.id == actor_id:
            raise SelfChangeError
        if user.active:
            if user in admins and len(admins) == 1:
                raise LastAdminError
            user.active = False
            record(session, actor_id, "user.deactivated", "user", user.id, {})
    return user


def reactivate_user(session: Session, *, actor_id: int | None, user_id: int) -> User:
    with _use_case(session):
        _check_actor(_active_admins_locked(session), actor_id)
        user = _target(session, user_id)
        if not user.active:
            user.active = True
            record(session, actor_id, "user.reactivated", "user", user.id, {})
    return user


# --- Invitations and password resets ---------------------------------------------------


def user_for_reset(session: Session, email: str) -> User | None:
    """The active account behind ``email``, if any. Reads only."""
    user = session.scalars(select(User).where(User.email == normalise_email(email))).first()
    return user if user is not None and user.active else None


def user_for_token(session: Session, claims: TokenClaims, *, lock: bool = False) -> User:
    """The account a checked token names, if the token is still good for it.

    Refused: a gone or deactivated account, and a password that changed since the
    link was made (the link was used, or a newer password was set another way).
    """
    user = session.get(User, claims.user_id, with_for_update=lock or None, populate_existing=lock)
    if (
        user is None
        or not user.active
        or not secrets.compare_digest(password_fingerprint(user.password_hash), claims.fingerprint)
    ):
        raise InvalidTokenError
    return user


def set_password_with_token(session: Session, claims: TokenClaims, password: str) -> User:
    """Use case: the owner of a good link chooses a password; the link is then spent.

    The row is locked and the fingerprint checked again, so of two submissions of
    the same link only the first one sets a password.
    """
    with _use_case(session):
        user = user_for_token(session, claims, lock=True)
        user.password_hash = hash_password(password)
        user.last_login_at = utcnow()  # the caller logs them in
        via = "invitation" if claims.purpose is Purpose.INVITE else "reset"
        record(session, user.id, "user.password_set", "user", user.id, {"via": via})
    return user
