"""Redis key names. Every key of a queue carries the queue's hash tag, so one queue lives in one cluster slot."""

from __future__ import annotations

from dataclasses import dataclass, field

from tickr.core.job import PRIORITIES, Priority, validate_queue_name

DEFAULT_PREFIX = "tickr"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue: ``<prefix>:{<queue>}:...``."""

    queue: str
    prefix: str = DEFAULT_PREFIX
    base: str = field(init=False)
    _ready_all: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_queue_name(self.queue)
        object.__setattr__(self, "base", f"{self.prefix}:{{{self.queue}}}:")
        # Made once: every hot-path script call lists them.
        object.__setattr__(self, "_ready_all", tuple(self.base + "ready:" + p.value for p in PRIORITIES))

    @property
    def job_prefix(self) -> str:
        return self.base + "job:"

    def job(self, job_id: str) -> str:
        return self.base + "job:" + job_id

    def ready(self, priority: Priority | str) -> str:
        return self.base + "ready:" + str(priority)

    @property
    def ready_all(self) -> list[str]:
        """The four ready lists, critical first."""
        return list(self._ready_all)

    def idem(self, key: str) -> str:
        return self.base + "idem:" + key

    @property
    def idem_prefix(self) -> str:
        """Prefix of the idempotency keys (``<prefix><key>``; the enqueue script builds them)."""
        return self.base + "idem:"

    @property
    def scheduled(self) -> str:
        return self.base + "scheduled"

    @property
    def active(self) -> str:
        return self.base + "active"

    @property
    def dead(self) -> str:
        return self.base + "dead"

    @property
    def done(self) -> str:
        return self.base + "done"

    @property
    def marker(self) -> str:
        return self.base + "marker"

    @property
    def events(self) -> str:
        return self.base + "events"

    @property
    def stats(self) -> str:
        return self.base + "stats"

    @property
    def paused(self) -> str:
        return self.base + "paused"

    @property
    def beats(self) -> str:
        """Zset: worker id -> server ms of its last heartbeat, for the workers serving this queue (liveness)."""
        return self.base + "beats"

    def worker_types(self, worker_id: str) -> str:
        """Set: the task types worker ``worker_id`` runs (expires with its heartbeats)."""
        return self.base + "wtypes:" + worker_id

    @property
    def types(self) -> str:
        """Zset: task type -> last time (ms) a worker serving this queue registered it."""
        return self.base + "types"

    @property
    def parked(self) -> str:
        """Hash: task type -> when its first job was parked (no worker that dequeued could run it)."""
        return self.base + "parked"

    @property
    def pending_prefix(self) -> str:
        """Prefix of the per-type lists of parked job ids (``<prefix><type>``; scripts discover the type)."""
        return self.base + "pending:"

    def pending(self, job_type: str) -> str:
        return self.base + "pending:" + job_type

    @property
    def type_marker_prefix(self) -> str:
        """Prefix of the per-type wake-up markers: workers running a type also block on ``<prefix><type>``."""
        return self.base + "marker:"

    def type_marker(self, job_type: str) -> str:
        return self.base + "marker:" + job_type


def queues_registry(prefix: str = DEFAULT_PREFIX) -> str:
    """Set of every queue name ever used."""
    return f"{prefix}:queues"


def workers_registry(prefix: str = DEFAULT_PREFIX) -> str:
    """Sorted set of worker ids, scored by their last heartbeat (ms)."""
    return f"{prefix}:workers"


def task_registry(prefix: str = DEFAULT_PREFIX) -> str:
    """Hash: task type -> JSON of the defaults the last worker registering it declared."""
    return f"{prefix}:tasks"


def worker_info(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Hash describing one worker, expiring when its heartbeats stop."""
    return f"{prefix}:worker:{worker_id}"


@dataclass(frozen=True, slots=True)
class ScheduleKeys:
    """The keys of recurring-job schedules: ``<prefix>:{schedules}:...``, all in one cluster slot."""

    prefix: str = DEFAULT_PREFIX
    base: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", f"{self.prefix}:{{schedules}}:")

    def schedule(self, schedule_id: str) -> str:
        """Hash: one schedule's definition, state and counters."""
        return self.base + "schedule:" + schedule_id

    def fired(self, schedule_id: str) -> str:
        """Zset: the schedule's recent runs, member ``<queue>/<job id>``, score = fire time (ms)."""
        return self.base + "fired:" + schedule_id

    @property
    def due(self) -> str:
        """Zset: id of every active schedule, score = its next fire time (ms)."""
        return self.base + "due"

    @property
    def all(self) -> str:
        """Zset: every schedule id (deleted ones too), score = creation time (ms)."""
        return self.base + "all"

    @property
    def events(self) -> str:
        """Stream: schedule definition changes (saved, deleted), read by the history sink."""
        return self.base + "events"

    @property
    def stats(self) -> str:
        """Hash: counters of the schedules' slot (``events_dropped``)."""
        return self.base + "stats"

    @property
    def notify(self) -> str:
        """Zset: wake-up tokens for schedulers blocked in BZPOPMIN, written when a schedule changes."""
        return self.base + "notify"
