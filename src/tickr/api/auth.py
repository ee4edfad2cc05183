"""Bearer-token authentication (pure ASGI): when a token is configured every route but health needs it.

A read-only token (``TICKR_API_READ_TOKEN``) may only read; the dashboard's session cookie stands for either,
on the dashboard's pages only.
"""

from __future__ import annotations

import hmac

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from tickr.api.problems import PROBLEM_JSON, problem_body
from tickr.dashboard import PREFIX as DASHBOARD
from tickr.dashboard.security import ROLE_KEY, SESSION_COOKIE, Role, session_role

PUBLIC_PATHS = frozenset({"/health", "/api/v1/health", "/", f"{DASHBOARD}/login"})
PUBLIC_PREFIXES = (f"{DASHBOARD}/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_matches(header: str | None, token: str) -> bool:
    """True when ``header`` is ``Bearer <token>`` (constant-time comparison)."""
    if not header:
        return False
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


class BearerAuth:
    """Answers 401 (problem+json, ``WWW-Authenticate: Bearer``) to requests without the right token."""

    def __init__(
        self, app: ASGIApp, token: str, public: frozenset[str] = PUBLIC_PATHS, read_token: str | None = None
    ) -> None:
        self.app = app
        self.token = token
        self.public = public
        self.read_token = read_token

    def role(self, header: str | None, scope: Scope) -> Role | None:
        """Admin for the token, read for the read-only token. A dashboard session cookie counts as its token on
        the dashboard's own pages only, whose forms carry a CSRF token: the API's routes check none, so there a
        cookie (which a browser sends by itself) must not authorise anything."""
        if token_matches(header, self.token):
            return Role.ADMIN
        if self.read_token and token_matches(header, self.read_token):
            return Role.READ
        if not scope.get("path", "").startswith(DASHBOARD):
            return None
        cookies = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"cookie"), "")
        return session_role(cookie_parser(cookies).get(SESSION_COOKIE), self.token, self.read_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] not in ("http", "websocket") or path in self.public or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        role = self.role(header, scope)
        if role is Role.READ and scope.get("method", "GET") not in SAFE_METHODS and path != f"{DASHBOARD}/logout":
            await _refuse(send, 403, problem_body(403, "the read-only token cannot change anything", slug="forbidden"))
            return
        if role is not None:
            scope.setdefault("state", {})[ROLE_KEY] = role
            await self.app(scope, receive, send)
            return
        if path.startswith(DASHBOARD) and scope.get("method") == "GET" and scope["type"] == "http":
            await send({"type": "http.response.start", "status": 303, "headers": [(b"location", b"/dashboard/login")]})
            await send({"type": "http.response.body", "body": b""})
            return
        detail = "a bearer token is required" if not header else "the bearer token is not valid"
        body = problem_body(401, detail, slug="unauthorized")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="tickr"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
