"""The admin path to Redis: find and read jobs, cancel, replay, update; queue and worker listings."""

from __future__ import annotations

from typing import Any

from tickr.core.errors import InvalidState, JobNotFound
from tickr.core.job import Job
from tickr.store import codec
from tickr.store.keys import queues_registry
from tickr.store.store import RedisStore


class Inspector:
    """Read and administer jobs and queues. Shares the store's client, keys and scripts."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.redis = store.redis

    async def queues(self) -> list[str]:
        """Every queue name ever enqueued to, sorted."""
        members = await self.redis.smembers(queues_registry(self.store.config.prefix))
        return sorted(str(m) for m in members)

    async def locate(self, job_id: str, queue: str | None = None) -> str:
        """The queue holding job ``job_id``; ``JobNotFound`` if none does."""
        candidates = [queue] if queue else await self.queues()
        if not candidates:
            raise JobNotFound(job_id)
        pipe = self.redis.pipeline(transaction=False)
        for name in candidates:
            pipe.exists(self.store.keys(name).job(job_id))
        for name, found in zip(candidates, await pipe.execute(), strict=True):
            if found:
                return name
        raise JobNotFound(job_id)

    async def get_job(self, job_id: str, queue: str | None = None) -> Job:
        """The job ``job_id`` as stored now."""
        queue = await self.locate(job_id, queue)
        data = await self.redis.hgetall(self.store.keys(queue).job(job_id))
        if not data:
            raise JobNotFound(job_id)
        return codec.job_from_hash(job_id, queue, codec.pairs_to_dict([x for kv in data.items() for x in kv]))

    def _check(self, job_id: str, reply: list[Any], operation: str) -> str:
        code, status = int(reply[0]), str(reply[1])
        if code == -1:
            raise JobNotFound(job_id)
        if code == -2:
            raise InvalidState(job_id, status, operation)
        return status

    async def cancel(self, job_id: str, queue: str | None = None) -> str:
        """Cancel a job that has not started; returns its new status."""
        queue = await self.locate(job_id, queue)
        s = self.store
        args = [job_id, s.clock_arg(), s.config.retention_ms, s.config.events_maxlen]
        return self._check(job_id, await s.scripts.cancel(s.keys(queue), job_id, args), "cancel")

    async def replay(self, job_id: str, queue: str | None = None) -> str:
        """Bring a dead, lost or cancelled job back to ready with fresh attempts."""
        queue = await self.locate(job_id, queue)
        s = self.store
        args = [job_id, s.clock_arg(), s.config.events_maxlen]
        return self._check(job_id, await s.scripts.replay(s.keys(queue), job_id, args), "retry")

    async def update(
        self,
        job_id: str,
        *,
        queue: str | None = None,
        priority: str | None = None,
        due_ms: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """Change priority, due time (``due_ms``; 0 or past = now) or payload of a job not yet started."""
        queue = await self.locate(job_id, queue)
        s = self.store
        due_arg = 0 if due_ms is None else (due_ms if due_ms > 0 else -1)
        args = [
            job_id,
            s.clock_arg(),
            priority or "",
            due_arg,
            codec.dumps(payload) if payload is not None else "",
            s.config.events_maxlen,
        ]
        return self._check(job_id, await s.scripts.update(s.keys(queue), job_id, args), "update")
