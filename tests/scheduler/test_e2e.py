"""Exactly once across replicas: three scheduler processes, every-second schedules, one SIGKILLed half-way.

Counts jobs per occurrence through the schedules' run history and through the jobs themselves, and prints
the fire lateness (job created_at - fire time) while three schedulers run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.waiting import wait_until
from tickr.app import App
from tickr.scheduler.manager import Schedules

ROOT = Path(__file__).resolve().parents[2]
SCHEDULES = 10
# Every-second schedules: a run of N seconds is N occurrences of each, counted as they are enqueued.
RUN_SECONDS = 30
KILL_AFTER = 15


class SchedulerProcesses:
    """``tickr scheduler`` processes on a key prefix, with a signal when each has started."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.procs: list[subprocess.Popen[str]] = []
        self.started: list[threading.Event] = []
        self.logs: list[list[str]] = []

    def start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "TICKR_REDIS_URL": self.redis_url, "TICKR_LOG_LEVEL": "INFO"}
        cmd = [sys.executable, "-m", "tickr", "scheduler", "--prefix", self.prefix]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        started, log = threading.Event(), []
        threading.Thread(target=self._read, args=(proc, started, log), daemon=True).start()
        self.procs.append(proc)
        self.started.append(started)
        self.logs.append(log)
        return proc

    @staticmethod
    def _read(proc: subprocess.Popen[str], started: threading.Event, log: list[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if "scheduler started" in line:
                started.set()

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def schedulers(redis_url: str, prefix: str) -> Iterator[SchedulerProcesses]:
    procs = SchedulerProcesses(redis_url, prefix)
    yield procs
    procs.cleanup()


def percentile(values: list[int], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


@pytest.mark.slow
async def test_three_schedulers_fire_each_second_once_even_when_one_is_killed(
    sapp: App, schedulers: SchedulerProcesses, queue: str
) -> None:
    for _ in range(3):
        schedulers.start()
    for started in schedulers.started:
        assert await asyncio.to_thread(started.wait, 30), "a scheduler process did not start"
    manager = Schedules(sapp)
    created = [await manager.create("noop", cron="* * * * * *", queue=queue) for _ in range(SCHEDULES)]
    redis, keys = sapp.store.redis, sapp.store.keys(queue)

    async def fired_at_least(seconds: int) -> bool:  # every job stays queued: no worker runs here
        return sum([await redis.llen(k) for k in keys.ready_all]) >= SCHEDULES * seconds

    await wait_until(lambda: fired_at_least(KILL_AFTER), timeout=KILL_AFTER + 20, message=f"{KILL_AFTER} s of fires")
    kill_ms = await manager.db.now_ms()
    schedulers.procs[0].send_signal(signal.SIGKILL)
    await wait_until(
        lambda: fired_at_least(RUN_SECONDS), timeout=RUN_SECONDS - KILL_AFTER + 20, message=f"{RUN_SECONDS} s of fires"
    )
    for proc in schedulers.procs[1:]:
        proc.send_signal(signal.SIGTERM)
    for proc in schedulers.procs[1:]:
        assert await asyncio.to_thread(proc.wait, 15) == 0, "".join(schedulers.logs[1][-20:])

    fired_total = 0
    for schedule in created:
        runs = await manager.db.runs(schedule.id, 1000)
        fires = sorted(run.fire_ms for run in runs)
        assert fires[0] == schedule.next_run_at, "the first occurrence was missed"
        assert [b - a for a, b in itertools.pairwise(fires)] == [1000] * (len(fires) - 1), "gap or double"
        assert len(fires) >= RUN_SECONDS - 3
        stored = await manager.require(schedule.id)
        assert stored.fired == len(fires) and stored.misfired == 0
        fired_total += len(fires)

    jobs = [await redis.hgetall(key) async for key in redis.scan_iter(match=keys.job_prefix + "*", count=1000)]
    per_occurrence = Counter(job["idempotency_key"] for job in jobs)
    assert per_occurrence.most_common(1)[0][1] == 1, "an occurrence made two jobs"
    ready = [await redis.llen(k) for k in keys.ready_all]
    assert len(jobs) == fired_total == sum(ready)
    fired_per_schedule = {s.id: (await manager.require(s.id)).fired for s in created}
    assert Counter(job["schedule_id"] for job in jobs) == fired_per_schedule
    assert {job["status"] for job in jobs} == {"queued"}

    lateness = {"3 schedulers": [], "2 schedulers": []}  # type: dict[str, list[int]]
    for job in jobs:
        fire = int(job["idempotency_key"].rsplit(":", 1)[1])
        lateness["3 schedulers" if fire < kill_ms else "2 schedulers"].append(int(job["created_at"]) - fire)
    assert len(lateness["3 schedulers"]) >= 120
    for phase, values in lateness.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"\nfire lateness with {phase}: n={len(values)} p50={p50:.1f} ms p99={p99:.1f} ms max={max(values)} ms")
        assert p99 < 1000
