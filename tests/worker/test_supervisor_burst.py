"""``tickr worker --burst --processes 2``: the supervisor does not restart burst children that finished."""

from __future__ import annotations

import os
import subprocess
import sys

from tickr.app import App


async def test_burst_with_two_processes_drains_and_exits(app: App, redis_url: str, queue: str) -> None:
    await app.enqueue_many([{"type": "noop", "queue": queue}] * 50)
    env = {**os.environ, "TICKR_REDIS_URL": redis_url, "TICKR_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "tickr", "worker", "--queues", queue, "--burst", "--processes", "2"]
    done = subprocess.run(cmd, env=env, timeout=60, check=False)
    assert done.returncode == 0
    stats = await app.store.redis.hgetall(app.store.keys(queue).stats)
    assert int(stats["succeeded"]) == 50
