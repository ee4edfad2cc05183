"""Recurring (cron) jobs over HTTP: create, read, next runs, change, pause/resume, soft delete, history, lists.

Every test runs on a key prefix of its own (its schedules are nobody else's, and are removed afterwards).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.api.conftest import problem_fields
from tests.waiting import wait_until
from tickr.api import create_app
from tickr.app import App
from tickr.config import Settings
from tickr.scheduler.service import SchedulerService
from tickr.worker.worker import Worker, WorkerConfig

JOBS = "/api/v1/jobs"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def tickr_app(api_settings: Settings) -> AsyncIterator[App]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    app = App(settings=api_settings, prefix=prefix)
    yield app
    keys = [key async for key in app.store.redis.scan_iter(match=f"{prefix}:*", count=1000)]
    for key in keys:  # one by one: the keys span slots
        await app.store.redis.delete(key)
    await app.close()


@pytest.fixture
async def client(api_settings: Settings, tickr_app: App) -> AsyncIterator[httpx.AsyncClient]:
    api = create_app(api_settings, tickr_app)
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as http:
            yield http


def ms(text: str) -> int:
    """RFC 3339 -> epoch ms."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post(JOBS, json=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(f"{JOBS}/{r.json()['id']}")
    view: dict[str, Any] = r.json()
    return view


# -- create ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "period_ms"),
    [
        ("*/5 * * * * *", 5_000),
        ("*/15 * * * *", 15 * 60_000),
        ("@hourly", 3_600_000),
        ("every: 30s", 30_000),
    ],
)
async def test_create_recurring_job(client: httpx.AsyncClient, queue: str, cron: str, period_ms: int) -> None:
    before = int(time.time() * 1000)
    view = await create(client, type="noop", payload={"n": 1}, queue=queue, cron=cron, priority="high")
    assert (view["kind"], view["status"], view["cron"], view["timezone"]) == ("recurring", "active", cron, "UTC")
    assert (view["is_active"], view["deleted"], view["misfire"], view["overlap"]) == (True, False, "skip", True)
    assert (view["type"], view["payload"], view["queue"], view["priority"]) == ("noop", {"n": 1}, queue, "high")
    assert view["execution"] == "at_least_once"
    assert view["next_run_at"].endswith("Z")
    assert ms(view["next_run_at"]) == view["next_run_at_ms"]
    assert before < view["next_run_at_ms"] <= before + period_ms + 1_000
    assert view["next_run_at_ms"] % period_ms == 0  # aligned on the period (all these are, in UTC)


async def test_create_camel_case_http_at_most_once(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(
        client,
        cronExpression="0 0 9 * * MON-FRI",
        timezone="Europe/Berlin",
        httpMethod="POST",
        httpUrl="https://example.com/hooks/tick",
        httpHeaders={"X-Token": "t"},
        httpBody={"hello": "world"},
        executionType="AT_MOST_ONCE",
        queue=queue,
        maxRetries=1,
        misfire="CATCH_UP",
        maxCatchUp=3,
        overlap=False,
        isActive=True,
        name="tick",
        description="weekday mornings",
    )
    assert view["type"] == "http"
    assert view["payload"] == {
        "method": "POST",
        "url": "https://example.com/hooks/tick",
        "headers": {"X-Token": "t"},
        "body": {"hello": "world"},
    }
    assert (view["execution"], view["max_retries"], view["misfire"], view["max_catch_up"]) == (
        "at_most_once",
        1,
        "catch_up",
        3,
    )
    assert (view["overlap"], view["name"], view["description"]) == (False, "tick", "weekday mornings")
    local = datetime.fromisoformat(view["next_run_at"]).astimezone(BERLIN)
    assert (local.hour, local.minute, local.second) == (9, 0, 0)
    assert local.weekday() < 5


async def test_create_paused(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="@daily", is_active=False)
    assert (view["status"], view["is_active"], view["next_run_at"]) == ("paused", False, None)


# -- read -----------------------------------------------------------------------------------------


async def test_get_shows_recurring_and_one_off_jobs(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="0 0 12 * * *", timezone="Europe/Berlin")
    got = await client.get(f"{JOBS}/{view['id']}")
    assert got.status_code == 200
    assert got.json() == view
    assert got.json()["next_run_at"] is not None

    job = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    got = await client.get(f"{JOBS}/{job['id']}")
    assert got.status_code == 200
    assert (got.json()["kind"], got.json()["status"]) == ("one_off", "queued")


async def test_next_runs_in_utc_and_local_time(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="0 0 12 * * *", timezone="Europe/Berlin")
    r = await client.get(f"{JOBS}/{view['id']}/schedule", params={"count": 20})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["timezone"], body["cron"], body["status"]) == (
        view["id"],
        "Europe/Berlin",
        view["cron"],
        "active",
    )
    runs = body["next_runs"]
    assert len(runs) == 20
    assert runs[0]["utc_ms"] == view["next_run_at_ms"]
    times = [run["utc_ms"] for run in runs]
    assert times == sorted(set(times))  # strictly increasing
    for run in runs:
        utc, local = datetime.fromisoformat(run["utc"]), datetime.fromisoformat(run["local"])
        assert run["utc"].endswith("Z") and ms(run["utc"]) == run["utc_ms"]
        assert utc == local  # the same instant
        assert local.utcoffset() == utc.astimezone(BERLIN).utcoffset()
        assert local.utcoffset() in {timedelta(hours=1), timedelta(hours=2)}
        assert (local.hour, local.minute) == (12, 0)
        assert utc.astimezone(UTC).hour in {10, 11}

    default = (await client.get(f"{JOBS}/{view['id']}/schedule")).json()
    assert len(default["next_runs"]) == 10
    for count in (0, 101, "x"):
        r = await client.get(f"{JOBS}/{view['id']}/schedule", params={"count": count})
        assert "count" in problem_fields(r)


# -- change ---------------------------------------------------------------------------------------


async def test_patch_cron_moves_next_run(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="0 0 3 * * *")
    r = await client.patch(f"{JOBS}/{view['id']}", json={"cronExpression": "0 30 4 * * *", "timezone": "Asia/Tokyo"})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["cron"], changed["timezone"]) == ("0 30 4 * * *", "Asia/Tokyo")
    assert changed["next_run_at_ms"] != view["next_run_at_ms"]
    local = datetime.fromisoformat(changed["next_run_at"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert (local.hour, local.minute) == (4, 30)
    assert (await client.get(f"{JOBS}/{view['id']}")).json() == changed


async def test_patch_template_fields(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="@hourly")
    patch = {
        "payload": {"v": 2},
        "priority": "critical",
        "maxRetries": 9,
        "executionType": "AT_MOST_ONCE",
        "misfire": "none",
        "overlap": False,
        "name": "renamed",
    }
    changed = (await client.patch(f"{JOBS}/{view['id']}", json=patch)).json()
    assert (changed["payload"], changed["priority"], changed["max_retries"]) == ({"v": 2}, "critical", 9)
    assert (changed["execution"], changed["misfire"], changed["overlap"], changed["name"]) == (
        "at_most_once",
        "none",
        False,
        "renamed",
    )
    assert (changed["cron"], changed["next_run_at_ms"]) == ("@hourly", view["next_run_at_ms"])  # not moved


async def test_patch_http_fields(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, httpUrl="https://example.com/a", queue=queue, cron="@daily")
    changed = (await client.patch(f"{JOBS}/{view['id']}", json={"httpUrl": "https://example.com/b"})).json()
    assert changed["payload"]["url"] == "https://example.com/b"
    assert changed["payload"]["method"] == "GET"
    fields = problem_fields(await client.patch(f"{JOBS}/{view['id']}", json={"httpUrl": "ftp://example.com/"}))
    assert "http_url" in fields

    plain = await create(client, type="noop", queue=queue, cron="@daily")
    assert "httpUrl" in problem_fields(await client.patch(f"{JOBS}/{plain['id']}", json={"httpUrl": "https://x.io"}))


async def test_pause_and_resume(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="*/10 * * * * *")
    paused = (await client.patch(f"{JOBS}/{view['id']}", json={"isActive": False})).json()
    assert (paused["status"], paused["is_active"], paused["next_run_at"]) == ("paused", False, None)
    assert (await client.get(f"{JOBS}/{view['id']}")).json()["status"] == "paused"
    r = await client.get(f"{JOBS}/{view['id']}/schedule", params={"count": 2})
    assert r.json()["status"] == "paused" and len(r.json()["next_runs"]) == 2  # as if resumed now

    resumed = (await client.patch(f"{JOBS}/{view['id']}", json={"is_active": True})).json()
    assert (resumed["status"], resumed["is_active"]) == ("active", True)
    assert resumed["next_run_at_ms"] > int(time.time() * 1000) - 1_000
    assert resumed["next_run_at_ms"] % 10_000 == 0


async def test_patch_is_validated(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="@daily")
    url = f"{JOBS}/{view['id']}"
    assert "bogus" in problem_fields(await client.patch(url, json={"bogus": 1}))
    assert "delay" in problem_fields(await client.patch(url, json={"delay": 5}))
    assert "runAt" in problem_fields(await client.patch(url, json={"runAt": "2030-01-01T00:00:00Z"}))
    fields = problem_fields(await client.patch(url, json={"cron": "0 0 25 * * *", "timezone": "Mars/Olympus"}))
    assert "hour field '25'" in fields["cron"]
    assert fields["timezone"] == "unknown timezone 'Mars/Olympus'"
    assert "maxCatchUp" in problem_fields(await client.patch(url, json={"maxCatchUp": 0}))
    assert "isActive" in problem_fields(await client.patch(url, json={"isActive": "maybe"}))
    assert (await client.get(url)).json() == view  # nothing changed

    job = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    fields = problem_fields(await client.patch(f"{JOBS}/{job['id']}", json={"cron": "@daily", "isActive": False}))
    assert set(fields) == {"cron", "isActive"}
    assert "recurring" in fields["cron"]
    r = await client.patch(f"{JOBS}/{job['id']}", json={"priority": "low"})
    assert r.status_code == 200 and r.json()["priority"] == "low"  # one-off jobs as before


# -- delete ---------------------------------------------------------------------------------------


async def test_delete_is_soft_and_reversible(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="*/30 * * * * *")
    r = await client.delete(f"{JOBS}/{view['id']}")
    assert r.status_code == 200, r.text
    deleted = r.json()
    assert (deleted["status"], deleted["deleted"], deleted["is_active"], deleted["next_run_at"]) == (
        "deleted",
        True,
        False,
        None,
    )
    assert deleted["deleted_at_ms"] is not None
    got = await client.get(f"{JOBS}/{view['id']}")
    assert got.status_code == 200 and got.json()["status"] == "deleted"
    history = await client.get(f"{JOBS}/{view['id']}/history")
    assert history.status_code == 200 and history.json()["runs"] == []
    assert (await client.delete(f"{JOBS}/{view['id']}")).status_code == 200  # again: still deleted

    back = (await client.patch(f"{JOBS}/{view['id']}", json={"isActive": True})).json()
    assert (back["status"], back["deleted"], back["is_active"], back["deleted_at"]) == ("active", False, True, None)
    assert back["next_run_at_ms"] % 30_000 == 0


async def test_cancel_and_retry_refuse_recurring_jobs(client: httpx.AsyncClient, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="@daily")
    for action in ("cancel", "retry"):
        r = await client.post(f"{JOBS}/{view['id']}/{action}")
        assert r.status_code == 409, r.text
        assert "recurring" in r.json()["detail"]


# -- lists ----------------------------------------------------------------------------------------


async def test_list_recurring_jobs(client: httpx.AsyncClient, queue: str) -> None:
    ids = [(await create(client, type="noop", queue=queue, cron=f"{n} * * * *"))["id"] for n in range(5)]
    other = await create(client, type="sleep", payload={"ms": 1}, queue=queue, cron="@daily")
    await client.delete(f"{JOBS}/{ids[0]}")

    listed = (await client.get(JOBS, params={"kind": "recurring", "limit": 50})).json()
    assert [job["id"] for job in listed["jobs"]] == [*ids[1:], other["id"]]
    assert {job["kind"] for job in listed["jobs"]} == {"recurring"}
    by_type = (await client.get(JOBS, params={"kind": "recurring", "type": "sleep"})).json()
    assert [job["id"] for job in by_type["jobs"]] == [other["id"]]
    assert "status" in problem_fields(await client.get(JOBS, params={"kind": "recurring", "status": "queued"}))
    assert "cursor" in problem_fields(await client.get(JOBS, params={"kind": "recurring", "cursor": "abc"}))

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, "include_deleted": True} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/api/v1/schedules", params=params)
        assert r.status_code == 200, r.text
        seen += [s["id"] for s in r.json()["schedules"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [*ids, other["id"]]
    active = (await client.get("/api/v1/schedules")).json()["schedules"]
    assert ids[0] not in [s["id"] for s in active]

    one_off = (await client.get(JOBS, params={"queue": queue})).json()["jobs"]
    assert one_off == []  # the plain listing shows one-off jobs only


# -- validation and 404s ----------------------------------------------------------------------------


async def test_create_validation_errors(client: httpx.AsyncClient, queue: str) -> None:
    fields = problem_fields(await client.post(JOBS, json={"type": "noop", "cron": "61 * * * * *"}))
    assert set(fields) == {"cron"}
    assert "second field '61'" in fields["cron"] and "out of range" in fields["cron"]
    fields = problem_fields(await client.post(JOBS, json={"type": "noop", "cronExpression": "* * * JAN-XYZ *"}))
    assert "month field 'JAN-XYZ'" in fields["cronExpression"]
    fields = problem_fields(await client.post(JOBS, json={"type": "noop", "cron": "* * *"}))
    assert "found 3 fields" in fields["cron"]
    fields = problem_fields(
        await client.post(JOBS, json={"type": "noop", "cron": "@daily", "timezone": "Mars/Olympus"})
    )
    assert fields == {"timezone": "unknown timezone 'Mars/Olympus'"}

    cases: list[tuple[dict[str, Any], str]] = [
        ({"delay": 5}, "delay"),
        ({"runAt": "2030-01-01T00:00:00Z"}, "runAt"),
        ({"idempotency_key": "k"}, "idempotency_key"),
        ({"misfire": "later"}, "misfire"),
        ({"maxCatchUp": 5000}, "maxCatchUp"),
        ({"queue": "bad queue!"}, "queue"),
        ({"payload": [1]}, "payload"),
    ]
    for extra, field in cases:
        fields = problem_fields(await client.post(JOBS, json={"type": "noop", "cron": "@daily", **extra}))
        assert set(fields) == {field}, (extra, fields)
    assert "type" in problem_fields(await client.post(JOBS, json={"cron": "@daily"}))
    assert "httpUrl" in problem_fields(await client.post(JOBS, json={"cron": "@daily", "httpUrl": 5}))

    fields = problem_fields(await client.post(JOBS, json={"type": "noop", "timezone": "UTC", "overlap": False}))
    assert set(fields) == {"timezone", "overlap"}  # recurring-only fields without cron
    batch = {"jobs": [{"type": "noop", "queue": queue}, {"type": "noop", "cron": "@daily"}]}
    assert set(problem_fields(await client.post(f"{JOBS}/batch", json=batch))) == {"jobs[1].cron"}
    assert (await client.get(JOBS, params={"kind": "recurring"})).json()["jobs"] == []  # nothing was created


async def test_unknown_ids_are_404(client: httpx.AsyncClient, queue: str) -> None:
    unknown = f"{JOBS}/{uuid.uuid4()}"
    for method, path in [
        ("GET", unknown),
        ("PATCH", unknown),
        ("DELETE", unknown),
        ("GET", f"{unknown}/schedule"),
        ("GET", f"{unknown}/history"),
    ]:
        r = await client.request(method, path, json={"priority": "low"} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")

    job = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    r = await client.get(f"{JOBS}/{job['id']}/schedule")
    assert r.status_code == 404
    assert "not a recurring" in r.json()["detail"]


async def test_one_off_job_history(client: httpx.AsyncClient, queue: str) -> None:
    job = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    r = await client.get(f"{JOBS}/{job['id']}/history")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["id"], body["kind"], body["next_cursor"]) == (job["id"], "one_off", None)
    [run] = body["runs"]
    assert (run["job_id"], run["queue"], run["outcome"], run["attempt"]) == (job["id"], queue, "queued", 0)
    assert run["fire_time_ms"] == job["created_at_ms"]
    assert (run["duration_ms"], run["error"]) == (None, None)


# -- real runs ------------------------------------------------------------------------------------


async def _history(client: httpx.AsyncClient, job_id: str, **params: Any) -> dict[str, Any]:
    r = await client.get(f"{JOBS}/{job_id}/history", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_history_of_real_runs(client: httpx.AsyncClient, tickr_app: App, queue: str) -> None:
    view = await create(client, type="noop", queue=queue, cron="* * * * * *")
    scheduler = SchedulerService(tickr_app)
    await scheduler.start()
    worker = Worker(tickr_app, WorkerConfig(queues=[queue], reaper=False))
    working = asyncio.create_task(worker.run())

    async def runs_done(at_least: int) -> bool:
        runs = (await _history(client, view["id"]))["runs"]
        return len(runs) >= at_least and all(run["outcome"] == "succeeded" for run in runs)

    try:
        await wait_until(lambda: runs_done(2), timeout=12, message="two recorded runs")
    finally:
        await scheduler.stop()
    try:
        await wait_until(lambda: runs_done(1), timeout=10, message="the last run to finish")
    finally:
        worker.stop()
        await asyncio.wait_for(working, 30)

    body = await _history(client, view["id"])
    runs = body["runs"]
    assert body["kind"] == "recurring" and len(runs) >= 2, runs
    fires = [run["fire_time_ms"] for run in runs]
    assert fires == sorted(fires, reverse=True) and len(set(fires)) == len(fires)  # newest first
    for run in runs:
        assert (run["outcome"], run["attempt"], run["queue"], run["error"]) == ("succeeded", 1, queue, None)
        assert run["fire_time_ms"] % 1000 == 0 and run["fire_time"].endswith("Z")
        assert run["duration_ms"] is not None and run["duration_ms"] >= 0
        assert run["lateness_ms"] is not None and run["lateness_ms"] >= 0
        job = (await client.get(f"{JOBS}/{run['job_id']}")).json()
        assert (job["kind"], job["schedule_id"], job["status"]) == ("one_off", view["id"], "succeeded")
    got = (await client.get(f"{JOBS}/{view['id']}")).json()
    assert got["fired"] >= len(runs) and got["last_run_at_ms"] == fires[0]

    first = await _history(client, view["id"], limit=1)
    assert [run["job_id"] for run in first["runs"]] == [runs[0]["job_id"]]
    second = await _history(client, view["id"], limit=1, cursor=first["next_cursor"])
    assert [run["job_id"] for run in second["runs"]] == [runs[1]["job_id"]]
    assert "cursor" in problem_fields(await client.get(f"{JOBS}/{view['id']}/history", params={"cursor": "x"}))

    deleted = (await client.delete(f"{JOBS}/{view['id']}")).json()
    assert deleted["status"] == "deleted"
    assert [run["job_id"] for run in (await _history(client, view["id"]))["runs"]] == [r["job_id"] for r in runs]
    back = (await client.patch(f"{JOBS}/{view['id']}", json={"isActive": True})).json()
    assert back["status"] == "active" and back["next_run_at"] is not None


async def test_openapi_lists_the_recurring_routes(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert {"/api/v1/jobs/{job_id}/schedule", "/api/v1/jobs/{job_id}/history", "/api/v1/schedules"} <= set(doc["paths"])
    job_in = doc["components"]["schemas"]["JobIn"]["properties"]
    assert {"cron", "timezone", "misfire", "max_catch_up", "overlap", "is_active"} <= set(job_in)
    get = doc["paths"]["/api/v1/jobs/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert get["discriminator"]["propertyName"] == "kind"
