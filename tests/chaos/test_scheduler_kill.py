"""Chaos 4: three ``tickr scheduler`` processes, one SIGKILLed (and restarted) every 5 s, fire an
every-second schedule: one job per second, no gap, no duplicate.

Checked from every job hash the schedule created in its (private) queue, cancelled ones included: its fire
time is in its idempotency key ``schedule:<id>:<fire ms>``. A private Redis: schedules are global, and
schedulers of this test must neither fire other tests' schedules nor be helped by other schedulers.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections import Counter

from tests.chaos.harness import APP, ExecLog, Procs, RedisServer, env_for, figures, forms
from tests.waiting import wait_until
from tickr import App, JobState
from tickr.scheduler.manager import Schedules

SCHEDULERS = 3
KILL_EVERY = 5.0


@forms(short_timeout=90, full_timeout=200)
async def test_every_second_schedule_survives_a_scheduler_killed_every_5s(
    full: bool, private_redis: RedisServer, private_app: App, queue: str, procs: Procs, exec_log: ExecLog
) -> None:
    seconds = 60 if full else 15
    env = env_for(private_redis.url, exec_log.directory)
    schedulers = [procs.tickr(f"scheduler{i}", ["scheduler", APP], env) for i in range(SCHEDULERS)]
    app = private_app
    schedule_id = await app.schedule("chaos.step", {"ms": 1}, cron="* * * * * *", queue=queue, name="chaos-tick")

    async def fired() -> dict[int, list[tuple[str, JobState, int | None]]]:
        """fire ms -> [(job id, status, created_at ms)] of every job the schedule made."""
        redis = app.store.redis
        ids = [key.rsplit(":", 1)[1] async for key in redis.scan_iter(match=app.store.keys(queue).job("*"))]
        out: dict[int, list[tuple[str, JobState, int | None]]] = {}
        for job in await app.store.jobs.get_jobs([(queue, job_id) for job_id in ids]):
            if job is None:
                continue
            assert job.schedule_id == schedule_id and job.idempotency_key, f"a job not of the schedule: {job}"
            at = int(job.idempotency_key.rsplit(":", 1)[1])
            out.setdefault(at, []).append((job.id, job.status, job.created_at))
        return out

    def output() -> str:
        return "\n".join(procs.output(f"scheduler{i}") for i in range(SCHEDULERS))

    async def first_fire() -> bool:
        exited = [proc.pid for proc in schedulers if proc.poll() is not None]
        assert not exited, f"schedulers {exited} exited\n{output()}"
        return bool(await fired())

    try:
        await wait_until(first_fire, timeout=60, message="the schedule to fire once")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{output()}") from None
    before = await Schedules(app).get(schedule_id)
    assert before is not None
    # The window: every whole second from the next one on, for ``seconds`` seconds.
    start_ms = math.ceil(time.time()) * 1000 + 1000
    end_ms = start_ms + seconds * 1000  # exclusive
    kills = 0
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        await asyncio.sleep(max(0.0, began + (kills + 1) * KILL_EVERY - time.monotonic()))  # the kill schedule
        if time.monotonic() - began >= seconds:
            break
        slot = kills % SCHEDULERS
        os.kill(schedulers[slot].pid, signal.SIGKILL)
        await asyncio.to_thread(schedulers[slot].wait, 10)
        schedulers[slot] = procs.tickr(f"scheduler{slot}", ["scheduler", APP], env)
        kills += 1

    async def window_fired() -> bool:
        return any(at >= end_ms - 1000 for at in await fired())

    try:
        await wait_until(window_fired, timeout=15, message="the last second of the window to fire")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{output()}") from None
    jobs = await fired()
    live = {at: [j for j in runs if j[1] != JobState.CANCELLED] for at, runs in jobs.items()}
    window = range(start_ms, end_ms, 1000)
    gaps = [at for at in window if not live.get(at)]
    duplicated = {at: runs for at, runs in live.items() if len(runs) > 1}
    off_grid = [at for at in jobs if at % 1000]
    late = [(created - at) / 1000 for at in window for _, _, created in live.get(at, []) if created is not None]
    schedule = await Schedules(app).get(schedule_id)
    assert schedule is not None
    figures(
        f"scheduler-kill[{'full' if full else 'short'}]",
        jobs=sum(len(live.get(at, [])) for at in window),
        lost=len(gaps),
        duplicated=len(duplicated),
        recovery_s=f"{max(late, default=-1.0):.3f}",  # the latest fire (created - fire time) in the window
        median_late_s=f"{sorted(late)[len(late) // 2] if late else -1.0:.3f}",
        misfired=schedule.misfired - before.misfired,  # in the window (start-up may misfire the first ones)
        cancelled=sum(j[1] == JobState.CANCELLED for runs in jobs.values() for j in runs),
        kills=kills,
        seconds=seconds,
    )
    statuses = Counter(j[1] for runs in live.values() for j in runs)
    assert not gaps, f"{len(gaps)} seconds fired no job: {gaps[:10]} (window {start_ms}..{end_ms})\n{output()}"
    assert not duplicated, f"seconds fired twice: {list(duplicated.items())[:5]}"
    assert not off_grid, f"fire times off the whole second: {off_grid[:5]}"
    assert set(statuses) <= {JobState.QUEUED}, f"unexpected job states: {statuses}"
    assert schedule.misfired == before.misfired, "occurrences misfired while two schedulers were up"
    assert kills >= seconds // KILL_EVERY - 1, f"only {kills} scheduler kills"
