"""The tickr exception tree and the handler outcome signals.

    TickrError
    ├── ConfigError             bad settings or command-line usage
    ├── ValidationError         a job or schedule definition that cannot be accepted
    ├── JobNotFound             no job with that id
    ├── InvalidState            the job's state does not allow the operation
    ├── IdempotencyConflict     an idempotency key reused with a different request
    └── StoreError              Redis/Valkey answered with an error (raised only by ``tickr.store``)
        ├── StoreUnavailable    Redis/Valkey cannot be reached (connection, timeout, failover in progress)
        └── ReplicationShortfall  a write reached the primary but fewer replicas than TICKR_REDIS_MIN_REPLICAS

Handler outcomes (raised inside a task, never leave the worker):

    Retry(after=None)   try again, optionally after a fixed delay (counts as an attempt)
    Permanent(reason)   do not retry: straight to the dead-letter queue
"""

from __future__ import annotations

from collections.abc import Sequence


class TickrError(Exception):
    """Base class of every error tickr raises on purpose."""


class ConfigError(TickrError):
    """Settings or command-line arguments that cannot work."""


class ValidationError(TickrError, ValueError):
    """A job or schedule definition that cannot be accepted.

    ``errors`` maps a field name (dotted for nested fields) to a message.
    """

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


class JobNotFound(TickrError, LookupError):
    """No job with the given id exists (or it has expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found")
        self.job_id = job_id


class InvalidState(TickrError):
    """The job exists but its current state does not allow the operation."""

    def __init__(self, job_id: str, state: str, operation: str) -> None:
        super().__init__(f"cannot {operation} job {job_id!r} in state {state!r}")
        self.job_id = job_id
        self.state = state
        self.operation = operation


class IdempotencyConflict(TickrError):
    """An idempotency key that already names a job made from a different request (the API answers 409).

    ``key`` and ``job_id`` (the job the key names) are those of the first conflict. A batch is written in full
    before this is raised: ``indexes`` are then the positions of every conflicting job, ``created`` the ids of
    the jobs the batch did create. The same request again is no conflict: it returns the first job.
    """

    def __init__(self, key: str, job_id: str, *, indexes: Sequence[int] = (), created: Sequence[str] = ()) -> None:
        super().__init__(f"idempotency key {key!r} reused with a different request (it names job {job_id})")
        self.key = key
        self.job_id = job_id
        self.indexes = list(indexes)
        self.created = list(created)


class StoreError(TickrError):
    """Redis/Valkey answered with an error reply; the store translates redis-py's errors into this."""


class StoreUnavailable(StoreError):
    """Redis/Valkey cannot be reached (connection refused or lost, timeout, cluster or primary failing over)."""


class ReplicationShortfall(StoreError):
    """A state change was applied on the primary, but ``WAIT`` counted fewer replicas than required in time.

    The change is not promised to survive a failover: the caller should treat it as not acknowledged (an
    enqueue retried with the same idempotency key is safe).
    """

    def __init__(self, acked: int, wanted: int, timeout_ms: int) -> None:
        super().__init__(f"the write reached {acked} of {wanted} required replicas within {timeout_ms} ms")
        self.acked = acked
        self.wanted = wanted
        self.timeout_ms = timeout_ms


class Retry(Exception):
    """Raise from a handler to retry the job, optionally after ``after`` seconds."""

    def __init__(self, reason: str = "retry requested", *, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Permanent(Exception):
    """Raise from a handler to fail the job without retrying: it goes to the dead-letter queue."""

    def __init__(self, reason: str = "permanent failure") -> None:
        super().__init__(reason)
