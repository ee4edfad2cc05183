"""Task routes: the task types workers have registered, their defaults, and the live workers that run them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tickr.api.deps import WorkersDep
from tickr.api.views import problem_responses

router = APIRouter(tags=["tasks"])


class TaskOut(BaseModel):
    type: str
    defaults: dict[str, Any]  # queue, priority, max_retries, backoff, timeout, execution
    workers: list[str]  # live workers that run it
    queues: list[str]  # queues those workers serve


class TaskListOut(BaseModel):
    tasks: list[TaskOut]


@router.get("/tasks", responses=problem_responses())
async def list_tasks(workers: WorkersDep) -> TaskListOut:
    """Every task type a worker has registered (with the defaults a job of that type inherits when it is
    submitted by name), and the live workers that run it now: none when its workers are gone."""
    registered = await workers.tasks()
    live = await workers.live()
    out = []
    for name in sorted(registered):
        running = [w for w in live if name in w.types or "*" in w.types]
        queues = sorted({q for w in running for q in w.queues})
        out.append(TaskOut(type=name, defaults=registered[name], workers=[w.id for w in running], queues=queues))
    return TaskListOut(tasks=out)
