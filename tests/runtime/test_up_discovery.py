"""``tickr up`` as a new user meets it: one address per data directory, found by every command; its banner,
``--queues/--concurrency/--processes`` and several apps; workers that outlive a restart reconnect."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.runtime.test_up import ROOT, clean_env, start_up, stop, wait_status
from tests.waiting import wait_until
from tickr import App, JobState, Settings

APPS = {
    "first_app": "a.hello",
    "second_app": "b.hello",
}


def write_apps(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for module, task in APPS.items():
        (where / f"{module}.py").write_text(
            textwrap.dedent(
                f"""
                from tickr import App

                app = App()


                @app.task(name={task!r})
                def hello() -> str:
                    return {module!r}
                """
            )
        )
    return where


def _banner(log: Path) -> str:
    text = log.read_text()
    return text[text.index("tickr up\n") :] if "Ctrl+C" in text else ""


async def live_on(app: App, queue: str) -> int:
    return sum(1 for info in await app.store.workers.live() if queue in info.queues)


async def tickr(data_dir: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """One real ``tickr`` command run in ``data_dir``: no Redis URL anywhere, only the data directory."""
    env = clean_env(data_dir, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {}))
    command = [sys.executable, "-m", "tickr", *args]
    return await asyncio.to_thread(
        subprocess.run, command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


async def test_every_command_finds_tickr_up_of_its_data_directory(tmp_path: Path) -> None:
    data, mods, err = tmp_path / "data", write_apps(tmp_path / "mods"), tmp_path / "up.err"
    args = ["first_app:app", "second_app:app", "--processes", "2", "--queues", "q1", "--concurrency", "4"]
    proc, url = await asyncio.to_thread(start_up, data, args=args, stderr=err, pythonpath=mods)
    app = App(settings=Settings(redis_url=url))
    try:
        assert url == f"unix://{data / 'valkey.sock'}?db=0"
        burst_job = await app.enqueue("noop", {}, queue="q2")  # a queue only `tickr worker --burst` serves
        commands = asyncio.gather(
            tickr(data, "schedules", "list", "--json"),
            tickr(data, "enqueue", "b.hello", "-q", "q1", "--json"),
            tickr(data, "worker", "--burst", "-q", "q2"),
            tickr(data, "jobs", "list", "-q", "q2", "--json"),
        )
        banner = await wait_until(lambda: _banner(err), 20, message="the banner")
        assert "API      off" in banner and f"Redis    {url}  (embedded Valkey" in banner
        assert "apps     first_app:app, second_app:app" in banner
        assert "tasks    a.hello, b.hello; built-ins: " in banner and "noop" in banner
        assert "workers  2 processes x 4 concurrent jobs on q1" in banner

        async def both_serve() -> bool:
            return await live_on(app, "q1") == 2

        await wait_until(both_serve, 30, message="both worker processes to serve q1")
        schedules, enqueued, burst, listed = await commands
        assert schedules.returncode == 0, schedules.stderr
        assert json.loads(schedules.stdout)["items"] == []
        assert enqueued.returncode == 0, enqueued.stderr
        job_id = json.loads(enqueued.stdout)["id"]
        assert burst.returncode == 0, burst.stderr
        assert (await app.get_job(burst_job)).status == JobState.SUCCEEDED
        assert listed.returncode == 0, listed.stderr
        assert burst_job in {job["id"] for job in json.loads(listed.stdout)["items"]}
        await wait_status(app, job_id, JobState.SUCCEEDED)
        assert (await app.get_job(job_id)).result == "second_app"
    finally:
        await app.close()
        assert await asyncio.to_thread(stop, proc) == 0
    log = err.read_text()
    assert "forwarding signal" in log and "Traceback" not in log
    assert not (data / "redis-url").exists() and not (data / "valkey.sock").exists()
