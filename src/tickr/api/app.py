"""The FastAPI application factory: routers, problem+json errors, body limit, bearer auth, offline docs, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tickr.api import problems
from tickr.api.auth import PUBLIC_PATHS, BearerAuth
from tickr.api.deps import ApiState
from tickr.api.limits import BodyLimit
from tickr.api.routes import jobs, queues, recurring, system, tasks
from tickr.app import App
from tickr.config import Settings
from tickr.dashboard import PREFIX as DASHBOARD
from tickr.dashboard import dashboard_router
from tickr.metrics.collector import QueueCollector, Snapshot
from tickr.metrics.exposition import CONTENT_TYPE, render

API_PREFIX = "/api/v1"
DOCS_ASSETS = "/docs/assets"  # Swagger UI and ReDoc scripts, styles and icon, served from the fastapi-offline package
DESCRIPTION = (
    "tickr's HTTP API: enqueue and inspect jobs, recurring (cron) jobs included, manage queues and the "
    "dead-letter queue, list workers. "
    "Request bodies accept snake_case or camelCase names. Errors are RFC 9457 `application/problem+json`."
)


def create_app(settings: Settings, app: App | None = None) -> FastAPI:
    """The API for ``settings``. Uses ``app`` when given (the caller closes it), else makes one
    ``tickr.App`` at startup and closes it at shutdown."""
    state = ApiState(settings, app)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            await state.close()

    api = FastAPI(
        title="tickr",
        version=system.tickr_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by _serve_docs, from local assets
        redoc_url=None,
    )
    api.state.tickr = state
    problems.install(api)
    _serve_docs(api)
    api.include_router(system.health_router)
    for router in (jobs.router, recurring.router, queues.router, tasks.router, system.router):
        api.include_router(router, prefix=API_PREFIX)
    api.include_router(jobs.legacy)
    api.include_router(queues.legacy)
    api.include_router(dashboard_router(settings))

    @api.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(DASHBOARD, status_code=307)

    if settings.metrics:
        _serve_metrics(api, state, settings)
    # Added last = outermost: authentication runs before the body is read.
    api.add_middleware(BodyLimit, max_bytes=settings.max_payload_bytes)
    if settings.api_token:
        public = PUBLIC_PATHS if settings.metrics_auth else PUBLIC_PATHS | {METRICS_PATH}
        read_token = settings.api_read_token.get_secret_value() if settings.api_read_token else None
        api.add_middleware(
            BearerAuth, token=settings.api_token.get_secret_value(), public=public, read_token=read_token
        )
        _document_bearer_auth(api)
    return api


METRICS_PATH = "/metrics"


def _serve_metrics(api: FastAPI, state: ApiState, settings: Settings) -> None:
    """``GET /metrics``: this process's counters (all of ``tickr up``'s, with its worker processes' files), and
    the queue gauges read from Redis now. Public unless ``TICKR_METRICS_AUTH`` (scrapers rarely hold a token)."""

    async def history_lag() -> float:
        return (await state.app.store.events.lag()).seconds

    collector = QueueCollector(lambda: state.app.store, history_lag=history_lag if settings.history else None)

    @api.get(METRICS_PATH, include_in_schema=False)
    async def metrics() -> Response:
        gauges = Snapshot(await collector.read())
        return Response(render(gauges, multiproc_dir=settings.metrics_dir), media_type=CONTENT_TYPE)


def _serve_docs(api: FastAPI) -> None:
    """Swagger UI at ``/docs`` and ReDoc at ``/redoc`` whose assets tickr serves itself (no CDN, no fonts
    service): the docs work with no internet. The assets sit under ``/docs`` and, like it, need the bearer
    token when one is set."""
    api.mount(DOCS_ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
    redirect_url = api.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @api.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{api.openapi_url}",
            title=f"{api.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        )

    @api.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @api.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_redoc_html(
            openapi_url=f"{root}{api.openapi_url}",
            title=f"{api.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def _root_path(request: Request) -> str:
    """The prefix a proxy mounts the API under (ASGI ``root_path``), as FastAPI's own docs routes use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _document_bearer_auth(api: FastAPI) -> None:
    """Declare the bearer scheme in the OpenAPI document: every operation but health needs it."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = get_openapi(title=api.title, version=api.version, description=api.description, routes=api.routes)
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
            "type": "http",
            "scheme": "bearer",
        }
        schema["security"] = [{"bearer": []}]
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if path in PUBLIC_PATHS:
                    operation["security"] = []
                else:
                    operation.setdefault("responses", {})["401"] = {
                        "description": "missing or wrong bearer token",
                        "content": {
                            "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}
                        },
                    }
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]
