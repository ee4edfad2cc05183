"""taskiq: ``RedisStreamBroker`` (taskiq-redis: consumer group, acknowledgements) and one ``taskiq worker --workers 1``
(its default is 2 processes) with the other defaults (max 100 async tasks, idle_timeout 600 s before an
unacknowledged message is reclaimed).

Delayed jobs use ``kicker().schedule_by_time`` with a ``ListRedisScheduleSource`` and a ``taskiq scheduler``
process (defaults: due jobs checked once a second) started beside the worker in the same process group. taskiq has
no bulk enqueue, so ``bulk_per_s`` is null.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import common
from taskiq import TaskiqScheduler
from taskiq_redis import ListRedisScheduleSource, RedisStreamBroker

broker = RedisStreamBroker(common.REDIS_URL, queue_name="peerbench")
source = ListRedisScheduleSource(common.REDIS_URL, prefix="peerbench-taskiq-schedule")
scheduler = TaskiqScheduler(broker, sources=[source])


@broker.task(task_name="noop")
async def noop(mode: str, n: int, t: float) -> None:
    await common.ahandle(mode, n, t)


class TaskiqPeer(common.AsyncPeer):
    name = "taskiq"
    settings = "RedisStreamBroker, --workers 1, other defaults; scheduler process for delayed jobs; no bulk API"
    patterns = ("peerbench", "peerbench-taskiq*")
    dists = ("taskiq", "taskiq-redis")

    def reset(self) -> None:
        """Delete the keys, then make the consumer group again: a worker's own group starts at "$" and would not see
        jobs queued before it started."""
        super().reset()
        common.client().xgroup_create("peerbench", "taskiq", id="$", mkstream=True)

    async def setup(self) -> None:
        await broker.startup()
        await source.startup()

    def worker_cmd(self) -> list[str]:
        taskiq = os.path.join(os.path.dirname(sys.executable), "taskiq")
        both = f"{taskiq} scheduler taskiq_peer:scheduler & exec {taskiq} worker taskiq_peer:broker --workers 1"
        return ["sh", "-c", both]

    async def aone(self, mode: str, n: int, t: float, eta: float | None) -> None:
        if eta is None:
            await noop.kiq(mode, n, t)
        else:
            await noop.kicker().schedule_by_time(source, datetime.fromtimestamp(eta, UTC), mode, n, t)


if __name__ == "__main__":
    common.emit(common.measure(TaskiqPeer()))
