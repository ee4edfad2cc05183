"""RQ: one ``rq worker`` with ``SimpleWorker`` (no fork per job: the fast setting) and ``--with-scheduler``.

Delayed jobs use ``enqueue_at``; RQ's scheduler moves due jobs on its own polling interval. Bulk enqueue is
``Queue.enqueue_many`` (``Queue.prepare_data`` per job, one pipeline per call).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import common
from redis import Redis
from rq import Queue


def noop(mode: str, n: int, t: float) -> None:
    common.handle(mode, n, t)


class RQPeer(common.Peer):
    name = "rq"
    settings = "SimpleWorker, --with-scheduler, default result TTL; bulk: Queue.enqueue_many"
    patterns = ("rq:*",)
    dists = ("rq",)
    has_bulk = True

    def __init__(self) -> None:
        self.queue = Queue("peerbench", connection=Redis.from_url(common.REDIS_URL))

    def worker_cmd(self) -> list[str]:
        rq = os.path.join(os.path.dirname(sys.executable), "rq")
        worker = [rq, "worker", "peerbench", "--url", common.REDIS_URL, "--with-scheduler", "-q"]
        return [*worker, "--worker-class", "rq.worker.SimpleWorker"]

    def one(self, mode: str, n: int, t: float, eta: float | None) -> None:
        if eta is None:
            self.queue.enqueue("rq_peer.noop", mode, n, t)  # by path: the worker imports rq_peer
        else:
            self.queue.enqueue_at(datetime.fromtimestamp(eta, UTC), "rq_peer.noop", mode, n, t)

    def bulk(self, mode: str, n: int, count: int) -> None:
        data = Queue.prepare_data("rq_peer.noop", (mode, n, 0.0))
        self.queue.enqueue_many([data] * count)


if __name__ == "__main__":
    common.emit(common.measure(RQPeer()))
