"""tickr: one ``tickr worker tickr_peer:app`` process with its defaults (concurrency 32, lease 30 s), history on.

A killed worker's jobs run again once its heartbeat has lapsed (``TICKR_WORKER_LAPSE_SECONDS``, 6 s) or, failing that,
when their lease (30 s) expires.

Jobs go through the SDK (``Task.enqueue``, ``Task.enqueue_many`` for bulk; delayed jobs with ``run_at``). History
events are written (the default) and, during both drains, the history sink (``tickr history``, SQLite in a
temporary directory) runs as its own process: its Redis commands and CPU are counted in tickr's figures.
Runs with the project's interpreter (/work/main/.venv), not a virtualenv of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

import tickr

QUEUE = "default"
SINK_START_SECONDS = 30.0

app = tickr.App(redis_url=common.REDIS_URL)


@app.task(name="peerbench.noop")
async def noop(mode: str, n: int, t: float) -> None:
    await common.ahandle(mode, n, t)


class TickrPeer(common.AsyncPeer):
    name = "tickr"
    settings = "defaults: concurrency 32, lease 30 s, worker lapse 6 s; history on, sink running (SQLite)"
    patterns = ("tickr:{*",)  # the queues, not the registries: the client remembers it registered its queue
    dists = ("tickr",)
    has_bulk = True

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="tickr-peer-")
        self.sink: subprocess.Popen[bytes] | None = None

    def tickr_bin(self) -> str:
        return os.path.join(os.path.dirname(sys.executable), "tickr")

    def worker_cmd(self) -> list[str]:
        return [self.tickr_bin(), "worker", "tickr_peer:app"]

    def worker_env(self) -> dict[str, str]:
        return {"TICKR_REDIS_URL": common.REDIS_URL, "TICKR_DATA_DIR": self.tmp.name}

    async def aone(self, mode: str, n: int, t: float, eta: float | None) -> None:
        if eta is None:
            await noop.enqueue(mode, n, t)
        else:
            await noop.enqueue(mode, n, t, run_at=eta)

    async def abulk(self, mode: str, n: int, count: int) -> None:
        await noop.enqueue_many([(mode, n, 0.0)] * count)

    def before_drain(self) -> None:
        """Start the history sink and wait until it reads the queue's event stream (it has found the queue)."""
        env = {
            **os.environ,
            **self.worker_env(),
            "TICKR_DATABASE_URL": f"sqlite:///{Path(self.tmp.name) / 'h.db'}",
            "TICKR_AUTO_MIGRATE": "true",
        }
        log = open(os.environ.get("PEER_WORKER_LOG", os.devnull), "ab")  # noqa: SIM115 - kept for the child
        self.sink = subprocess.Popen([self.tickr_bin(), "history"], env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + SINK_START_SECONDS
        while not self.run(self.sink_reading()):
            if self.sink.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the history sink did not start reading")
            time.sleep(0.05)

    async def sink_reading(self) -> bool:
        [status] = await app.store.events.status([app.store.events.stream(QUEUE)])
        return bool(status.has_group)

    def after_drain(self) -> None:
        if self.sink is not None:
            self.sink.terminate()
            self.sink.wait(30)
            self.sink = None


if __name__ == "__main__":
    common.emit(common.measure(TickrPeer()))
