"""Chaos 3: the connection between a worker and Redis is cut by a TCP proxy, then restored.

The worker reaches Redis only through the proxy (``TICKR_REDIS_URL`` names it); the test enqueues directly,
at a steady pace, before, during and after the cut. Cuts: ``reset`` (RST on both sides, new connections
refused) and ``stall`` (sockets open, nothing forwarded either way, then forwarded again as TCP would once
the path is back). After the cut the worker must resume by itself and every job must succeed.

``blackhole`` is a known failure, kept as its reproducer: the connections open at the cut stay silent for
good (a hung proxy hop, a vanished NAT entry: no RST, no FIN) while new ones work. The worker never recovers:
its fetcher, marker listener and heartbeat each wait for a reply with no timeout (``socket_timeout=None``
in ``store/connection.py``, no read deadline in the script lane), so it runs nothing again until TCP gives up
on the old sockets (never, behind a live proxy; ~15 min of retransmissions when a request was in flight).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.chaos.harness import (
    APP,
    ExecLog,
    Procs,
    RedisServer,
    env_for,
    figures,
    forms,
    py_spy_dump,
    statuses,
    takeover_seconds,
    wait_succeeded,
)
from tests.chaos.proxy import Proxy
from tests.waiting import wait_until
from tickr import App, JobState, Settings

RATE = 40  # jobs/s enqueued for the whole test
BEFORE_SECONDS = 3.0
AFTER_SECONDS = 3.0


BLACKHOLE = pytest.param(
    "blackhole",
    marks=pytest.mark.xfail(
        strict=True,
        reason="finding: a worker waits forever on a Redis connection that went silent (no read timeout)",
    ),
)
BLACKHOLE_BOUND = 10.0  # seconds after the heal the worker gets to run a job again


@pytest.mark.parametrize("cut", ["reset", "stall", BLACKHOLE])
@forms(short_timeout=110, full_timeout=200)
async def test_worker_resumes_after_its_redis_connection_is_cut(
    cut: str,
    full: bool,
    private_redis: RedisServer,
    private_app: App,
    queue: str,
    procs: Procs,
    exec_log: ExecLog,
) -> None:
    cut_seconds = 10.0 if full else 5.0
    proxy = Proxy("127.0.0.1", private_redis.port).start()
    try:
        label = f"connection-cut-{cut}[{'full' if full else 'short'}]"
        await _run(label, cut, cut_seconds, proxy, private_app, queue, procs, exec_log)
    finally:
        proxy.close()


# Found by this suite: leases a live worker was granted at the heal were released at once by a reaper that
# still saw its stale heartbeat, and it ran those jobs twice. A dequeue now refreshes its worker's beat in the
# same script (dequeue.lua), so what it leases is never taken for a lapsed worker's.
@pytest.mark.timeout(110)
async def test_a_live_worker_stalled_past_the_lapse_runs_no_job_twice(
    private_redis: RedisServer, private_app: App, queue: str, procs: Procs, exec_log: ExecLog
) -> None:
    lapse = float(getattr(Settings(), "worker_lapse_seconds", 0.0))
    if not lapse:
        pytest.skip("no lapsed-heartbeat release (TICKR_WORKER_LAPSE_SECONDS unset or 0)")
    proxy = Proxy("127.0.0.1", private_redis.port).start()
    try:
        await _run("stall-past-lapse", "stall", lapse + 3, proxy, private_app, queue, procs, exec_log)
    finally:
        proxy.close()
    twice = {job_id: runs for job_id, runs in exec_log.duplicated().items() if len({r.pid for r in runs}) == 1}
    assert not twice, f"{len(twice)} jobs ran twice in the one live worker, e.g. " + "; ".join(
        f"{job_id}: " + ", ".join(f"{r.kind}{r.attempt} pid {r.pid} at {r.at:.3f}" for r in runs)
        for job_id, runs in list(twice.items())[:2]
    )


async def _run(
    label: str, cut: str, cut_seconds: float, proxy: Proxy, app: App, queue: str, procs: Procs, exec_log: ExecLog
) -> None:
    args = ["worker", APP, "--queues", queue, "--concurrency", "16", "--no-scheduler"]
    worker = procs.tickr("worker", args, env_for(proxy.url, exec_log.directory))

    async def serving() -> bool:
        assert worker.poll() is None, f"tickr worker exited\n{procs.output('worker')}"
        return any(queue in w.queues for w in await app.store.workers.live())

    await wait_until(serving, timeout=60, message="the worker to serve")
    enqueued: list[tuple[str, float]] = []  # (job id, unix time enqueued)
    moments: dict[str, float] = {}
    total = BEFORE_SECONDS + cut_seconds + AFTER_SECONDS
    began = time.monotonic()

    async def produce() -> None:
        ticks = int(total * 10)
        for tick in range(ticks):
            size = int(RATE * total) * (tick + 1) // ticks - len(enqueued)
            ids = await app.enqueue_many([{"type": "chaos.step", "payload": {"ms": 10}, "queue": queue}] * size)
            enqueued.extend((job_id, time.time()) for job_id in ids)
            await asyncio.sleep(max(0.0, began + (tick + 1) * 0.1 - time.monotonic()))  # the pace: 10 batches/s

    async def chaos() -> None:
        await asyncio.sleep(max(0.0, began + BEFORE_SECONDS - time.monotonic()))  # jobs flow before the cut
        await asyncio.to_thread(getattr(proxy, cut))
        moments["cut"] = time.time()
        await asyncio.sleep(cut_seconds)  # the cut itself lasts this long
        await asyncio.to_thread(proxy.heal)
        moments["healed"] = time.time()

    await asyncio.gather(produce(), chaos())
    ids = [job_id for job_id, _ in enqueued]
    cut_at, healed = moments["cut"], moments["healed"]
    # The first job completed after the cut that needed the worker to reach Redis again: enqueued after it began.
    later = {job_id for job_id, at in enqueued if at >= cut_at}

    def after() -> list[float]:
        exec_log.read()
        return [run.at for job_id in later for run in exec_log.ends.get(job_id, []) if run.at >= healed]

    def line(lost: int) -> None:
        ran = after()
        figures(
            label,
            jobs=len(ids),
            lost=lost,
            duplicated=len(exec_log.duplicated()),
            recovery_s=(min(ran) - healed) if ran else -1.0,
            cut_s=healed - cut_at,
            connections=proxy.accepted,
            resets=proxy.resets,
        )

    bound = BLACKHOLE_BOUND if cut == "blackhole" else takeover_seconds()
    try:
        await wait_until(after, timeout=bound, message="a job enqueued during the cut to complete after it")
        await wait_succeeded(app, queue, ids, quiet_for=takeover_seconds(), cap=takeover_seconds() * 3)
    except AssertionError as exc:
        found = await statuses(app, queue, ids)
        line(sum(state != JobState.SUCCEEDED for state in found.values()))
        raise AssertionError(f"{exc}\n{procs.output('worker')}\n{py_spy_dump(worker.pid)}") from None
    assert worker.poll() is None, f"tickr worker exited\n{procs.output('worker')}"

    exec_log.read()
    assert any(run.at < cut_at for run in exec_log.runs if run.kind == "E"), "no job ran before the cut"
    found = await statuses(app, queue, ids)
    lost = [i for i in ids if found[i] != JobState.SUCCEEDED or not exec_log.ends.get(i)]
    line(len(lost))
    assert not lost, f"{len(lost)} jobs never succeeded, e.g. {[(i, found[i]) for i in lost[:5]]}"
