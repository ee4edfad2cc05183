"""The FastAPI application factory: routers, problem+json errors, body limit, bearer auth, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tickr.api import problems
from tickr.api.auth import PUBLIC_PATHS, BearerAuth
from tickr.api.deps import ApiState
from tickr.api.limits import BodyLimit
from tickr.api.routes import jobs, queues, recurring, system
from tickr.app import App
from tickr.config import Settings

API_PREFIX = "/api/v1"
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

    api = FastAPI(title="tickr", version=system.tickr_version(), description=DESCRIPTION, lifespan=lifespan)
    api.state.tickr = state
    problems.install(api)
    api.include_router(system.health_router)
    for router in (jobs.router, recurring.router, queues.router, system.router):
        api.include_router(router, prefix=API_PREFIX)
    api.include_router(jobs.legacy)
    api.include_router(queues.legacy)
    # Added last = outermost: authentication runs before the body is read.
    api.add_middleware(BodyLimit, max_bytes=settings.max_payload_bytes)
    if settings.api_token:
        api.add_middleware(BearerAuth, token=settings.api_token.get_secret_value())
        _document_bearer_auth(api)
    return api


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
