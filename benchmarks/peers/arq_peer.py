"""arq: one ``arq`` worker with its defaults (max_jobs 10, poll_delay 0.5 s); delayed jobs via ``_defer_until``.

arq has no bulk enqueue, so ``bulk_per_s`` is null.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any

import common
from arq import create_pool
from arq.connections import RedisSettings


async def noop(ctx: dict[str, Any], mode: str, n: int, t: float) -> None:
    await common.ahandle(mode, n, t)


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(common.REDIS_URL)


class ArqPeer(common.AsyncPeer):
    name = "arq"
    settings = "defaults: max_jobs 10, poll_delay 0.5 s; no bulk API"
    patterns = ("arq:*",)
    dists = ("arq",)

    async def setup(self) -> None:
        self.pool = await create_pool(RedisSettings.from_dsn(common.REDIS_URL))

    def worker_cmd(self) -> list[str]:
        return [os.path.join(os.path.dirname(sys.executable), "arq"), "arq_peer.WorkerSettings"]

    async def aone(self, mode: str, n: int, t: float, eta: float | None) -> None:
        if eta is None:
            await self.pool.enqueue_job("noop", mode, n, t)
        else:
            await self.pool.enqueue_job("noop", mode, n, t, _defer_until=datetime.fromtimestamp(eta, UTC))


if __name__ == "__main__":
    common.emit(common.measure(ArqPeer()))
