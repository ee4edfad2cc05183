"""``tickr up`` end to end: embedded Valkey with persistence, a worker pool, a clean stop and a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.waiting import wait_until, wait_until_sync
from tickr import App, JobState, Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a command run "in" ``data_dir``: no TICKR_* from outside (no Redis URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKR_")}
    env.update({"TICKR_DATA_DIR": str(data_dir), "TICKR_LOG_LEVEL": "INFO", **extra})
    return env


def start_up(
    data_dir: Path,
    api_port: int = 0,
    args: Sequence[str] = (),
    stderr: Path | None = None,
    pythonpath: Path | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    extra = {"TICKR_API_PORT": str(api_port)}
    if pythonpath is not None:
        extra["PYTHONPATH"] = str(pythonpath)
    err = stderr.open("wb") if stderr is not None else None
    # a session of its own, like a terminal's foreground job: Ctrl+C reaches its whole process group
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickr", "up", *args],
        cwd=ROOT,
        env=clean_env(data_dir, **extra),
        start_new_session=True,
        stderr=err,
    )
    if err is not None:
        err.close()
    url_path = data_dir / "redis-url"

    def started() -> bool:
        if url_path.exists():
            return True
        assert proc.poll() is None, "tickr up exited early"
        return False

    wait_until_sync(started, timeout=30, message="tickr up to start its embedded Valkey")
    return proc, url_path.read_text().strip()


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(30)


async def wait_status(app: App, job_id: str, wanted: JobState, timeout: float = 15) -> None:
    async def reached() -> bool:
        return (await app.get_job(job_id)).status == wanted

    await wait_until(reached, timeout, message=f"job {job_id} to reach {wanted}")


async def test_up_runs_jobs_and_keeps_them_and_its_address_across_restarts(tmp_path: Path) -> None:
    proc, url = await asyncio.to_thread(start_up, tmp_path)
    assert url == f"unix://{tmp_path / 'valkey.sock'}?db=0"
    # a worker started against this tickr up (found through the data directory), serving a queue of its own
    worker = subprocess.Popen(
        [sys.executable, "-m", "tickr", "worker", "--queues", "outside"],
        cwd=ROOT,
        env=clean_env(tmp_path),
        start_new_session=True,
    )
    try:
        try:
            app = App(settings=Settings(redis_url=url))
            done = await app.enqueue("noop", {})
            later = await app.enqueue("noop", {"kept": True}, delay=3600)
            await wait_status(app, done, JobState.SUCCEEDED)

            async def worker_serves() -> bool:
                return any("outside" in info.queues for info in await app.store.workers.live())

            await wait_until(worker_serves, 30, message="the outside worker to register")
            await app.close()
        finally:
            assert await asyncio.to_thread(stop, proc) == 0
        assert not (tmp_path / "redis-url").exists()
        assert (tmp_path / "valkey" / "appendonlydir").is_dir()

        proc, again = await asyncio.to_thread(start_up, tmp_path)
        try:
            assert again == url  # one address per data directory
            app = App(settings=Settings(redis_url=url))
            job = await app.get_job(later)
            assert job.status == JobState.SCHEDULED and job.payload == {"kept": True}
            assert (await app.get_job(done)).status == JobState.SUCCEEDED
            outside = await app.enqueue("noop", {}, queue="outside")
            await wait_status(app, outside, JobState.SUCCEEDED, timeout=20)  # the worker reconnected by itself
            await app.close()
        finally:
            assert await asyncio.to_thread(stop, proc) == 0
    finally:
        worker.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(worker.wait, 30) == 0


async def test_up_serves_the_api_and_runs_submitted_jobs(tmp_path: Path) -> None:
    port = free_port()
    proc, _ = await asyncio.to_thread(start_up, tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, timeout=20, message="the API of tickr up to answer")
            created = await client.post(
                "/api/v1/jobs/batch",
                json={
                    "jobs": [
                        {"type": "noop"},
                        {"type": "sleep", "payload": {"ms": 50}},
                        {"type": "report", "payload": {"name": "e2e", "rows": 10}},
                    ]
                },
            )
            assert created.status_code == 201, created.text
            ids = [job["id"] for job in created.json()["jobs"]]

            async def all_succeeded() -> bool:
                jobs = [(await client.get(f"/api/v1/jobs/{job_id}")).json() for job_id in ids]
                for job in jobs:
                    assert job["status"] in {"queued", "active", "succeeded"}, job
                return all(job["status"] == "succeeded" for job in jobs)

            await wait_until(all_succeeded, timeout=20, message="the submitted jobs to succeed")
            report = (await client.get(f"/api/v1/jobs/{ids[2]}")).json()["result"]
            assert report["rows"] == 10 and Path(report["path"]).is_file()

            def in_sql_history() -> bool:  # written by tickr up's own sink process, into SQLite
                with sqlite3.connect(tmp_path / "history.db") as db:
                    query = "SELECT outcome FROM job_runs WHERE job_id = ?"
                    return [row[0] for row in db.execute(query, (ids[1],))] == ["succeeded"]

            await wait_until(in_sql_history, timeout=20, message="the run in the SQL history")
            runs = (await client.get(f"/api/v1/jobs/{ids[1]}/history")).json()["runs"]
            assert runs[0]["outcome"] == "succeeded" and runs[0]["worker"]
    finally:
        assert await asyncio.to_thread(stop, proc) == 0


async def test_ctrl_c_lets_a_running_job_finish(tmp_path: Path) -> None:
    proc, url = await asyncio.to_thread(start_up, tmp_path)
    try:
        app = App(settings=Settings(redis_url=url))
        job_id = await app.enqueue("sleep", {"ms": 1500})
        await wait_status(app, job_id, JobState.ACTIVE)
        await app.close()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl+C does: the whole process group
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, url = await asyncio.to_thread(start_up, tmp_path)
    try:
        app = App(settings=Settings(redis_url=url))
        assert (await app.get_job(job_id)).status == JobState.SUCCEEDED
        await app.close()
    finally:
        assert await asyncio.to_thread(stop, proc) == 0
