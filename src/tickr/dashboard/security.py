"""Dashboard sessions and CSRF tokens: HMAC-derived values, so the cookie never carries the API token itself."""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

SESSION_COOKIE = "tickr_session"
ROLE_KEY = "tickr_role"  # key in the ASGI scope's ``state`` set by the API's auth middleware


class Role(StrEnum):
    ADMIN = "admin"  # may change things
    READ = "read"  # sees everything, changes nothing


def _sign(secret: str, purpose: str) -> str:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def session_value(token: str) -> str:
    """The cookie value that stands for ``token`` (a signature of it, not the token)."""
    return _sign(token, "tickr-dashboard-session")


def session_role(cookie: str | None, token: str, read_token: str | None) -> Role | None:
    """The role a session cookie grants, or None (constant-time comparisons)."""
    if not cookie:
        return None
    if hmac.compare_digest(cookie.encode(), session_value(token).encode()):
        return Role.ADMIN
    if read_token and hmac.compare_digest(cookie.encode(), session_value(read_token).encode()):
        return Role.READ
    return None


def csrf_token(secret: str, session: str | None) -> str:
    """The CSRF token of a session (tied to the cookie, so another session's token is refused)."""
    return _sign(secret, f"tickr-dashboard-csrf:{session or ''}")


def csrf_ok(secret: str, session: str | None, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(secret, session).encode(), str(presented).encode())
