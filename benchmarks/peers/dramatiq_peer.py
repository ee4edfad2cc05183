"""Dramatiq: Redis broker (DB 9), one worker process with the default 8 threads, no retries.

Delayed jobs use ``send_with_options(delay=ms)`` (Dramatiq's delay queue). No bulk enqueue (``group`` sends one
message per actor call), so ``bulk_per_s`` is null.
"""

from __future__ import annotations

import os
import sys
import time

import common
import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=common.REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(max_retries=0)
def noop(mode: str, n: int, t: float) -> None:
    common.handle(mode, n, t)


class DramatiqPeer(common.Peer):
    name = "dramatiq"
    settings = "--processes 1 --threads 8 (default threads); no bulk API"
    patterns = ("dramatiq:*",)
    dists = ("dramatiq",)

    def worker_cmd(self) -> list[str]:
        dramatiq_bin = os.path.join(os.path.dirname(sys.executable), "dramatiq")
        return [dramatiq_bin, "dramatiq_peer", "--processes", "1", "--threads", "8"]

    def one(self, mode: str, n: int, t: float, eta: float | None) -> None:
        if eta is None:
            noop.send(mode, n, t)
        else:
            noop.send_with_options(args=(mode, n, t), delay=max(0, int((eta - time.time()) * 1000)))


if __name__ == "__main__":
    common.emit(common.measure(DramatiqPeer()))
