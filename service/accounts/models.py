import datetime as dt
import enum
import hashlib

from sqlalchemy import Boolean, String, true
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, created_at, enum_column, intpk, str120

# A password hash that no password matches: invited accounts hold one until their
# owner chooses a password. argon2 refuses to decode it, so it never verifies; the
# random part makes the invitation link's fingerprint unguessable and unique.
UNUSABLE_PASSWORD_PREFIX = "!"  # noqa: S105 - a marker, not a password


class Role(enum.StrEnum):
    ADMIN = "admin"
    PUBLISHER = "publisher"
    EDITOR = "editor"
    ANALYST = "analyst"


class User(Base):
    __tablename__ = "users"

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str120]
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(enum_column(Role, "role"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[created_at]
    last_login_at: Mapped[dt.datetime | None]

    @property
    def has_usable_password(self) -> bool:
        """False while an invitation is pending: no password has been chosen yet."""
        return not self.password_hash.startswith(UNUSABLE_PASSWORD_PREFIX)

    # Flask-Login protocol
    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        # The session names the password too: a new password ends every other session.
        fingerprint = hashlib.sha256(self.password_hash.encode()).hexdigest()[:16]
        return f"{self.id}:{fingerprint}"
