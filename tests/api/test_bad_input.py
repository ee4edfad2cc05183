"""Bad input never gets a 500, and a batch is all or nothing: what the encoder refuses is refused first (422,
naming the path), a body that is not JSON is a 400, a batch with one bad job writes nothing."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.api.conftest import problem_fields
from tickr.api import create_app
from tickr.config import Settings
from tickr.core.errors import ValidationError
from tickr.core.factory import MAX_DEPTH, new_job, payload_problem
from tickr.store import codec
from tickr.store.store import ENQUEUE_CHUNK, RedisStore

JOBS = "/api/v1/jobs"
JSON = {"content-type": "application/json"}
NESTED = f"nested deeper than {MAX_DEPTH} levels"
SURROGATE = "string with a lone surrogate"


def nested(levels: int, inner: Any = 0, kind: str = "list") -> Any:
    """``inner`` wrapped in ``levels`` lists (or objects)."""
    for _ in range(levels):
        inner = [inner] if kind == "list" else {"k": inner}
    return inner


def encodes(value: Any) -> bool:
    try:
        codec.dumps(value)
    except TypeError:
        return False
    return True


# -- the check and the encoder agree ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["list", "dict"])
@pytest.mark.parametrize("inner", [0, [], {}, "x"])
def test_the_depth_limit_is_the_encoders(kind: str, inner: Any) -> None:
    containers = 0 if isinstance(inner, int | str) else 1
    for depth in (MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1):
        value = {"a": nested(depth - 1 - containers, inner, kind)}  # ``depth`` levels of containers in all
        assert (payload_problem(value) is None) == encodes(value) == (depth <= MAX_DEPTH), depth
    found = payload_problem({"a": nested(MAX_DEPTH)})  # the path of the first container too deep
    assert found == ("payload.a" + "[0]" * (MAX_DEPTH - 1), NESTED)


def test_tuples_count_as_levels_too() -> None:
    """orjson does not count tuples (and crashes on deep ones): the check refuses them like lists."""

    def tuples(levels: int) -> Any:
        value: Any = ()
        for _ in range(levels - 1):
            value = (value,)
        return value

    assert payload_problem({"a": tuples(MAX_DEPTH)}) == ("payload.a" + "[0]" * (MAX_DEPTH - 1), NESTED)
    assert payload_problem({"a": tuples(MAX_DEPTH - 1)}) is None


LONE = st.integers(0xD800, 0xDFFF).map(chr)
TEXT = st.lists(st.characters(max_codepoint=0x10FFFF) | LONE, max_size=6).map("".join)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=12
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT, VALUES, max_size=4))
def test_the_check_refuses_exactly_what_the_encoder_refuses(payload: dict[str, Any]) -> None:
    assert (payload_problem(payload) is None) == encodes(payload)


# -- through the API --------------------------------------------------------------------------------------------
def raw_job(queue: str, members: str, head: str = '"type": "noop"') -> str:
    """The JSON text of a job body in ``queue`` with ``members`` as written (escapes kept)."""
    return "{" + head + ', "queue": "' + queue + '", ' + members + "}"


async def post_raw(client: httpx.AsyncClient, body: str | bytes, path: str = JOBS) -> httpx.Response:
    """``body`` as the client sent it: JSON ``\\ud800`` escapes decode to lone surrogates in Python."""
    return await client.post(path, content=body, headers=JSON)


async def test_a_payload_nested_too_deeply_is_422_naming_the_path(client: httpx.AsyncClient, queue: str) -> None:
    inner = MAX_DEPTH - 3  # payload, a and b are three levels: b[3] and its lists make up the rest
    ok = '{"type": "noop", "queue": "%s", "payload": {"a": {"b": [0, 0, 0, %s]}}}'
    r = await post_raw(client, ok % (queue, "[" * inner + "]" * inner))
    assert r.status_code == 201, r.text
    assert (await client.get(r.headers["location"])).status_code == 200
    too_deep = await post_raw(client, ok % (queue, "[" * (inner + 1) + "]" * (inner + 1)))
    assert problem_fields(too_deep) == {"payload.a.b[3]" + "[0]" * inner: NESTED}


async def test_lone_surrogates_are_422_naming_the_field(client: httpx.AsyncClient, queue: str) -> None:
    cases = {
        r'"payload": {"name": "\ud800"}': ("payload.name", SURROGATE),
        r'"payload": {"list": ["ok", "\udc00x"]}': ("payload.list[1]", SURROGATE),
        r'"payload": {"\ud800": 1}': ("payload.\\ud800", "key with a lone surrogate"),  # shown escaped
        r'"name": "\ud800"': ("name", None),
        r'"description": "a\udfff"': ("description", None),
        r'"idempotencyKey": "\ud800"': ("idempotencyKey", None),
    }
    for member, (field, message) in cases.items():
        r = await post_raw(client, raw_job(queue, member))
        fields = problem_fields(r)
        assert field in fields, (member, fields)
        if message is not None:
            assert fields[field] == message
    http = {
        r'"httpBody": "\ud800"': "http_body",
        r'"httpBody": {"deep": ["\ud800"]}': "http_body.deep[0]",
        r'"httpHeaders": {"X-A": "\ud800"}': "http_headers",
        r'"httpHeaders": {"\ud800": "v"}': "http_headers",
    }
    for member, field in http.items():
        body = raw_job(queue, member, head='"httpUrl": "https://example.com/"')
        assert field in problem_fields(await post_raw(client, body)), member
    # UTF-8 bytes of a surrogate (not valid UTF-8, but JSON parsers let it through as one)
    raw = b'{"type": "noop", "queue": "%s", "payload": {"x": "\xed\xa0\x80"}}' % queue.encode()
    assert problem_fields(await post_raw(client, raw)) == {"payload.x": SURROGATE}
    assert (await client.get(JOBS, params={"queue": queue})).json()["jobs"] == []


async def test_a_recurring_job_and_a_change_refuse_them_too(client: httpx.AsyncClient, queue: str) -> None:
    cron = '{"type": "noop", "queue": "%s", "cron": "@daily", %s}'
    assert "payload" in problem_fields(await post_raw(client, cron % (queue, r'"payload": {"x": "\ud800"}')))
    assert "name" in problem_fields(await post_raw(client, cron % (queue, r'"name": "\ud800"')))
    job = (await client.post(JOBS, json={"type": "noop", "queue": queue, "delay": 60})).json()
    patch = await client.patch(f"{JOBS}/{job['id']}", content=r'{"payload": {"x": ["\ud800"]}}', headers=JSON)
    assert problem_fields(patch) == {"payload.x[0]": SURROGATE}
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    patch = await client.patch(f"{JOBS}/{job['id']}", content='{"payload": {"x": ' + deep + "}}", headers=JSON)
    assert problem_fields(patch) == {"payload.x" + "[0]" * (MAX_DEPTH - 1): NESTED}


# -- invalid JSON -----------------------------------------------------------------------------------------------
async def test_invalid_json_is_400_naming_the_position(client: httpx.AsyncClient) -> None:
    for body, where in (
        (b"{not json", "line 1, column 2 (character 1)"),
        (b'{\n  "type": "noop",\n  oops\n}', "line 3, column 3 (character 22)"),
        (b'{"type": "noop"', "line 1, column 16 (character 15)"),
    ):
        for path in (JOBS, f"{JOBS}/batch"):
            r = await post_raw(client, body, path)
            assert r.status_code == 400, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            problem = r.json()
            assert (problem["type"], problem["status"]) == ("urn:tickr:problem:invalid-json", 400)
            assert where in problem["detail"], problem["detail"]
    for body in (b'{"type": "\xff"}', b"[" * 20_000 + b"]" * 20_000):  # not UTF-8; too deep for the parser
        r = await post_raw(client, body)
        assert (r.status_code, r.json()["type"]) == (400, "urn:tickr:problem:invalid-json"), r.text
    # valid JSON of the wrong shape stays a 422
    assert set(problem_fields(await post_raw(client, b'{"type": 5}'))) == {"type"}


# -- a batch is all or nothing ----------------------------------------------------------------------------------
async def queue_keys(store: RedisStore, queue: str) -> list[str]:
    return [key async for key in store.redis.scan_iter(match=f"tickr:{{{queue}}}:*", count=1_000)]


async def test_a_batch_with_one_bad_job_writes_nothing(
    client: httpx.AsyncClient, store: RedisStore, queue: str
) -> None:
    good = [{"type": "noop", "queue": queue, "payload": {"i": i}, "idempotencyKey": f"k{i}"} for i in range(20)]
    bad_ones: list[tuple[Any, str]] = [
        (raw_job(queue, r'"payload": {"x": "\ud800"}'), "jobs[20].payload.x"),
        (raw_job(queue, '"payload": {"x": ' + "[" * 254 + "]" * 254 + "}"), "jobs[20].payload.x[0]"),
        (raw_job(queue, '"payload": {"x": 1' + "0" * 30 + "}"), "jobs[20].payload.x"),
    ]
    for bad, field in bad_ones:
        body = '{"jobs": [' + ", ".join(orjson.dumps(job).decode() for job in good) + ", " + bad + "]}"
        fields = problem_fields(await post_raw(client, body, f"{JOBS}/batch"))
        assert len(fields) == 1 and next(iter(fields)).startswith(field), fields
    assert await queue_keys(store, queue) == []  # no job, no idempotency key, no counter
    assert not await store.redis.sismember("tickr:queues", queue)  # not even the queue's registration


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "pipeline"])
async def test_the_store_encodes_a_whole_batch_before_writing(store: RedisStore, queue: str, lane: bool) -> None:
    """The store's own check (a job changed after it was built): still nothing written."""
    if not lane:
        store.lane = store._fast = None  # the path cluster and TLS clients take
    jobs = [(new_job("noop", {"i": i}, queue=queue), None) for i in range(20)]
    for field, value in (("payload", {"x": "\ud800"}), ("name", "\udfff"), ("idempotency_key", "k\ud800")):
        late = new_job("noop", {}, queue=queue)
        setattr(late, field, value)
        with pytest.raises(ValidationError) as caught:
            await store.enqueue_many([*jobs, (late, None)])
        assert set(caught.value.errors) == {"payload.x" if field == "payload" else field}
        with pytest.raises(ValidationError):
            await store.enqueue(late)
    assert await queue_keys(store, queue) == []
    assert not await store.redis.sismember("tickr:queues", queue)


async def test_a_store_error_mid_batch_is_503_listing_what_was_created(
    client: httpx.AsyncClient, store: RedisStore, queue: str
) -> None:
    """A real error reply halfway through: the second script call's job holds an idempotency key that is a hash
    (WRONGTYPE). Each call checks all its jobs before writing any, so its chunk is not created, the first is."""
    await store.redis.hset(store.keys(queue).idem("poisoned"), "x", "1")
    total, poisoned = ENQUEUE_CHUNK + 21, ENQUEUE_CHUNK + 10
    jobs: list[dict[str, Any]] = [{"type": "noop", "queue": queue, "payload": {"i": i}} for i in range(total)]
    jobs[poisoned]["idempotencyKey"] = "poisoned"
    r = await client.post(f"{JOBS}/batch", json={"jobs": jobs})
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    problem = r.json()
    assert problem["type"] == "urn:tickr:problem:batch-interrupted"
    assert f"{ENQUEUE_CHUNK} of {total} jobs were created" in problem["detail"]
    assert [c["index"] for c in problem["created"]] == list(range(ENQUEUE_CHUNK))
    assert (problem["not_created"], problem["unknown"]) == (list(range(ENQUEUE_CHUNK, total)), [])
    for created in problem["created"][:: ENQUEUE_CHUNK // 10]:
        got = (await client.get(f"{JOBS}/{created['id']}", params={"queue": queue})).json()
        assert got["payload"] == {"i": created["index"]}
    assert await store.redis.llen(store.keys(queue).ready("default")) == ENQUEUE_CHUNK  # each one runnable


# -- a real connection loss mid-batch ---------------------------------------------------------------------------
@pytest.fixture
async def named_api(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[FastAPI, str]]:
    """The API on connections named for this test only, so that another connection can kill just those."""
    name = f"tkill-{uuid.uuid4().hex[:8]}"
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}"
    app = create_app(Settings(redis_url=url, data_dir=tmp_path, max_payload_bytes=1 << 20))
    async with app.router.lifespan_context(app):
        yield app, name


async def test_a_connection_lost_mid_batch_is_503_listing_what_was_created(
    named_api: tuple[FastAPI, str], redis_url: str, store: RedisStore, queue: str
) -> None:
    """``CLIENT KILL`` of the connections streaming the batch (each one, as it appears) while it runs.

    Skipped when the batch finishes before a kill lands (timing; the assertions do not depend on it).
    """
    api, name = named_api
    jobs = [{"type": "noop", "queue": queue, "payload": {"i": i, "pad": "x" * 200}} for i in range(1_000)]
    stop = threading.Event()
    kills: list[str] = []

    def kill_streams() -> None:
        """Kill the lane's connection, then any new one (the one it sends the rest on): the batch fails.

        In a thread of its own, so it runs while the event loop is busy streaming; then it stops, so the
        store can be read again to say which jobs were created.
        """
        with redis.Redis.from_url(redis_url, decode_responses=True) as killer:
            known: set[str] = set()
            while len(kills) < 2 and not stop.is_set():
                for client in killer.client_list():
                    if client.get("name") != name:
                        continue
                    streaming = client.get("cmd") == "evalsha" or (bool(kills) and client["id"] not in known)
                    if streaming and client["id"] not in kills:
                        killer.client_kill_filter(_id=client["id"])
                        kills.append(client["id"])
                    known.add(client["id"])

    thread = threading.Thread(target=kill_streams, daemon=True)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://tickr.test") as client:
        thread.start()
        try:
            r = await client.post(f"{JOBS}/batch", json={"jobs": jobs})
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 10)
    if r.status_code == 201:
        pytest.skip(f"the batch finished before the connection was lost ({len(kills)} kill(s))")
    assert r.status_code == 503, r.text
    problem = r.json()
    assert problem["type"] == "urn:tickr:problem:batch-interrupted"
    created = {c["index"]: c["id"] for c in problem["created"]}
    indexes = [*created, *problem["not_created"], *problem["unknown"]]
    assert sorted(indexes) == list(range(len(jobs)))  # each job in exactly one list
    if not problem["unknown"]:
        hashes = [k for k in await queue_keys(store, queue) if ":job:" in k]
        assert {k.rsplit(":", 1)[1] for k in hashes} == set(created.values())
