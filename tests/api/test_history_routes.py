"""The API's reads from the SQL history, on SQLite and PostgreSQL, beside a real Redis.

Rows are inserted into SQL directly, standing in for what the sink writes; the live side runs jobs
through Redis. Covers the fallback of ``GET /jobs/{id}``, ``GET /jobs?source=history`` with its filters,
the history of one-off and recurring jobs (runs older than Redis remembers), and 404/422/503.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import problem_fields
from tests.history.rows import history_database, insert_rows, job_row, run_row
from tickr.api import create_app
from tickr.app import App
from tickr.config import Settings
from tickr.core.factory import new_job
from tickr.core.schedule import FiredRun, FireRequest
from tickr.history.database import HistoryDB
from tickr.history.queries import HistoryQueries

JOBS = "/api/v1/jobs"
MINUTE = 60_000


@pytest.fixture(params=["sqlite", "postgresql"])
async def sql(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryDB]:
    async with history_database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
async def tickr_app(api_settings: Settings) -> AsyncIterator[App]:
    prefix = f"t{uuid.uuid4().hex[:12]}"  # schedules are global: a prefix of this test's own
    app = App(settings=api_settings, prefix=prefix)
    yield app
    keys = [key async for key in app.store.redis.scan_iter(match=f"{prefix}:*", count=1000)]
    for key in keys:  # one by one: the keys span slots
        await app.store.redis.delete(key)
    await app.close()


async def _client(settings: Settings, app: App, history: HistoryQueries | None) -> AsyncIterator[httpx.AsyncClient]:
    api = create_app(settings, app)
    if history is not None:
        api.state.tickr.history = history
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            yield http


@pytest.fixture
async def client(api_settings: Settings, tickr_app: App, sql: HistoryDB) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _client(api_settings, tickr_app, HistoryQueries(sql)):
        yield http


async def run_live(app: App, queue: str) -> dict[str, Any]:
    """Enqueue a job and run it through Redis the way a worker does (lease, ack): the live side."""
    job = new_job("noop", {"n": 1}, queue=queue)
    await app.store.enqueue(job)
    leased = await app.store.dequeue(queue, 1, "live-worker")
    [item] = leased.jobs
    assert await app.store.ack_many(queue, [(job.id, item.token, "null")]) == [True]
    return (await app.get_job(job.id)).to_dict()


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


# -- GET /jobs/{id} -------------------------------------------------------------------------------


async def test_a_job_gone_from_redis_is_read_from_sql(
    client: httpx.AsyncClient, sql: HistoryDB, tickr_app: App, queue: str
) -> None:
    live = await run_live(tickr_app, queue)
    gone = job_row(
        queue=queue,
        status="dead",
        attempt=4,
        error_type="IOError",
        error_message="disk full",
        created_at=1_800_000_000_000,
        started_at=1_800_000_000_100,
        finished_at=1_800_000_000_200,
    )
    await insert_rows(
        db=sql,
        job_rows=[gone, job_row(id=live["id"], queue=queue, status="queued")],
        run_rows=[
            run_row(
                gone["id"],
                4,
                queue=queue,
                outcome="failed",
                error_type="IOError",
                error_message="disk full",
                error_traceback="Traceback ...",
            )
        ],
    )
    r = await client.get(f"{JOBS}/{gone['id']}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["kind"], body["queue"], body["status"], body["attempt"]) == (
        gone["id"],
        "one_off",
        queue,
        "dead",
        4,
    )
    assert body["last_error"] == {"type": "IOError", "message": "disk full", "traceback": "Traceback ..."}
    assert body["finished_at"] == "2027-01-15T08:00:00.200Z" and body["finished_at_ms"] == 1_800_000_000_200
    # the same shape as a live job's
    from_redis = (await client.get(f"{JOBS}/{live['id']}")).json()
    assert set(body) == set(from_redis)
    assert from_redis["status"] == "succeeded"  # Redis wins while it has the job (SQL lags)
    assert (await client.get(f"{JOBS}/{gone['id']}", params={"queue": queue})).status_code == 200
    assert (await client.get(f"{JOBS}/{gone['id']}", params={"queue": "other"})).status_code == 404
    missing = is_problem(await client.get(f"{JOBS}/{uuid.uuid4()}"), 404)
    assert missing["type"] == "urn:tickr:problem:job-not-found"


# -- GET /jobs?source=history ---------------------------------------------------------------------


async def test_listing_from_history_with_filters_and_paging(
    client: httpx.AsyncClient, sql: HistoryDB, tickr_app: App, queue: str
) -> None:
    live = await run_live(tickr_app, queue)
    now = live["created_at"]
    rows = [
        job_row(
            id=f"h{n}",
            queue=queue,
            status="dead" if n % 2 else "succeeded",
            worker=f"w{n % 3}",
            created_at=now - n * MINUTE,
            schedule_id="nightly" if n < 3 else None,
            error_type="SMTPError" if n % 2 else None,
            error_message="550 mailbox_full" if n % 2 else None,
        )
        for n in range(1, 8)
    ]
    await insert_rows(sql, rows)

    async def listed(**params: Any) -> list[str]:
        r = await client.get(JOBS, params=params)
        assert r.status_code == 200, r.text
        return [job["id"] for job in r.json()["jobs"]]

    assert await listed(source="history", queue=queue) == [f"h{n}" for n in range(1, 8)]
    assert live["id"] in await listed(queue=queue)  # default: live, from Redis
    assert "h1" not in await listed(queue=queue)
    assert await listed(queue=queue, status="dead", source="history") == ["h1", "h3", "h5", "h7"]
    assert await listed(queue=queue, worker="w1") == ["h1", "h4", "h7"]  # a history-only filter selects SQL
    assert await listed(schedule_id="nightly", queue=queue) == ["h1", "h2"]
    assert await listed(queue=queue, error="MAILBOX_FULL") == ["h1", "h3", "h5", "h7"]
    assert await listed(queue=queue, error="mailbo_") == []  # "_" is literal, no wildcard
    assert await listed(queue=queue, since="2h") == [f"h{n}" for n in range(1, 8)]
    assert await listed(queue=queue, since=_rfc3339(now - 3 * MINUTE)) == ["h1", "h2", "h3"]
    assert await listed(queue=queue, until=_rfc3339(now - 6 * MINUTE)) == ["h7"]  # until is exclusive
    # relative times count back from the API's clock: 90 s ago falls between h1 and h2
    assert await listed(queue=queue, type="noop", source="history", since="1h", until="90s") == [
        f"h{n}" for n in range(2, 8)
    ]

    seen: list[str] = []
    params: dict[str, Any] = {"source": "history", "queue": queue, "limit": 3}
    while True:
        page = (await client.get(JOBS, params=params)).json()
        seen += [job["id"] for job in page["jobs"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == [f"h{n}" for n in range(1, 8)]
    one = (await client.get(JOBS, params={"source": "history", "queue": queue, "limit": 1})).json()["jobs"][0]
    assert set(one) == set((await client.get(f"{JOBS}/{live['id']}")).json())  # the same JobOut shape


def _rfc3339(ms: int) -> str:
    from tickr.api.views import rfc3339

    text = rfc3339(ms)
    assert text is not None
    return text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-01-02"}, "until"),
        ({"since": "5y"}, "since"),
        ({"source": "live", "worker": "w1"}, "worker"),
        ({"source": "live", "error": "boom"}, "error"),
        ({"kind": "recurring", "since": "1h"}, "since"),
        ({"kind": "recurring", "source": "history"}, "source"),
        ({"source": "history", "cursor": "not-a-cursor"}, "cursor"),
        ({"source": "archive"}, "source"),
        ({"error": ""}, "error"),
        ({"source": "history", "priority": "urgent"}, "priority"),
        ({"priority": "urgent"}, "priority"),
        ({"kind": "recurring", "priority": "low"}, "priority"),
        ({"source": "history", "order": "sideways"}, "order"),
        ({"source": "live", "order": "asc"}, "order"),
    ],
)
async def test_bad_listing_parameters_are_422(client: httpx.AsyncClient, params: dict[str, str], field: str) -> None:
    assert field in problem_fields(await client.get(JOBS, params=params))


async def test_listing_by_priority_and_oldest_first(
    client: httpx.AsyncClient, sql: HistoryDB, tickr_app: App, queue: str
) -> None:
    now = 1_800_000_000_000
    prios = ["low", "critical", "low", "high", "low", "low", "default"]
    await insert_rows(
        sql,
        [job_row(id=f"p{n}", queue=queue, priority=p, created_at=now + n // 2 * MINUTE) for n, p in enumerate(prios)],
    )

    async def pages(**params: Any) -> list[str]:
        seen: list[str] = []
        query: dict[str, Any] = {"source": "history", "queue": queue, "limit": 2, **params}
        while True:
            r = await client.get(JOBS, params=query)
            assert r.status_code == 200, r.text
            seen += [job["id"] for job in r.json()["jobs"]]
            if r.json()["next_cursor"] is None:
                return seen
            query["cursor"] = r.json()["next_cursor"]

    assert await pages() == ["p6", "p5", "p4", "p3", "p2", "p1", "p0"]
    assert await pages(order="desc") == ["p6", "p5", "p4", "p3", "p2", "p1", "p0"]
    assert await pages(order="asc") == ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]
    assert await pages(order="asc", priority="low") == ["p0", "p2", "p4", "p5"]
    assert await pages(priority="low") == ["p5", "p4", "p2", "p0"]
    r = await client.get(JOBS, params={"queue": queue, "order": "asc", "priority": "critical"})  # order selects SQL
    assert [job["id"] for job in r.json()["jobs"]] == ["p1"]
    # a cursor continues only a listing of its own order
    first = (await client.get(JOBS, params={"source": "history", "queue": queue, "limit": 2})).json()
    mismatched = await client.get(
        JOBS, params={"source": "history", "queue": queue, "order": "asc", "cursor": first["next_cursor"]}
    )
    assert "cursor" in problem_fields(mismatched)

    # live (Redis): priority filters in Python, across every state's structure
    low = new_job("noop", {}, queue=queue, priority="low")
    high = new_job("noop", {}, queue=queue, priority="high")
    for job in (low, high):
        await tickr_app.store.enqueue(job)
    live = (await client.get(JOBS, params={"queue": queue, "priority": "high"})).json()
    assert [job["id"] for job in live["jobs"]] == [high.id]
    queued = (await client.get(JOBS, params={"queue": queue, "priority": "low", "status": "queued"})).json()
    assert [job["id"] for job in queued["jobs"]] == [low.id]


# -- GET /jobs/{id}/history -----------------------------------------------------------------------


async def test_one_off_history_is_its_attempts(
    client: httpx.AsyncClient, sql: HistoryDB, tickr_app: App, queue: str
) -> None:
    job_id = str(uuid.uuid4())
    runs = [
        run_row(
            job_id,
            n,
            queue=queue,
            outcome="failed" if n < 3 else "succeeded",
            worker=f"w{n}",
            due_at=1_800_000_000_000 + n * 1000,
            started_at=1_800_000_000_000 + n * 1000 + 5,
            finished_at=1_800_000_000_000 + n * 1000 + 25,
            duration_ms=20,
            lateness_ms=5,
            error_type="E" if n < 3 else None,
            error_message=f"try {n}" if n < 3 else None,
        )
        for n in (1, 2, 3)
    ]
    await insert_rows(sql, [job_row(id=job_id, queue=queue, attempt=3)], runs)
    body = (await client.get(f"{JOBS}/{job_id}/history", params={"limit": 2})).json()
    assert (body["id"], body["kind"]) == (job_id, "one_off")
    assert [(r["attempt"], r["outcome"], r["worker"]) for r in body["runs"]] == [
        (3, "succeeded", "w3"),
        (2, "failed", "w2"),
    ]
    latest = body["runs"][0]
    assert (latest["fire_time_ms"], latest["started_at_ms"], latest["duration_ms"], latest["lateness_ms"]) == (
        1_800_000_003_000,
        1_800_000_003_005,
        20,
        5,
    )
    assert body["runs"][1]["error"] == {"type": "E", "message": "try 2"}
    rest = (await client.get(f"{JOBS}/{job_id}/history", params={"limit": 2, "cursor": body["next_cursor"]})).json()
    assert [r["attempt"] for r in rest["runs"]] == [1] and rest["next_cursor"] is None
    assert "cursor" in problem_fields(await client.get(f"{JOBS}/{job_id}/history", params={"cursor": "zz"}))

    # SQL has no attempt yet: today's single run from Redis
    live = await run_live(tickr_app, queue)
    [run] = (await client.get(f"{JOBS}/{live['id']}/history")).json()["runs"]
    assert (run["job_id"], run["outcome"], run["attempt"]) == (live["id"], "succeeded", 1)
    # gone from Redis and never run (cancelled): its single run from its SQL record
    cancelled = job_row(queue=queue, status="cancelled", attempt=0)
    await insert_rows(sql, [cancelled])
    [run] = (await client.get(f"{JOBS}/{cancelled['id']}/history")).json()["runs"]
    assert (run["outcome"], run["attempt"]) == ("cancelled", 0)
    is_problem(await client.get(f"{JOBS}/{uuid.uuid4()}/history"), 404)


async def test_recurring_history_reaches_past_redis(
    client: httpx.AsyncClient, sql: HistoryDB, tickr_app: App, queue: str
) -> None:
    r = await client.post(JOBS, json={"type": "noop", "queue": queue, "cron": "0 3 * * *"})
    assert r.status_code == 201, r.text
    schedule_id = r.json()["id"]
    schedule = await tickr_app.store.schedules.get(schedule_id)
    assert schedule is not None and schedule.next_run_at is not None
    fire = schedule.next_run_at - 10 * MINUTE  # the fire times of the runs below, one minute apart

    def occurrence(n: int, **fields: Any) -> dict[str, Any]:
        return job_row(
            id=f"{schedule_id}-{n}",
            queue=queue,
            schedule_id=schedule_id,
            idempotency_key=f"schedule:{schedule_id}:{fire + n * MINUTE}",
            created_at=fire + n * MINUTE + 4,
            started_at=fire + n * MINUTE + 10,
            finished_at=fire + n * MINUTE + 70,
            attempt=1,
            **fields,
        )

    # Runs 0-2: older than Redis remembers (only SQL has them). Run 3: Redis lists it, its job expired from
    # Redis, SQL has it (dead). Run 4: Redis lists it and has its job. Run 5: listed, its job in neither.
    await insert_rows(
        sql, [occurrence(n) for n in range(3)] + [occurrence(3, status="dead", error_type="E", error_message="boom")]
    )
    live = new_job(
        "noop", {}, queue=queue, schedule_id=schedule_id, idempotency_key=f"schedule:{schedule_id}:{fire + 4 * MINUTE}"
    )
    await tickr_app.store.enqueue(live)
    fired = [
        FiredRun(fire + 3 * MINUTE, queue, f"{schedule_id}-3"),
        FiredRun(fire + 4 * MINUTE, queue, live.id),
        FiredRun(fire + 5 * MINUTE, queue, "gone-everywhere"),
    ]
    advanced, _ = await tickr_app.store.schedules.fire(
        FireRequest(schedule_id, schedule.next_run_at, schedule.next_run_at + 24 * 60 * MINUTE, fired)
    )
    assert advanced

    body = (await client.get(f"{JOBS}/{schedule_id}/history")).json()
    assert body["kind"] == "recurring" and body["next_cursor"] is None
    runs = body["runs"]
    assert [run["job_id"] for run in runs] == [
        "gone-everywhere",
        live.id,
        *(f"{schedule_id}-{n}" for n in (3, 2, 1, 0)),
    ]
    assert [run["outcome"] for run in runs] == ["expired", "queued", "dead", "succeeded", "succeeded", "succeeded"]
    assert [run["fire_time_ms"] for run in runs] == [fire + n * MINUTE for n in (5, 4, 3, 2, 1, 0)]
    dead = runs[2]
    assert (dead["attempt"], dead["lateness_ms"], dead["duration_ms"]) == (1, 4, 60)
    assert dead["error"] == {"type": "E", "message": "boom"}
    assert all(run["lateness_ms"] == 4 and run["duration_ms"] == 60 for run in runs[3:])

    # paging: Redis's pages (numeric cursor), then SQL's (opaque cursor); the same runs in the same order
    for limit in (1, 2, 3, 4, 5):
        seen: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        while True:
            page = (await client.get(f"{JOBS}/{schedule_id}/history", params=params)).json()
            assert len(page["runs"]) <= limit
            seen += [run["job_id"] for run in page["runs"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == [run["job_id"] for run in runs], limit


# -- 503 and history off --------------------------------------------------------------------------


@pytest.fixture
async def sql_down(api_settings: Settings, tickr_app: App) -> AsyncIterator[httpx.AsyncClient]:
    db = HistoryDB("postgresql+asyncpg://postgres@127.0.0.1:1/test")  # nothing listens there
    async for http in _client(api_settings, tickr_app, HistoryQueries(db)):
        yield http
    await db.close()


async def test_sql_down_is_503_and_the_live_routes_work(
    sql_down: httpx.AsyncClient, tickr_app: App, queue: str
) -> None:
    live = await run_live(tickr_app, queue)
    for path, params in (
        (f"{JOBS}/{uuid.uuid4()}", {}),
        (JOBS, {"source": "history"}),
        (JOBS, {"since": "1h"}),
        (f"{JOBS}/{live['id']}/history", {}),
    ):
        body = is_problem(await sql_down.get(path, params=params), 503)
        assert body["type"] == "urn:tickr:problem:history-unavailable", body
        assert "history database" in body["detail"]
    assert (await sql_down.get(f"{JOBS}/{live['id']}")).json()["status"] == "succeeded"
    assert [j["id"] for j in (await sql_down.get(JOBS, params={"queue": queue})).json()["jobs"]] == [live["id"]]


async def test_with_history_off_the_api_is_as_before(api_settings: Settings, tickr_app: App, queue: str) -> None:
    settings = api_settings.model_copy(update={"history": False})
    app = App(settings=settings, prefix=tickr_app.prefix)
    try:
        async for client in _client(settings, app, None):
            is_problem(await client.get(f"{JOBS}/{uuid.uuid4()}"), 404)
            body = is_problem(await client.get(JOBS, params={"source": "history"}), 503)
            assert "TICKR_HISTORY" in body["detail"]
            live = await run_live(tickr_app, queue)
            [run] = (await client.get(f"{JOBS}/{live['id']}/history")).json()["runs"]
            assert run["outcome"] == "succeeded"
    finally:
        await app.close()
