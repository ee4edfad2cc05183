"""Job routes: submit (one, batch, aliases), read, list with cursor paging, change, cancel, retry."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.api.conftest import make_dead, problem_fields
from tickr.store.store import RedisStore

JOBS = "/api/v1/jobs"


async def test_create_job_answers_201_with_the_stored_job(client: httpx.AsyncClient, queue: str) -> None:
    before = int(time.time() * 1000)
    r = await client.post(
        JOBS,
        json={
            "type": "noop",
            "payload": {"to": "a@example.com"},
            "queue": queue,
            "priority": "high",
            "max_retries": 5,
            "timeout": 30,
            "name": "greeting",
            "description": "says hello",
            "backoff": {"base": 2, "max": 60, "jitter": 0.5},
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert job["status"] == "queued"
    assert (job["type"], job["queue"], job["priority"]) == ("noop", queue, "high")
    assert job["payload"] == {"to": "a@example.com"}
    assert (job["max_retries"], job["timeout"], job["attempt"]) == (5, 30.0, 0)
    assert (job["name"], job["description"]) == ("greeting", "says hello")
    assert job["backoff"] == {"base": 2.0, "max": 60.0, "jitter": 0.5}
    assert job["created_at_ms"] >= before - 5_000
    assert job["created_at"].endswith("Z")
    assert datetime.fromisoformat(job["created_at"]).timestamp() * 1000 == job["created_at_ms"]

    got = await client.get(r.headers["location"])
    assert got.status_code == 200
    assert got.json() == job


async def test_delay_and_run_at_schedule_the_job(client: httpx.AsyncClient, queue: str) -> None:
    delayed = (await client.post(JOBS, json={"type": "noop", "queue": queue, "delay": 60})).json()
    assert delayed["status"] == "scheduled"
    assert delayed["scheduled_for_ms"] - delayed["created_at_ms"] >= 55_000

    run_at = datetime.now(UTC) + timedelta(hours=1)
    at = (await client.post(JOBS, json={"type": "noop", "queue": queue, "run_at": run_at.isoformat()})).json()
    assert at["status"] == "scheduled"
    assert abs(at["scheduled_for_ms"] - run_at.timestamp() * 1000) < 2


async def test_idempotency_key_201_then_200_with_the_same_job(client: httpx.AsyncClient, queue: str) -> None:
    body = {"type": "noop", "queue": queue, "idempotency_key": "order-42"}
    first = await client.post(JOBS, json=body)
    second = await client.post(JOBS, json=body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["location"] == first.headers["location"]
    other = await client.post(JOBS, json={**body, "payload": {"other": True}})  # same key, another request
    assert other.status_code == 409, other.text
    assert other.json()["type"] == "urn:tickr:problem:idempotency-conflict"


async def test_idempotency_conflict_is_409_and_a_batch_lists_what_it_created(
    client: httpx.AsyncClient, queue: str
) -> None:
    body = {"type": "noop", "queue": queue, "payload": {"a": 1}, "idempotencyKey": "k-1"}
    first = await client.post(JOBS, json=body)
    assert first.status_code == 201
    assert (await client.post(JOBS, json={**body, "delay": 30})).status_code == 200  # the same request
    conflict = await client.post(JOBS, json={**body, "payload": {"a": 2}})
    assert conflict.status_code == 409, conflict.text
    problem = conflict.json()
    assert problem["type"] == "urn:tickr:problem:idempotency-conflict"
    assert "idempotency key 'k-1' reused with a different request" in problem["detail"]
    assert first.json()["id"] in problem["detail"]

    jobs = [{"type": "noop", "queue": queue, "payload": {"i": 0}}, {**body, "priority": "low"}, body]
    r = await client.post(f"{JOBS}/batch", json={"jobs": jobs})
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"] == "urn:tickr:problem:idempotency-conflict"
    assert problem["errors"] == [
        {"field": "jobs[1].idempotency_key", "message": "idempotency key reused with a different request"}
    ]
    assert [c["index"] for c in problem["created"]] == [0]
    got = await client.get(f"{JOBS}/{problem['created'][0]['id']}", params={"queue": queue})
    assert got.json()["payload"] == {"i": 0}


async def test_camel_case_body(client: httpx.AsyncClient, queue: str) -> None:
    run_at = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    r = await client.post(
        JOBS,
        json={
            "type": "noop",
            "queue": queue,
            "maxRetries": 7,
            "runAt": run_at,
            "idempotencyKey": "camel-1",
            "executionType": "AT_MOST_ONCE",
            "priority": "CRITICAL",
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["max_retries"], job["idempotency_key"], job["execution"]) == (7, "camel-1", "at_most_once")
    assert (job["priority"], job["status"]) == ("critical", "scheduled")


async def test_http_job_from_top_level_fields(client: httpx.AsyncClient, queue: str) -> None:
    r = await client.post(
        JOBS,
        json={
            "httpMethod": "POST",
            "httpUrl": "https://example.com/hook",
            "httpHeaders": {"X-Trace": "1"},
            "httpBody": {"hello": "world"},
            "queue": queue,
            "execution": "at_least_once",
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["type"] == "http"
    assert job["payload"] == {
        "method": "POST",
        "url": "https://example.com/hook",
        "headers": {"X-Trace": "1"},
        "body": {"hello": "world"},
    }


async def test_http_job_fields_are_checked(client: httpx.AsyncClient, queue: str) -> None:
    fields = problem_fields(await client.post(JOBS, json={"httpMethod": "GET", "queue": queue}))
    assert "http_url" in fields
    fields = problem_fields(await client.post(JOBS, json={"httpUrl": "ftp://example.com/x", "queue": queue}))
    assert "scheme" in fields["http_url"]
    fields = problem_fields(await client.post(JOBS, json={"type": "http", "payload": {"url": "nope"}}))
    assert "payload.url" in fields
    fields = problem_fields(await client.post(JOBS, json={"type": "noop", "httpUrl": "https://example.com"}))
    assert "type" in fields


async def test_tasks_alias(client: httpx.AsyncClient, queue: str) -> None:
    body = {"type": "noop", "priority": "low", "payload": {"a": 1}, "idempotency_key": f"task-{queue}"}
    first = await client.post("/tasks", json=body)
    assert first.status_code == 201, first.text
    assert (first.json()["priority"], first.json()["payload"]) == ("low", {"a": 1})
    again = await client.post("/tasks", json=body)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


async def test_validation_errors_name_each_field(client: httpx.AsyncClient, queue: str) -> None:
    fields = problem_fields(
        await client.post(
            JOBS,
            json={
                "type": "bad name!",
                "queue": queue,
                "priority": "urgent",
                "delay": 5,
                "run_at": "2030-01-01T00:00:00Z",
                "colour": "blue",
                "execution": "twice",
                "max_retries": -1,
            },
        )
    )
    assert set(fields) == {"type", "priority", "run_at", "colour", "execution", "max_retries"}
    assert "not both" in fields["run_at"]

    assert set(problem_fields(await client.post(JOBS, json={"type": "noop", "payload": [1, 2]}))) == {"payload"}
    assert set(problem_fields(await client.post(JOBS, json={"payload": {}}))) == {"type"}
    assert set(problem_fields(await client.post(JOBS, json={"type": "noop", "queue": "a:b"}))) == {"queue"}
    naive = await client.post(JOBS, json={"type": "noop", "run_at": "2030-01-01T00:00:00"})
    assert set(problem_fields(naive)) == {"run_at"}
    assert set(problem_fields(await client.post(JOBS, json={"type": "noop", "delay": -1}))) == {"delay"}


async def test_payload_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    for raw in (b'{"type": "noop", "payload": {"x": NaN}}', b'{"type": "noop", "payload": {"x": 1' + b"0" * 30 + b"}}"):
        r = await client.post(JOBS, content=raw, headers={"content-type": "application/json"})
        assert set(problem_fields(r)) == {"payload.x"}
    r = await client.post(JOBS, content=b"{not json", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["type"]) == (400, "urn:tickr:problem:invalid-json")  # tests/api/test_bad_input.py


async def test_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", f"{JOBS}/no-such-job"),
        ("PATCH", f"{JOBS}/no-such-job"),
        ("DELETE", f"{JOBS}/no-such-job"),
        ("POST", f"{JOBS}/no-such-job/cancel"),
        ("POST", f"{JOBS}/no-such-job/retry"),
    ):
        r = await client.request(method, path, json={} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["status"] == 404


async def test_get_job_shows_error_with_traceback(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    job_id = await make_dead(store, queue, message="it broke")
    job = (await client.get(f"{JOBS}/{job_id}", params={"queue": queue})).json()
    assert job["status"] == "dead"
    assert job["attempt"] == 1
    assert job["last_error"]["message"] == "it broke"
    assert job["last_error"]["traceback"].startswith("Traceback")
    assert job["finished_at_ms"] is not None and job["started_at_ms"] is not None


async def test_patch_changes_a_waiting_job_and_409_once_started(
    client: httpx.AsyncClient, store: RedisStore, queue: str
) -> None:
    job = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    r = await client.patch(f"{JOBS}/{job['id']}", json={"priority": "critical", "payload": {"v": 2}, "delay": 120})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["priority"], changed["payload"], changed["status"]) == ("critical", {"v": 2}, "scheduled")
    assert changed["scheduled_for_ms"] > job["scheduled_for_ms"] + 100_000

    r = await client.patch(f"{JOBS}/{job['id']}", json={"runAt": "2001-01-01T00:00:00Z"})
    assert r.json()["status"] == "queued"
    assert set(problem_fields(await client.patch(f"{JOBS}/{job['id']}", json={"priority": "urgent"}))) == {"priority"}

    leased = await store.dequeue(queue, 1, "w")
    assert leased.jobs[0].job.id == job["id"]
    r = await client.patch(f"{JOBS}/{job['id']}", json={"priority": "low"})
    assert r.status_code == 409
    assert r.json()["type"].endswith("invalid-state")


async def test_cancel_and_delete_then_409(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    a = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    b = (await client.post(JOBS, json={"type": "noop", "queue": queue, "delay": 30})).json()
    r = await client.post(f"{JOBS}/{a['id']}/cancel")
    assert (r.status_code, r.json()["status"]) == (200, "cancelled")
    r = await client.delete(f"{JOBS}/{b['id']}")
    assert (r.status_code, r.json()["status"]) == (200, "cancelled")
    assert (await client.post(f"{JOBS}/{a['id']}/cancel")).status_code == 409

    c = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    await store.dequeue(queue, 1, "w")
    r = await client.delete(f"{JOBS}/{c['id']}")
    assert r.status_code == 409
    assert "active" in r.json()["detail"]


async def test_retry_replays_dead_and_cancelled_jobs_only(
    client: httpx.AsyncClient, store: RedisStore, queue: str
) -> None:
    dead_id = await make_dead(store, queue)
    r = await client.post(f"{JOBS}/{dead_id}/retry")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempt"]) == ("queued", 0)
    assert (await client.post(f"{JOBS}/{dead_id}/retry")).status_code == 409

    job = (await client.post(JOBS, json={"type": "noop", "queue": queue, "delay": 10})).json()
    await client.post(f"{JOBS}/{job['id']}/cancel")
    assert (await client.post(f"{JOBS}/{job['id']}/retry")).json()["status"] == "queued"


async def test_batch_creates_all_in_one_call(client: httpx.AsyncClient, queue: str) -> None:
    jobs = [{"type": "noop", "queue": queue, "payload": {"i": i}} for i in range(5)]
    jobs.append({"type": "noop", "queue": queue, "delay": 30, "idempotencyKey": "b-1"})
    r = await client.post(f"{JOBS}/batch", json={"jobs": jobs})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["created"] == 6
    assert [j["payload"].get("i") for j in body["jobs"]] == [0, 1, 2, 3, 4, None]
    assert [j["status"] for j in body["jobs"]] == ["queued"] * 5 + ["scheduled"]

    again = await client.post(
        f"{JOBS}/batch", json={"jobs": [{"type": "noop", "queue": queue, "idempotencyKey": "b-1"}]}
    )
    assert again.json()["created"] == 0
    assert again.json()["jobs"][0]["id"] == body["jobs"][5]["id"]


async def test_batch_is_validated_first_and_errors_name_the_index(client: httpx.AsyncClient, queue: str) -> None:
    jobs = [{"type": "noop", "queue": queue} for _ in range(5)]
    jobs[3]["priority"] = "urgent"
    fields = problem_fields(await client.post(f"{JOBS}/batch", json={"jobs": jobs}))
    assert set(fields) == {"jobs[3].priority"}

    jobs[3] = {"type": "noop", "queue": queue, "delay": 1, "runAt": "2030-01-01T00:00:00Z"}
    jobs[1] = {"queue": queue, "httpMethod": "GET"}
    fields = problem_fields(await client.post(f"{JOBS}/batch", json={"jobs": jobs}))
    assert set(fields) == {"jobs[3].runAt"}  # pydantic errors come first; the rest is checked after
    del jobs[3]
    fields = problem_fields(await client.post(f"{JOBS}/batch", json={"jobs": jobs}))
    assert set(fields) == {"jobs[1].http_url"}
    listed = (await client.get(JOBS, params={"queue": queue})).json()
    assert listed["jobs"] == []  # nothing of a rejected batch was enqueued

    assert set(problem_fields(await client.post(f"{JOBS}/batch", json={"jobs": []}))) == {"jobs"}
    too_many = {"jobs": [{"type": "noop"}] * 1001}
    assert set(problem_fields(await client.post(f"{JOBS}/batch", json=too_many))) == {"jobs"}


async def test_list_pages_newest_first_with_a_cursor(client: httpx.AsyncClient, queue: str) -> None:
    created = []
    for i in range(7):
        created.append((await client.post(JOBS, json={"type": "noop", "queue": queue, "payload": {"i": i}})).json())
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"queue": queue, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(JOBS, params=params)).json()
        seen += [job["id"] for job in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [job["id"] for job in reversed(created)]
    assert pages == 3


async def test_list_filters_by_status_and_type(client: httpx.AsyncClient, store: RedisStore, queue: str) -> None:
    dead_id = await make_dead(store, queue, job_type="fail")  # first: make_dead leases the queue's next job
    queued = (await client.post(JOBS, json={"type": "noop", "queue": queue})).json()
    later = (await client.post(JOBS, json={"type": "sleep", "payload": {"ms": 1}, "queue": queue, "delay": 60})).json()

    async def ids(**params: str) -> list[str]:
        r = await client.get(JOBS, params={"queue": queue, **params})
        assert r.status_code == 200, r.text
        return [job["id"] for job in r.json()["jobs"]]

    assert await ids(status="queued") == [queued["id"]]
    assert await ids(status="scheduled") == [later["id"]]
    assert await ids(status="dead") == [dead_id]
    assert await ids(status="retrying") == []
    assert await ids(type="sleep") == [later["id"]]
    assert set(await ids()) == {queued["id"], later["id"], dead_id}
    assert dead_id in {
        job["id"] for job in (await client.get(JOBS, params={"status": "dead", "limit": 500})).json()["jobs"]
    }


async def test_list_rejects_bad_parameters(client: httpx.AsyncClient) -> None:
    assert set(problem_fields(await client.get(JOBS, params={"status": "sleeping"}))) == {"status"}
    assert set(problem_fields(await client.get(JOBS, params={"limit": 501}))) == {"limit"}
    assert set(problem_fields(await client.get(JOBS, params={"cursor": "garbage!"}))) == {"cursor"}
    assert set(problem_fields(await client.get(JOBS, params={"queue": "{x}"}))) == {"queue"}
