"""Role checks: every view declares who may call it, and a test walks the URL map
to prove none was forgotten."""

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort
from flask_login import current_user

from service.accounts.models import Role
from service.extensions import login_manager

F = TypeVar("F", bound=Callable[..., Any])

ALL_STAFF = frozenset(Role)
# Marker for pages anyone may reach (login, public subscription pages, tracking).
PUBLIC: frozenset[Role] = frozenset()


def roles_required(*roles: Role) -> Callable[[F], F]:
    allowed = frozenset(roles)

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        wrapped.allowed_roles = allowed  # type: ignore[attr-defined]
        return cast(F, wrapped)

    return decorator


def staff_required(view: F) -> F:
    return roles_required(*ALL_STAFF)(view)


def public(view: F) -> F:
    view.allowed_roles = PUBLIC  # type: ignore[attr-defined]
    return view
