"""Real worker processes: SIGKILL, SIGTERM, SIGSTOP, long jobs under short leases, the supervisor."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps import sample
from tests.waiting import wait_until
from tickr import App, JobState

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("TICKR_SOAK_SHORT", "") == ""


class Workers:
    """Starts ``tickr worker tests.apps.sample:app`` processes and cleans them up."""

    def __init__(self, redis_url: str, queue: str) -> None:
        self.redis_url = redis_url
        self.queue = queue
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, *args: str, lease: float = 1.0, grace: float = 30.0, log_level: str = "WARNING", **popen: Any
    ) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "TICKR_REDIS_URL": self.redis_url,
            "TICKR_LEASE_SECONDS": str(lease),
            "TICKR_SHUTDOWN_GRACE_SECONDS": str(grace),
            "TICKR_LOG_LEVEL": log_level,
        }
        cmd = [sys.executable, "-m", "tickr", "worker", "tests.apps.sample:app", "--queues", self.queue, *args]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, **popen)
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(10)


@pytest.fixture
def workers(redis_url: str, queue: str) -> Iterator[Workers]:
    w = Workers(redis_url, queue)
    yield w
    w.cleanup()


async def started(app: App, queue: str) -> list[str]:
    return list(await app.store.redis.lrange(sample.runs_key(queue) + ":started", 0, -1))


async def state(app: App, job_id: str) -> JobState:
    return (await app.get_job(job_id)).status


async def test_sigkill_mid_job(sample_app: App, queue: str, workers: Workers) -> None:
    alo = await sample.slow.enqueue(1.0, queue=queue)
    amo = await sample.slow.enqueue(1.0, queue=queue, execution="at_most_once")
    first = workers.start("--concurrency", "4", lease=1.0)
    await wait_until(lambda: _count(sample_app, queue, 2), timeout=20, message="both jobs to start")
    first.kill()
    first.wait(10)
    workers.start("--concurrency", "4", lease=1.0)
    await wait_until(lambda: _is(sample_app, alo, JobState.SUCCEEDED), timeout=20, message="the rerun to succeed")
    assert await state(sample_app, amo) == JobState.LOST
    # Nothing of the queue is left ready, scheduled or leased: no run of either job can still start.
    await wait_until(lambda: sample_app.store.queues.drained([queue]), timeout=10, message="the queue to drain")
    log = await started(sample_app, queue)
    assert sum(entry.startswith(amo) for entry in log) == 1, "the at-most-once job ran again"
    assert sum(entry.startswith(alo) for entry in log) == 2
    runs = await sample_app.store.redis.hgetall(sample.runs_key(queue))
    assert runs == {alo: "1"}


async def test_sigterm_with_100_in_flight_loses_nothing(sample_app: App, queue: str, workers: Workers) -> None:
    ids = await sample_app.enqueue_many(
        [{"type": "slow", "payload": {"seconds": 1.0}, "queue": queue} for _ in range(100)]
    )
    proc = workers.start("--concurrency", "100", lease=5.0)
    await wait_until(lambda: _count(sample_app, queue, 100), timeout=30, message="100 jobs to start")
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 30) == 0
    runs = await sample_app.store.redis.hgetall(sample.runs_key(queue))
    assert set(runs) == set(ids) and set(runs.values()) == {"1"}
    for job_id in ids:
        assert await state(sample_app, job_id) == JobState.SUCCEEDED
    assert len(await started(sample_app, queue)) == 100


async def test_paused_worker_cannot_ack_a_job_taken_over(sample_app: App, queue: str, workers: Workers) -> None:
    job_id = await sample.slow.enqueue(2.0, queue=queue)
    paused = workers.start("--concurrency", "1", "--no-reaper", lease=1.0)
    await wait_until(lambda: _count(sample_app, queue, 1), timeout=20, message="the job to start")
    paused.send_signal(signal.SIGSTOP)
    second = workers.start("--concurrency", "1", lease=1.0)
    await wait_until(lambda: _is(sample_app, job_id, JobState.SUCCEEDED), timeout=20, message="the takeover")
    winner = (await sample_app.get_job(job_id)).result
    assert winner is not None and winner["pid"] == second.pid
    paused.send_signal(signal.SIGCONT)
    stats = sample_app.store.keys(queue).stats

    async def refused() -> int:
        data = await sample_app.store.redis.hgetall(stats)
        return int(data.get("stale_acks", 0)) + int(data.get("stale_extends", 0))

    assert await wait_until(refused, timeout=10, message="a refused stale ack or extend") >= 1
    # Stop the resumed worker: once it has exited, its run of the job is over, whatever it tried.
    paused.send_signal(signal.SIGTERM)
    await asyncio.to_thread(paused.wait, 30)
    job = await sample_app.get_job(job_id)
    assert job.status == JobState.SUCCEEDED and job.result is not None and job.result["pid"] == second.pid


@pytest.mark.parametrize("soak", [pytest.param(True, marks=pytest.mark.soak), False], ids=["60s", "short"])
async def test_long_job_is_not_run_twice_while_worker_lives(
    sample_app: App, queue: str, workers: Workers, soak: bool
) -> None:
    seconds, lease = (60.0, 5.0) if soak and SOAK else (6.0, 1.0)
    job_id = await sample.slow.enqueue(seconds, queue=queue)
    workers.start("--concurrency", "2", lease=lease)
    workers.start("--concurrency", "2", lease=lease)  # a second worker with a reaper, ready to steal
    await wait_until(
        lambda: _is(sample_app, job_id, JobState.SUCCEEDED), timeout=seconds + 30, message="the job to succeed"
    )
    assert len(await started(sample_app, queue)) == 1
    assert await sample_app.store.redis.hgetall(sample.runs_key(queue)) == {job_id: "1"}


async def test_supervisor_restarts_a_dead_process(sample_app: App, queue: str, workers: Workers) -> None:
    supervisor = workers.start("--processes", "2", "--concurrency", "2", lease=1.0)
    registry = sample_app.store.redis

    async def pids() -> set[int]:
        ids = await registry.zrange("tickr:workers", 0, -1)
        found = set()
        for worker_id in ids:
            info = await registry.hgetall(f"tickr:worker:{worker_id}")
            if info.get("queues") == queue:
                found.add(int(info["pid"]))
        return found

    before = await wait_until(lambda: _at_least(pids, 2), timeout=20, message="two workers")
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    after = await wait_until(lambda: _replaced(pids, before, victim), timeout=20, message="a replacement")
    assert victim not in after and len(after) == 2
    job_id = await sample.record.enqueue(queue=queue)
    await wait_until(lambda: _is(sample_app, job_id, JobState.SUCCEEDED), timeout=10, message="the job")
    supervisor.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervisor.wait, 30) == 0


async def _count(app: App, queue: str, n: int) -> bool:
    return len(await started(app, queue)) >= n


async def _is(app: App, job_id: str, wanted: JobState) -> bool:
    return await state(app, job_id) == wanted


async def _at_least(pids, n: int) -> set[int] | None:  # type: ignore[no-untyped-def]
    found = await pids()
    return found if len(found) >= n else None


async def _replaced(pids, before: set[int], victim: int) -> set[int] | None:  # type: ignore[no-untyped-def]
    found = await pids()
    live = {p for p in found if p != victim}
    return live if len(live) >= 2 else None


async def test_poison_job_is_dead_lettered_after_max_retries_reaps(
    sample_app: App, queue: str, workers: Workers
) -> None:
    job_id = await sample.poison.enqueue(queue=queue)
    workers.start("--processes", "2", "--concurrency", "1", lease=0.5)
    await wait_until(lambda: _is(sample_app, job_id, JobState.DEAD), timeout=40, message="the dead letter")
    job = await sample_app.get_job(job_id)
    assert job.attempt == 3 and job.last_error is not None and job.last_error.type == "LeaseExpired"
    runs = await sample_app.store.redis.hgetall(sample.runs_key(queue))
    assert runs == {job_id: "3"}


def _gone(pid: int) -> bool:
    """Dead or a zombie (an orphan's zombie may linger where PID 1 does not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True


async def test_workers_follow_a_supervisor_killed_with_sigkill(sample_app: App, queue: str, workers: Workers) -> None:
    supervisor = workers.start("--processes", "2", "--concurrency", "1", lease=1.0)
    registry = sample_app.store.redis

    async def children() -> set[int] | None:
        found = set()
        for worker_id in await registry.zrange("tickr:workers", 0, -1):
            info = await registry.hgetall(f"tickr:worker:{worker_id}")
            if info.get("queues") == queue:
                found.add(int(info["pid"]))
        return found if len(found) == 2 else None

    pids = await wait_until(children, timeout=20, message="two children")
    supervisor.kill()
    supervisor.wait(10)

    async def all_gone() -> bool:
        return all(_gone(pid) for pid in pids)

    assert await wait_until(all_gone, timeout=20, message="the children to exit")


async def _all(app: App, ids: list[str], wanted: JobState) -> bool:
    return all([await state(app, job_id) == wanted for job_id in ids])


async def _serving(app: App, queue: str, n: int) -> bool:
    """``n`` worker processes registered on ``queue``: started, signal handlers installed."""
    found = 0
    for worker_id in await app.store.redis.zrange("tickr:workers", 0, -1):
        info = await app.store.redis.hgetall(f"tickr:worker:{worker_id}")
        found += info.get("queues") == queue
    return found >= n


async def test_one_ctrl_c_in_a_terminal_is_a_graceful_stop(sample_app: App, queue: str, workers: Workers) -> None:
    # A terminal sends SIGINT to its whole foreground process group: the supervisor gets its own
    # session here, so the group holds it (and, before the fix, its children) but not the test runner.
    supervisor = workers.start("--processes", "2", "--concurrency", "2", start_new_session=True)
    # a child still importing dies on SIGINT
    await wait_until(lambda: _serving(sample_app, queue, 2), timeout=20, message="two workers serving")
    ids = await sample_app.enqueue_many([{"type": "sleep", "payload": {"ms": 1500}, "queue": queue}] * 2)
    await wait_until(lambda: _all(sample_app, ids, JobState.ACTIVE), timeout=20, message="both jobs running")
    os.killpg(supervisor.pid, signal.SIGINT)
    assert await asyncio.to_thread(supervisor.wait, 30) == 0
    for job_id in ids:
        assert await state(sample_app, job_id) == JobState.SUCCEEDED, "a single Ctrl+C handed a running job back"


async def test_a_second_ctrl_c_hands_running_jobs_back(
    sample_app: App, queue: str, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "stderr"
    with log.open("wb") as stderr:
        supervisor = workers.start(
            "--processes", "2", "--concurrency", "2", log_level="INFO", start_new_session=True, stderr=stderr
        )
    await wait_until(lambda: _serving(sample_app, queue, 2), timeout=20, message="two workers serving")
    ids = await sample_app.enqueue_many([{"type": "sleep", "payload": {"ms": 60_000}, "queue": queue}] * 2)
    await wait_until(lambda: _all(sample_app, ids, JobState.ACTIVE), timeout=20, message="both jobs running")
    os.killpg(supervisor.pid, signal.SIGINT)

    async def both_stopping() -> bool:
        return log.read_text().count("stopping: finishing") >= 2

    await wait_until(both_stopping, timeout=10, message="both workers stopping")
    assert supervisor.poll() is None, "the first Ctrl+C did not wait for the running jobs"
    os.killpg(supervisor.pid, signal.SIGINT)
    assert await asyncio.to_thread(supervisor.wait, 15) == 0
    for job_id in ids:
        assert await state(sample_app, job_id) == JobState.QUEUED
