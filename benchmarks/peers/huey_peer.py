"""Huey: ``RedisHuey`` and one ``huey_consumer`` with its defaults (1 worker, thread type, scheduler polling 1 s).

Delayed jobs use ``task.schedule(args, eta=...)``: the consumer's scheduler moves due jobs once a second. Huey has
no bulk enqueue, so ``bulk_per_s`` is null.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import common
from huey import RedisHuey

huey = RedisHuey("peerbench", url=common.REDIS_URL)


@huey.task()
def noop(mode: str, n: int, t: float) -> None:
    common.handle(mode, n, t)


class HueyPeer(common.Peer):
    name = "huey"
    settings = "defaults: -w 1 (one worker thread), scheduler interval 1 s; no bulk API"
    patterns = ("huey*",)
    dists = ("huey",)

    def worker_cmd(self) -> list[str]:
        return [os.path.join(os.path.dirname(sys.executable), "huey_consumer"), "huey_peer.huey"]

    def one(self, mode: str, n: int, t: float, eta: float | None) -> None:
        if eta is None:
            noop(mode, n, t)
        else:  # huey takes a naive eta as UTC (utc=True, its default)
            noop.schedule(args=(mode, n, t), eta=datetime.fromtimestamp(eta, UTC).replace(tzinfo=None))


if __name__ == "__main__":
    import huey_peer  # the task as the consumer knows it: "huey_peer.noop", not "__main__.noop"

    common.emit(common.measure(huey_peer.HueyPeer()))
