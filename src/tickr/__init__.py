"""tickr: a distributed job scheduler for Python.

app = tickr.App(redis_url="redis://localhost:6379/0")

@app.task(name="emails.send", max_retries=5)
async def send(to: str, subject: str) -> None: ...

await send.enqueue("a@example.com", subject="hi", delay=30)
"""

from tickr.app import App, Task
from tickr.config import Settings
from tickr.context import JobContext, current_job
from tickr.core.errors import (
    ConfigError,
    IdempotencyConflict,
    InvalidState,
    JobNotFound,
    Permanent,
    ReplicationShortfall,
    Retry,
    StoreError,
    StoreUnavailable,
    TickrError,
    ValidationError,
)
from tickr.core.job import Execution, Job, JobError, JobState, Priority
from tickr.core.retry import Backoff

__version__ = "0.1.0"

__all__ = [
    "App",
    "Backoff",
    "ConfigError",
    "Execution",
    "IdempotencyConflict",
    "InvalidState",
    "Job",
    "JobContext",
    "JobError",
    "JobNotFound",
    "JobState",
    "Permanent",
    "Priority",
    "ReplicationShortfall",
    "Retry",
    "Settings",
    "StoreError",
    "StoreUnavailable",
    "Task",
    "TickrError",
    "ValidationError",
    "__version__",
    "current_job",
]
