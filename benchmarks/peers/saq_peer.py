"""SAQ: one ``saq`` worker with its default concurrency (10); delayed jobs via ``scheduled`` (epoch seconds).

SAQ has no bulk enqueue (``Queue.map`` enqueues one by one and waits for the results), so ``bulk_per_s`` is null.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import common
from saq import Queue

queue = Queue.from_url(common.REDIS_URL, name="peerbench")


async def noop(ctx: dict[str, Any], *, mode: str, n: int, t: float) -> None:
    await common.ahandle(mode, n, t)


settings = {"queue": queue, "functions": [noop]}


class SaqPeer(common.AsyncPeer):
    name = "saq"
    settings = "defaults: concurrency 10; no bulk API"
    patterns = ("saq:*",)
    dists = ("saq",)

    async def setup(self) -> None:
        await queue.connect()

    def worker_cmd(self) -> list[str]:
        return [os.path.join(os.path.dirname(sys.executable), "saq"), "saq_peer.settings"]

    async def aone(self, mode: str, n: int, t: float, eta: float | None) -> None:
        if eta is None:
            await queue.enqueue("noop", mode=mode, n=n, t=t)
        else:
            await queue.enqueue("noop", mode=mode, n=n, t=t, scheduled=eta)


if __name__ == "__main__":
    common.emit(common.measure(SaqPeer()))
