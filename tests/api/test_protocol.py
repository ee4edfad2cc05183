"""Cross-cutting HTTP behaviour: body limit (413), bearer auth (401), Redis down (503), health, OpenAPI."""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from tests.api.conftest import MAX_BODY
from tickr.api import create_app
from tickr.app import App
from tickr.config import Settings
from tickr.runtime.embedded import EmbeddedValkey

JOBS = "/api/v1/jobs"


def big_body(size: int) -> bytes:
    return b'{"type": "noop", "payload": {"blob": "' + b"x" * size + b'"}}'


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post(JOBS, content=big_body(MAX_BODY), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 413
    ok = await client.post(JOBS, content=big_body(MAX_BODY - 100), headers={"content-type": "application/json"})
    assert ok.status_code == 201


async def test_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        body = big_body(MAX_BODY)
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    r = await client.post(JOBS, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413


async def test_small_chunked_body_is_accepted(client: httpx.AsyncClient, queue: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "noop", '
        yield f'"queue": "{queue}"}}'.encode()

    r = await client.post(JOBS, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text


@pytest.fixture
async def token_client(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    api = create_app(api_settings.model_copy(update={"api_token": SecretStr("s3cret-token")}))
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            yield http


async def test_token_required_except_for_health(token_client: httpx.AsyncClient, queue: str) -> None:
    body = {"type": "noop", "queue": queue}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret-token"}):
        r = await token_client.post(JOBS, json=body, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json"
    assert (await token_client.get("/api/v1/queues")).status_code == 401
    assert (await token_client.get("/openapi.json")).status_code == 401
    # unauthenticated bodies are refused before they are read, even invalid ones
    assert (
        await token_client.post(JOBS, content=b"{", headers={"content-type": "application/json"})
    ).status_code == 401

    auth = {"Authorization": "Bearer s3cret-token"}
    assert (await token_client.post(JOBS, json=body, headers=auth)).status_code == 201
    assert (await token_client.get("/health")).status_code == 200
    assert (await token_client.get("/api/v1/health")).status_code == 200

    doc = (await token_client.get("/openapi.json", headers=auth)).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert "401" in doc["paths"]["/api/v1/jobs"]["post"]["responses"]


async def test_health(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/v1/health"):
        r = await client.get(path)
        assert r.status_code == 200
        body = r.json()
        assert (body["status"], body["redis"]) == ("ok", "ok")
        assert body["version"] == importlib.metadata.version("tickr")
        assert body["uptime_seconds"] >= 0


async def test_openapi_document(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["info"]["title"] == "tickr"
    paths = set(doc["paths"])
    assert {
        "/api/v1/jobs",
        "/api/v1/jobs/batch",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/jobs/{job_id}/retry",
        "/api/v1/queues",
        "/api/v1/queues/{queue}",
        "/api/v1/queues/{queue}/pause",
        "/api/v1/queues/{queue}/resume",
        "/api/v1/queues/{queue}/dead",
        "/api/v1/queues/{queue}/dead/retry",
        "/api/v1/workers",
        "/health",
        "/api/v1/health",
        "/queue/stats",
        "/tasks",
    } <= paths
    assert "security" not in doc
    assert (await client.get("/docs")).status_code == 200


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.put(JOBS)
    assert r.status_code == 405
    assert r.headers["content-type"] == "application/problem+json"


@pytest.fixture
def private_valkey(tmp_path: Path) -> EmbeddedValkey:
    server = EmbeddedValkey(tmp_path / "valkey", persistent=False)
    try:
        server.start()
    except Exception as exc:
        pytest.skip(f"embedded Valkey did not start: {exc}")
    return server


async def test_redis_down_is_503_never_500(private_valkey: EmbeddedValkey, tmp_path: Path) -> None:
    api: FastAPI = create_app(Settings(redis_url=private_valkey.url, data_dir=tmp_path))
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test", timeout=60) as http:
            created = await http.post(JOBS, json={"type": "noop"})
            assert created.status_code == 201
            private_valkey.stop()

            health = await http.get("/health")
            assert health.status_code == 503
            assert (health.json()["status"], health.json()["redis"]) == ("unavailable", "unavailable")
            for method, path in (
                ("POST", JOBS),
                ("GET", f"{JOBS}/{created.json()['id']}"),
                ("GET", "/api/v1/queues"),
                ("GET", "/queue/stats"),
            ):
                r = await http.request(method, path, json={"type": "noop"} if method == "POST" else None)
                assert r.status_code == 503, (path, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["type"].endswith("store-unavailable")


async def test_no_redis_configured_is_503(tmp_path: Path) -> None:
    api = create_app(Settings(redis_url=None, data_dir=tmp_path))
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            assert (await http.get("/health")).status_code == 503
            assert (await http.get("/api/v1/queues")).status_code == 503


async def test_a_given_app_is_used_and_left_open(api_settings: Settings, queue: str) -> None:
    tickr = App(settings=api_settings)
    api = create_app(api_settings, tickr)
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            job = (await http.post(JOBS, json={"type": "noop", "queue": queue})).json()
    assert (await tickr.get_job(job["id"])).id == job["id"]  # still connected after the API's shutdown
    await tickr.close()


async def test_health_reports_the_history_lag(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/health")).json()
    assert body["status"] == "ok"
    assert set(body["history"]) == {"lag_seconds", "backlog", "pending", "dropped", "sink_seen"}
    assert body["history"]["lag_seconds"] >= 0
