"""Bearer-token authentication (pure ASGI): when a token is configured every route but health needs it."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from tickr.api.problems import PROBLEM_JSON, problem_body

PUBLIC_PATHS = frozenset({"/health", "/api/v1/health"})


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

    def __init__(self, app: ASGIApp, token: str, public: frozenset[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self.token = token
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        if token_matches(header, self.token):
            await self.app(scope, receive, send)
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
