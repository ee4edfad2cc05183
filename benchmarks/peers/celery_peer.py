"""Celery: Redis broker (DB 9), no result backend, one worker process with ``--pool solo``; ``--acks-late`` variant.

Settings left at Celery's defaults otherwise (prefetch multiplier 4; ETA tasks are held by the worker). Celery has
no bulk enqueue (``group`` sends one message per task), so ``bulk_per_s`` is null.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import common
from celery import Celery

ACKS_LATE = os.environ.get("PEER_CELERY_ACKS_LATE") == "1"

app = Celery("celery_peer", broker=common.REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    task_acks_late=ACKS_LATE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop(mode: str, n: int, t: float) -> None:
    common.handle(mode, n, t)


class CeleryPeer(common.Peer):
    patterns = ("celery*", "_kombu*", "unacked*")
    dists = ("celery", "kombu")

    def __init__(self) -> None:
        self.name = "celery (acks_late)" if ACKS_LATE else "celery"
        acks = ", acks_late" if ACKS_LATE else ""
        self.settings = f"pool solo, prefetch x4, no result backend{acks}; no bulk API"

    def worker_cmd(self) -> list[str]:
        celery = [sys.executable, "-m", "celery", "-A", "celery_peer", "worker", "--pool", "solo", "-l", "WARNING"]
        return [*celery, "--without-gossip", "--without-mingle", "--without-heartbeat"]

    def one(self, mode: str, n: int, t: float, eta: float | None) -> None:
        if eta is None:
            noop.apply_async((mode, n, t))
        else:
            noop.apply_async((mode, n, t), eta=datetime.fromtimestamp(eta, UTC))


if __name__ == "__main__":
    common.emit(common.measure(CeleryPeer()))
