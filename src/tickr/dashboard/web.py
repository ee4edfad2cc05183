"""What every dashboard route shares: templates, assets, roles, CSRF, rendering (HTML or live JSON regions)."""

from __future__ import annotations

import secrets
from typing import Any, cast
from urllib.parse import parse_qs, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from tickr.config import Settings
from tickr.core.errors import StoreUnavailable, TickrError
from tickr.dashboard import data
from tickr.dashboard.assets import load_assets
from tickr.dashboard.render import install_filters
from tickr.dashboard.security import ROLE_KEY, SESSION_COOKIE, Role, csrf_token

PREFIX = "/dashboard"
LIVE_HEADER = "x-tickr-live"
Context = dict[str, Any]


class Dashboard:
    """Templates, assets and the CSRF secret of one API process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        token = settings.api_token.get_secret_value() if settings.api_token else None
        read = settings.api_read_token.get_secret_value() if settings.api_read_token else None
        self.token, self.read_token = token, read
        self.secret = token or secrets.token_hex(32)
        self.assets = load_assets()
        self.env = Environment(
            loader=PackageLoader("tickr.dashboard", "templates"), autoescape=select_autoescape(), auto_reload=False
        )
        install_filters(self.env)
        self.env.globals["asset"] = self.asset_url

    def asset_url(self, name: str) -> str:
        return f"{PREFIX}/static/{self.assets[name].digest}/{name}"

    def role(self, request: Request) -> Role:
        """Set by the API's auth middleware when a token is configured; without one everybody is admin."""
        return cast(Role, request.scope.get("state", {}).get(ROLE_KEY, Role.ADMIN))

    def session(self, request: Request) -> str | None:
        return request.cookies.get(SESSION_COOKIE)

    def render(self, request: Request, template: str, ctx: Context, regions: tuple[str, ...] = ()) -> Response:
        """The page, or for a live refresh (``X-Tickr-Live``) ``{"ok": true, "regions": {id: html}}``."""
        ctx = {
            **ctx,
            "request": request,
            "prefix": PREFIX,
            "here": request.url.path,
            "can_write": self.role(request) is Role.ADMIN,
            "csrf": csrf_token(self.secret, self.session(request)),
            "auth_on": self.token is not None,
            "msg": request.query_params.get("msg", ""),
        }
        if request.headers.get(LIVE_HEADER):
            tpl = self.env.get_template(template)
            out = {name: "".join(tpl.blocks[name](tpl.new_context(ctx))) for name in regions}
            return JSONResponse({"ok": True, "regions": out}, headers={"Cache-Control": "no-store"})
        html = self.env.get_template(template).render(ctx)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def unavailable(self, request: Request, exc: TickrError) -> Response:
        """A banner page (503), or ``{"ok": false}`` to a live refresh, when Redis (or the history) is unreachable."""
        what = f"Redis cannot be reached: {exc}" if isinstance(exc, StoreUnavailable) else str(exc)
        if request.headers.get(LIVE_HEADER):
            return JSONResponse({"ok": False, "error": what}, headers={"Cache-Control": "no-store"})
        html = self.env.get_template("unavailable.html").render(prefix=PREFIX, store_error=what, asset=self.asset_url)
        return HTMLResponse(html, status_code=503, headers={"Cache-Control": "no-store"})


def backend(request: Request) -> data.Backend:
    return cast(data.Backend, request.app.state.tickr)


async def form_of(request: Request) -> dict[str, str]:
    body = (await request.body()).decode()
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def back(path: str, msg: str) -> RedirectResponse:
    sep = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{sep}{urlencode({'msg': msg})}", status_code=303)
