"""Chaos 1: a random worker process of ``tickr worker --processes 4`` is SIGKILLed every 2 s.

Jobs arrive at a steady pace for the whole kill period (so some are in flight at each kill). Every job must
succeed in the end, and a job may run twice only if one of its executions was started by a killed process:
checked from the per-execution record, not from counts.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.chaos.harness import (
    APP,
    ExecLog,
    Procs,
    env_for,
    figures,
    forms,
    restart_backoff_cap,
    statuses,
    takeover_seconds,
    wait_succeeded,
)
from tests.waiting import wait_until
from tickr import App, JobState, Settings

PROCESSES = 4
KILL_EVERY = 2.0


@pytest.fixture
async def shared_app(redis_url: str, tmp_path: Path) -> AsyncIterator[App]:
    tickr_app = App(settings=Settings(redis_url=redis_url, data_dir=tmp_path))
    yield tickr_app
    await tickr_app.close()


async def serving(app: App, queue: str) -> int:
    return sum(queue in worker.queues for worker in await app.store.workers.live())


@forms(short_timeout=150, full_timeout=420)
async def test_sigkill_a_random_worker_process_every_2s(
    full: bool, shared_app: App, redis_url: str, queue: str, procs: Procs, exec_log: ExecLog
) -> None:
    jobs, seconds = (10_000, 60.0) if full else (1_500, 12.0)
    seed = int(os.environ.get("TICKR_CHAOS_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    app = shared_app
    args = ["worker", APP, "--queues", queue, "--processes", str(PROCESSES), "--concurrency", "16", "--no-scheduler"]
    supervisor = procs.tickr("worker", args, env_for(redis_url, exec_log.directory))

    async def all_serving() -> bool:
        assert supervisor.poll() is None, "the supervisor exited"
        return await serving(app, queue) >= PROCESSES

    try:
        await wait_until(all_serving, timeout=60, message=f"{PROCESSES} workers serving")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{procs.output('worker')}") from None

    ids: list[str] = []
    kills: list[tuple[int, float]] = []  # (pid, unix time of the SIGKILL)
    live_at_kill: list[int] = []
    began = time.monotonic()

    async def produce() -> None:
        ticks = int(seconds * 10)
        for tick in range(ticks):
            size = jobs * (tick + 1) // ticks - len(ids)
            batch = [{"type": "chaos.step", "payload": {"ms": rng.uniform(5, 20)}, "queue": queue} for _ in range(size)]
            ids.extend(await app.enqueue_many(batch))
            await asyncio.sleep(max(0.0, began + (tick + 1) * 0.1 - time.monotonic()))  # the pace: 10 batches/s

    async def kill() -> None:
        moment = KILL_EVERY
        while moment <= seconds:
            await asyncio.sleep(max(0.0, began + moment - time.monotonic()))  # the kill schedule, every 2 s
            moment += KILL_EVERY
            children = procs.children(supervisor)
            live_at_kill.append(len(children))
            if not children:
                continue  # every slot is waiting for its restart
            # A random process, preferring one that runs a job body right now (looked for during 0.3 s):
            # a kill that interrupts nothing tests nothing.
            look_until = time.monotonic() + 0.3
            while not (busy := [pid for pid in children if pid in exec_log.read().busy()]):
                if time.monotonic() >= look_until:
                    break
                await asyncio.sleep(0.005)  # poll interval of the look for a busy process
            victim = rng.choice(busy or children)
            os.kill(victim, signal.SIGKILL)
            kills.append((victim, time.time()))

    await asyncio.gather(produce(), kill())
    chaos_end = time.monotonic()
    assert supervisor.poll() is None, f"the supervisor died\n{procs.output('worker')}"
    quiet = takeover_seconds() + restart_backoff_cap()
    try:
        await wait_succeeded(app, queue, ids, quiet_for=quiet, cap=quiet * 3, what="jobs")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nseed {seed}\n{procs.output('worker')}") from None
    drain = time.monotonic() - chaos_end

    exec_log.read()
    state = await statuses(app, queue, ids)
    lost = [job_id for job_id in ids if state[job_id] != JobState.SUCCEEDED or not exec_log.ends.get(job_id)]
    killed = {pid: at for pid, at in kills}
    unexplained: list[str] = []
    recoveries: list[float] = []
    hit: set[int] = set()
    for job_id, runs in exec_log.duplicated().items():
        by_killed = [run for run in runs if run.pid in killed]
        if not by_killed or len(runs) - len(by_killed) > 1:
            unexplained.append(f"{job_id}: " + ", ".join(f"pid {r.pid} at {r.at:.3f}" for r in runs))
        for run in by_killed:
            hit.add(run.pid)
            later = [r.at for r in runs if r.at > killed[run.pid]]
            if later:
                recoveries.append(min(later) - killed[run.pid])
    figures(
        f"worker-kill[{'full' if full else 'short'}]",
        jobs=len(ids),
        lost=len(lost),
        duplicated=len(exec_log.duplicated()),
        recovery_s=max(recoveries, default=0.0),
        recovery_median_s=sorted(recoveries)[len(recoveries) // 2] if recoveries else 0.0,
        kills=len(kills),
        kills_in_flight=len(hit),
        min_live=min(live_at_kill, default=0),
        drain_s=drain,
        seed=seed,
    )
    assert not lost, f"{len(lost)} jobs lost (seed {seed}), e.g. {[(j, state[j]) for j in lost[:5]]}"
    assert not unexplained, f"duplicates not started by a killed process (seed {seed}): {unexplained[:5]}"
    assert kills, "no worker process was killed"
