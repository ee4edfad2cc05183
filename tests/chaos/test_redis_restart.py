"""Chaos 2: Redis is SIGKILLed while jobs are submitted over HTTP and run, and restarted ~3 s later.

A private redis-server (append-only, fsync always) on a free port; ``tickr api`` and ``tickr worker``
subprocesses. Submits go on while Redis is down: each one is either acknowledged (2xx, then the job must run)
or refused with a 503 problem+json, quickly (a 5 s client timeout; a 500 or a hang fails the test). The API and
the worker reconnect by themselves: neither is restarted.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx

from tests.chaos.harness import (
    APP,
    ExecLog,
    Procs,
    RedisServer,
    env_for,
    figures,
    forms,
    free_port,
    takeover_seconds,
    wait_succeeded,
)
from tests.waiting import wait_until
from tickr import App, JobState
from tickr.core.errors import StoreError

DOWN_SECONDS = 3.0
SUBMITTERS = 4
CLIENT_TIMEOUT = 5.0


@forms(short_timeout=150, full_timeout=400)
async def test_redis_sigkilled_mid_run_and_restarted(
    full: bool,
    private_redis: RedisServer,
    private_app: App,
    queue: str,
    procs: Procs,
    exec_log: ExecLog,
    tmp_path: Path,
) -> None:
    jobs, seconds = (5_000, 25.0) if full else (1_000, 10.0)
    api_port = free_port()
    env = env_for(
        private_redis.url,
        exec_log.directory,
        TICKR_DATA_DIR=str(tmp_path / "data"),
        TICKR_AUTO_MIGRATE="true",
        TICKR_API_PORT=str(api_port),
    )
    api = procs.tickr("api", ["api"], env)
    worker = procs.tickr("worker", ["worker", APP, "--queues", queue, "--concurrency", "32", "--no-scheduler"], env)
    rng = random.Random()

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=CLIENT_TIMEOUT) as client:

        async def api_up() -> bool:
            assert api.poll() is None, f"tickr api exited\n{procs.output('api')}"
            try:
                return (await client.get("/api/v1/queues")).status_code == 200
            except httpx.TransportError:
                return False

        async def serving() -> bool:
            assert worker.poll() is None, f"tickr worker exited\n{procs.output('worker')}"
            return any(queue in w.queues for w in await private_app.store.workers.live())

        await wait_until(api_up, timeout=60, message="the API to answer")
        await wait_until(serving, timeout=60, message="the worker to serve")

        acked: list[tuple[str, float]] = []  # (job id, unix time of the 2xx)
        refused: list[float] = []  # unix times of the 503s
        bad: list[str] = []  # anything else: a 500, another status, a timeout, a broken connection
        latencies: list[float] = []
        moments: dict[str, float] = {}
        began = time.monotonic()
        next_index = 0

        async def submit() -> None:
            nonlocal next_index
            while next_index < jobs:
                index, next_index = next_index, next_index + 1
                await asyncio.sleep(max(0.0, began + index * seconds / jobs - time.monotonic()))  # the pace
                body = {"type": "chaos.step", "payload": {"ms": rng.uniform(5, 20)}, "queue": queue}
                sent = time.monotonic()
                try:
                    reply = await client.post("/api/v1/jobs", json=body)
                except httpx.TimeoutException:
                    bad.append(f"#{index}: no answer in {CLIENT_TIMEOUT}s")
                    continue
                except httpx.TransportError as exc:
                    bad.append(f"#{index}: {type(exc).__name__}: {exc}")
                    continue
                finally:
                    latencies.append(time.monotonic() - sent)
                kind = reply.headers.get("content-type", "")
                if 200 <= reply.status_code < 300:
                    acked.append((reply.json()["id"], time.time()))
                elif reply.status_code == 503 and kind.startswith("application/problem+json"):
                    refused.append(time.time())
                else:
                    bad.append(f"#{index}: {reply.status_code} {kind} {reply.text[:300]}")

        async def chaos() -> None:
            await asyncio.sleep(max(0.0, began + seconds * 0.35 - time.monotonic()))  # Redis dies a third in
            await asyncio.to_thread(private_redis.kill)
            moments["killed"] = time.time()
            await asyncio.sleep(DOWN_SECONDS)  # the outage itself: Redis stays down this long
            await asyncio.to_thread(private_redis.start)
            moments["restarted"] = time.time()

        await asyncio.gather(chaos(), *(submit() for _ in range(SUBMITTERS)))

    ids = [job_id for job_id, _ in acked]
    try:
        await wait_succeeded(private_app, queue, ids, quiet_for=takeover_seconds(), cap=takeover_seconds() * 3)
    except (AssertionError, StoreError) as exc:
        raise AssertionError(f"{exc}\n{procs.output('worker')}\n{procs.output('api')}") from None
    assert api.poll() is None, f"tickr api exited\n{procs.output('api')}"
    assert worker.poll() is None, f"tickr worker exited\n{procs.output('worker')}"

    exec_log.read()
    found = {job.id: job.status for job in await private_app.store.jobs.get_jobs([(queue, i) for i in ids]) if job}
    lost = [i for i in ids if found.get(i) != JobState.SUCCEEDED or not exec_log.ends.get(i)]
    restarted = moments["restarted"]
    first_run = exec_log.first_start_after(restarted)
    first_ack = min((at for _, at in acked if at >= restarted), default=None)
    figures(
        f"redis-restart[{'full' if full else 'short'}]",
        jobs=len(ids),
        lost=len(lost),
        duplicated=len(exec_log.duplicated()),
        recovery_s=(first_run - restarted) if first_run else -1.0,
        api_recovery_s=(first_ack - restarted) if first_ack else -1.0,
        refused_503=len(refused),
        bad=len(bad),
        max_latency_s=max(latencies, default=0.0),
        down_s=restarted - moments["killed"],
    )
    assert not bad, f"{len(bad)} submits neither acknowledged nor refused with a 503 problem: {bad[:5]}"
    assert refused, "no submit was refused while Redis was down: the outage missed the submits"
    assert not lost, f"{len(lost)} acknowledged jobs never ran, e.g. {[(i, found.get(i)) for i in lost[:5]]}"
    assert first_run is not None, "no job ran after the restart"
