"""Session values and CSRF tokens: derived from the token, never equal to it, tied to their session."""

from __future__ import annotations

from tickr.dashboard.security import Role, csrf_ok, csrf_token, session_role, session_value


def test_session_values_stand_for_their_token_only() -> None:
    admin, read = session_value("admin-token"), session_value("read-token")
    assert "admin-token" not in admin
    assert session_role(admin, "admin-token", "read-token") is Role.ADMIN
    assert session_role(read, "admin-token", "read-token") is Role.READ
    assert session_role(read, "admin-token", None) is None
    assert session_role("forged", "admin-token", "read-token") is None
    assert session_role(None, "admin-token", "read-token") is None


def test_csrf_token_is_bound_to_the_session() -> None:
    mine, theirs = session_value("a"), session_value("b")
    token = csrf_token("secret", mine)
    assert csrf_ok("secret", mine, token)
    assert not csrf_ok("secret", theirs, token)
    assert not csrf_ok("other-secret", mine, token)
    assert not csrf_ok("secret", mine, None)
    assert not csrf_ok("secret", mine, "")
