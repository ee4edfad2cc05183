"""A tickr app for end-to-end tests: its tasks record every run in Redis so tests can count them."""

from __future__ import annotations

import asyncio
import os
import time

import redis
import redis.asyncio as aioredis

from tickr import App, Permanent, Retry, current_job

app = App()
_client: aioredis.Redis | None = None


def runs_key(queue: str) -> str:
    return f"test:runs:{{{queue}}}"


async def _record(result: dict[str, object] | None = None) -> dict[str, object]:
    global _client
    if _client is None:
        _client = aioredis.Redis.from_url(os.environ["TICKR_REDIS_URL"], decode_responses=True)
    ctx = current_job()
    await _client.hincrby(runs_key(ctx.queue), ctx.job_id, 1)
    await _client.rpush(runs_key(ctx.queue) + ":log", f"{ctx.job_id}:{ctx.attempt}:{os.getpid()}:{time.time():.3f}")
    return {"pid": os.getpid(), "attempt": ctx.attempt, **(result or {})}


@app.task(name="record")
async def record(value: int = 0) -> dict[str, object]:
    return await _record({"value": value})


@app.task(name="slow")
async def slow(seconds: float, mark_start: bool = True) -> dict[str, object]:
    if mark_start:
        ctx = current_job()
        client = aioredis.Redis.from_url(os.environ["TICKR_REDIS_URL"], decode_responses=True)
        await client.rpush(runs_key(ctx.queue) + ":started", f"{ctx.job_id}:{os.getpid()}")
        await client.aclose()
    await asyncio.sleep(seconds)  # the task under test: a job that works for ``seconds``
    return await _record({"slept": seconds})


@app.task(name="sync_record")
def sync_record(value: int = 0) -> dict[str, object]:
    ctx = current_job()
    client = redis.Redis.from_url(os.environ["TICKR_REDIS_URL"], decode_responses=True)
    client.hincrby(runs_key(ctx.queue), ctx.job_id, 1)
    client.close()
    return {"value": value * 2, "sync": True}


@app.task(name="flaky_until", backoff={"base": 0.2, "max": 5, "jitter": 0}, max_retries=5)
async def flaky_until(succeed_on: int) -> dict[str, object]:
    result = await _record()
    if current_job().attempt < succeed_on:
        raise RuntimeError(f"attempt {current_job().attempt} fails")
    return result


@app.task(name="retry_after", max_retries=2)
async def retry_after(after: float) -> None:
    await _record()
    if current_job().attempt == 1:
        raise Retry("come back later", after=after)


@app.task(name="permanent", max_retries=5)
async def permanent() -> None:
    await _record()
    raise Permanent("bad input, never retry")


@app.task(name="too_slow", timeout=0.2, max_retries=0)
async def too_slow() -> None:
    await asyncio.sleep(5)  # the task under test: runs past its 0.2 s timeout


@app.task(name="poison", max_retries=2)
async def poison() -> None:
    """Kills its own worker process on every attempt."""
    await _record()
    os.kill(os.getpid(), 9)
