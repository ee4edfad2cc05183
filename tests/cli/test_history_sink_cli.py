"""``tickr history`` with no job id runs the sink as its own process: runs land in SQLite, SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.waiting import wait_until
from tickr.core.factory import new_job
from tickr.store.store import RedisStore


def runs_in(db: Path, ids: list[str]) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            marks = ",".join("?" * len(ids))
            query = f"SELECT count(*) FROM job_runs WHERE outcome = 'succeeded' AND job_id IN ({marks})"
            return int(conn.execute(query, ids).fetchone()[0])
    except sqlite3.OperationalError:  # the sink has not made the tables yet
        return 0


async def test_tickr_history_without_a_job_id_sinks_runs_until_sigterm(
    store: RedisStore, queue: str, redis_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "TICKR_REDIS_URL": redis_url, "TICKR_DATA_DIR": str(tmp_path)}
    env.pop("TICKR_DATABASE_URL", None)
    sink = subprocess.Popen([sys.executable, "-m", "tickr", "history"], env=env, stderr=subprocess.PIPE)
    try:
        made = await store.enqueue_many([(new_job("noop", {}, queue=queue), None) for _ in range(5)])
        leased = (await store.dequeue(queue, 5, "w-cli")).jobs
        await store.ack_many(queue, [(j.job.id, j.token, "") for j in leased])
        ids = [r.id for r in made]
        await wait_until(lambda: runs_in(tmp_path / "history.db", ids) == 5, timeout=60, message="5 runs in SQLite")
    finally:
        sink.send_signal(signal.SIGTERM)
        _, stderr = sink.communicate(timeout=30)
    assert sink.returncode == 0, stderr.decode()


def test_tickr_history_refuses_when_history_is_off(redis_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "TICKR_REDIS_URL": redis_url, "TICKR_DATA_DIR": str(tmp_path), "TICKR_HISTORY": "false"}
    done = subprocess.run([sys.executable, "-m", "tickr", "history"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 2
    assert b"TICKR_HISTORY=false" in done.stderr
