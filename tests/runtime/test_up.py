"""``tickr up`` end to end: embedded Valkey with persistence, a worker pool, a clean stop and a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tickr import App, JobState, Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_up(data_dir: Path, api_port: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKR_")}
    env.update({"TICKR_DATA_DIR": str(data_dir), "TICKR_API_PORT": str(api_port), "TICKR_LOG_LEVEL": "INFO"})
    # a session of its own, like a terminal's foreground job: Ctrl+C reaches its whole process group
    proc = subprocess.Popen([sys.executable, "-m", "tickr", "up"], cwd=ROOT, env=env, start_new_session=True)
    url_path = data_dir / "redis-url"
    deadline = time.monotonic() + 30
    while not url_path.exists():
        assert proc.poll() is None, "tickr up exited early"
        assert time.monotonic() < deadline, "tickr up did not start its embedded Valkey"
        time.sleep(0.05)
    return proc, url_path.read_text().strip()


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(30)


async def wait_status(app: App, job_id: str, wanted: JobState, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (await app.get_job(job_id)).status != wanted:
        assert time.monotonic() < deadline, f"job {job_id} never reached {wanted}"
        await asyncio.sleep(0.05)


async def test_up_runs_jobs_and_keeps_them_across_restarts(tmp_path: Path) -> None:
    proc, url = await asyncio.to_thread(start_up, tmp_path)
    try:
        app = App(settings=Settings(redis_url=url))
        done = await app.enqueue("noop", {})
        later = await app.enqueue("noop", {"kept": True}, delay=3600)
        await wait_status(app, done, JobState.SUCCEEDED)
        await app.close()
    finally:
        assert await asyncio.to_thread(stop, proc) == 0
    assert not (tmp_path / "redis-url").exists()
    assert (tmp_path / "valkey" / "appendonlydir").is_dir()

    proc, url = await asyncio.to_thread(start_up, tmp_path)
    try:
        app = App(settings=Settings(redis_url=url))
        job = await app.get_job(later)
        assert job.status == JobState.SCHEDULED and job.payload == {"kept": True}
        assert (await app.get_job(done)).status == JobState.SUCCEEDED
        await app.close()
    finally:
        assert await asyncio.to_thread(stop, proc) == 0


async def test_up_serves_the_api_and_runs_submitted_jobs(tmp_path: Path) -> None:
    port = free_port()
    proc, _ = await asyncio.to_thread(start_up, tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API of tickr up never answered"
                await asyncio.sleep(0.1)
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
            for job_id in ids:
                while (job := (await client.get(f"/api/v1/jobs/{job_id}")).json())["status"] != "succeeded":
                    assert job["status"] in {"queued", "active"}, job
                    assert time.monotonic() < deadline + 20, job
                    await asyncio.sleep(0.05)
            report = (await client.get(f"/api/v1/jobs/{ids[2]}")).json()["result"]
            assert report["rows"] == 10 and Path(report["path"]).is_file()
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
