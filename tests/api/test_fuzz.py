"""Property-based fuzzing from the served OpenAPI document: no generated request may cause a 5xx.

The API runs under uvicorn on a thread of its own, against a private embedded Valkey, so the
random queues and jobs the fuzzer makes never reach the shared Redis. Every operation is fuzzed with
generated ids; those addressing one job are fuzzed again on a recurring job that exists.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.checks import not_a_server_error

from tests.history.rows import create_sqlite_schema
from tests.waiting import wait_until_sync
from tickr.api import create_app, serve
from tickr.config import Settings
from tickr.runtime.embedded import EmbeddedValkey

MAX_EXAMPLES = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedApi:
    """``serve`` on a private event loop in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self._run, name="tickr-api-fuzz", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(serve(self.settings, None, self.stop))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def start(self) -> None:
        self.thread.start()

        def answers() -> bool:
            try:
                httpx.get(f"{self.base_url}/health", timeout=1)
            except httpx.TransportError:
                return False
            return True

        wait_until_sync(answers, timeout=15, message="the API to start")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=20)


@pytest.fixture(scope="module")
def fuzz_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseSchema]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    create_sqlite_schema(data_dir)  # the SQL history, so its routes answer rather than 503
    valkey = EmbeddedValkey(data_dir / "valkey", persistent=False)
    try:
        valkey.start()
    except Exception as exc:
        pytest.skip(f"embedded Valkey did not start: {exc}")
    api = ThreadedApi(Settings(redis_url=valkey.url, data_dir=data_dir, api_host="127.0.0.1", api_port=_free_port()))
    api.start()
    try:
        yield schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    finally:
        api.close()
        valkey.stop()


def _cases() -> list[Any]:
    """(METHOD, path, mode) for every operation of the API, read from the OpenAPI document (no server
    needed); invalid inputs only for operations that take any input."""
    document = create_app(Settings(redis_url=None)).openapi()
    out = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            out.append(pytest.param(method.upper(), path, GenerationMode.POSITIVE, id=f"{method.upper()} {path} valid"))
            if operation.get("parameters") or operation.get("requestBody"):
                mode = GenerationMode.NEGATIVE
                out.append(pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} invalid"))
    return out


@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_no_server_errors(fuzz_schema: BaseSchema, method: str, path: str, mode: GenerationMode) -> None:
    operation = fuzz_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Case) -> None:
        response = case.call(timeout=10)
        case.validate_response(response, checks=[not_a_server_error])

    fuzz()


RECURRING_OPERATIONS = [
    ("GET", "/api/v1/jobs/{job_id}"),
    ("PATCH", "/api/v1/jobs/{job_id}"),
    ("GET", "/api/v1/jobs/{job_id}/schedule"),
    ("GET", "/api/v1/jobs/{job_id}/history"),
    ("POST", "/api/v1/jobs/{job_id}/cancel"),
    ("DELETE", "/api/v1/jobs/{job_id}"),
]


@pytest.fixture(scope="module")
def recurring_id(fuzz_schema: BaseSchema) -> str:
    body = {"type": "noop", "cron": "*/5 * * * * *", "timezone": "Europe/Berlin", "queue": "fuzz-recurring"}
    base = httpx.URL(fuzz_schema.get_base_url())
    response = httpx.post(base.copy_with(path="/api/v1/jobs"), json=body, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [
        pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
        for method, path in RECURRING_OPERATIONS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ],
)
def test_no_server_errors_on_a_recurring_job(
    fuzz_schema: BaseSchema, recurring_id: str, method: str, path: str, mode: GenerationMode
) -> None:
    operation = fuzz_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Case) -> None:
        case.path_parameters = {**(case.path_parameters or {}), "job_id": recurring_id}
        response = case.call(timeout=10)
        case.validate_response(response, checks=[not_a_server_error])

    fuzz()
