"""The tickr application: a task registry plus enqueue/get/cancel/replay. No I/O at import or construction."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeAlias, TypeVar, overload

from tickr.config import Settings, discover_redis_url
from tickr.core.cron import parse_schedule
from tickr.core.errors import ConfigError, ValidationError
from tickr.core.factory import new_job
from tickr.core.job import Execution, Job, Priority, validate_type_name
from tickr.core.retry import Backoff
from tickr.metrics import tracing
from tickr.metrics.instruments import instruments
from tickr.scheduler.manager import Schedules
from tickr.store.connection import connect
from tickr.store.job_admin import JobAdmin
from tickr.store.store import RedisStore, StoreConfig
from tickr.tasks import ENQUEUE_OPTIONS, Periodic, TaskDef, TaskOptions, build_job, due_time_ms

if TYPE_CHECKING:
    import pydantic

REGISTERED_TASKS_MAX_AGE = 2.0  # seconds a read of the task registry is reused

P = ParamSpec("P")
R = TypeVar("R")

Call: TypeAlias = tuple[Any, ...] | dict[str, Any]
"""One item of ``Task.enqueue_many``: positional arguments, keyword arguments, or ``(args, kwargs)``."""


class Task(Generic[P, R]):
    """A function registered with ``@app.task``: still callable directly, plus ``enqueue``."""

    def __init__(self, app: App, definition: TaskDef) -> None:
        self.app = app
        self.definition = definition
        self.name = definition.name
        self.__doc__ = definition.fn.__doc__
        self.__wrapped__ = definition.fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self.definition.fn(*args, **kwargs)
        return result

    def _split(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in ENQUEUE_OPTIONS}
        return kwargs, options

    async def enqueue(self, *args: Any, **kwargs: Any) -> str:
        """Enqueue a run with these arguments; returns the job id.

        Keyword arguments named ``queue``, ``priority``, ``delay``, ``run_at``, ``idempotency_key``,
        ``max_retries``, ``timeout``, ``backoff`` and ``execution`` are job options, not arguments.
        """
        call_kwargs, options = self._split(kwargs)
        payload = self.definition.payload_from_call(args, call_kwargs)
        return await self.app.enqueue(self.name, payload, **options)

    def enqueue_sync(self, *args: Any, **kwargs: Any) -> str:
        """``enqueue`` for code that is not async."""
        call_kwargs, options = self._split(kwargs)
        payload = self.definition.payload_from_call(args, call_kwargs)
        return self.app.enqueue_sync(self.name, payload, **options)

    async def enqueue_many(self, calls: Iterable[Call], **options: Any) -> list[str]:
        """Enqueue one run per item of ``calls`` in one round trip; returns the job ids, in order.

        Each item is one call of the task:

        - a tuple of positional arguments: ``("a@example.com", "hi")``;
        - a dict of keyword arguments: ``{"to": "a@example.com", "subject": "hi"}``;
        - ``(args, kwargs)``, a tuple and a dict: ``(("a@example.com",), {"subject": "hi"})``. Any 2-tuple of
          a tuple and a dict is read this way; to pass those as two positional arguments, write
          ``((pair, mapping), {})``.

        Job options (``queue``, ``delay``, ...) go among an item's keyword arguments, as with ``enqueue``, or
        here as keyword arguments for every item; an item's own win. Every item is checked before any is sent.
        """
        return await self.app.enqueue_many(self._batch(calls, options))

    def enqueue_many_sync(self, calls: Iterable[Call], **options: Any) -> list[str]:
        """``enqueue_many`` for code that is not async."""
        return self.app.enqueue_many_sync(self._batch(calls, options))

    def _batch(self, calls: Iterable[Call], options: dict[str, Any]) -> list[dict[str, Any]]:
        unknown = set(options) - ENQUEUE_OPTIONS
        if unknown:
            raise TypeError(f"unknown enqueue option(s): {', '.join(sorted(unknown))}")
        batch = []
        for index, item in enumerate(calls):
            if isinstance(item, dict):
                args, kwargs = (), dict(item)
            elif _is_args_kwargs(item):
                args, kwargs = item[0], dict(item[1])
            elif isinstance(item, tuple):
                args, kwargs = item, {}
            else:
                raise TypeError(
                    f"jobs[{index}]: each item is a tuple of positional arguments, a dict of keyword arguments, "
                    f"or (args, kwargs); got {type(item).__name__}"
                )
            call_kwargs, own = self._split(kwargs)
            try:
                payload = self.definition.payload_from_call(args, call_kwargs)
            except TypeError as exc:
                raise TypeError(f"jobs[{index}]: {exc}") from None
            batch.append({**options, **own, "type": self.name, "payload": payload})
        return batch


class App:
    """A tickr application: register tasks with ``@app.task``, enqueue jobs, inspect them.

    Connecting to Redis is lazy: nothing happens until the first call that needs it.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        settings: Settings | None = None,
        prefix: str = "tickr",
        builtins: bool = True,
    ) -> None:
        self.settings = settings or Settings()
        if redis_url is not None:
            self.settings = self.settings.model_copy(update={"redis_url": redis_url})
        self.prefix = prefix
        self.registry: dict[str, TaskDef] = {}
        self.periodic: dict[str, Periodic] = {}
        self._store: RedisStore | None = None
        self._sync_bridge: _SyncBridge | None = None
        self._registered: dict[str, TaskOptions] = {}  # task types workers registered in Redis, and their defaults
        self._registered_at = -math.inf
        if builtins:
            from tickr.handlers import BUILTIN_HANDLERS, BUILTIN_PAYLOADS

            for name, fn in BUILTIN_HANDLERS.items():
                model = BUILTIN_PAYLOADS[name]
                self.registry[name] = TaskDef(name, fn, TaskOptions(), raw_payload=True, payload_model=model)

    # -- registry ---------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: Priority | str = Priority.DEFAULT,
        max_retries: int | None = None,
        backoff: Backoff | dict[str, float] | None = None,
        timeout: float | None = None,
        execution: Execution | str = Execution.AT_LEAST_ONCE,
        cron: str | None = None,
        timezone: str = "UTC",
        payload: type[pydantic.BaseModel] | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: Priority | str = Priority.DEFAULT,
        max_retries: int | None = None,
        backoff: Backoff | dict[str, float] | None = None,
        timeout: float | None = None,
        execution: Execution | str = Execution.AT_LEAST_ONCE,
        cron: str | None = None,
        timezone: str = "UTC",
        payload: type[pydantic.BaseModel] | None = None,
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a handler (async or sync). Records a definition only; no I/O.

        ``name`` defaults to ``module.function``; give one explicitly so renaming the function
        does not orphan queued jobs. With ``cron`` (and ``timezone``) the task also runs on that
        schedule: ``app.periodic`` records it and schedulers create its schedule when they start
        (with an empty payload, which must fit the task).

        Payloads are checked at enqueue against ``payload``, a pydantic model of the payload object
        (the keyword arguments the handler is called with), or else against the handler's signature:
        its annotations, strictly (``"5"`` is not an ``int``); unannotated parameters take any JSON.
        A payload that does not fit raises ``ValidationError`` naming each ``payload.<field>``.
        """
        if cron is not None:
            parse_schedule(cron, timezone)  # fail at decoration, not in the scheduler

        def register(func: Callable[P, R]) -> Task[P, R]:
            task_name = validate_type_name(name or f"{func.__module__}.{func.__qualname__}")
            probe = new_job(
                task_name,
                {},
                queue=queue,
                priority=priority,
                max_retries=max_retries or 0,
                backoff=backoff,
                timeout=timeout,
                execution=execution,
            )  # validates the options
            options = TaskOptions(
                queue=probe.queue,
                priority=probe.priority,
                max_retries=self.settings.default_max_retries if max_retries is None else max_retries,
                backoff=probe.backoff,
                timeout=probe.timeout,
                execution=probe.execution,
            )
            definition = TaskDef(name=task_name, fn=func, options=options, payload_model=payload)
            if cron is not None:
                try:
                    definition.validate_payload({})
                except ValidationError as exc:
                    message = f"cron task {task_name!r} is fired with no payload: {exc}"
                    raise ValidationError(message, exc.errors) from None
            self.registry[task_name] = definition
            if cron is not None:
                self.periodic[task_name] = Periodic(task_name, cron, timezone)
            return Task(self, definition)

        return register(fn) if fn is not None else register

    # -- connection ---------------------------------------------------------------------------
    @property
    def store(self) -> RedisStore:
        """The hot-path store (connects lazily)."""
        if self._store is None:
            url = discover_redis_url(self.settings)
            if not url:
                raise ConfigError("no Redis URL: pass App(redis_url=...), set TICKR_REDIS_URL or start `tickr up` here")
            redis = connect(url, cluster=self.settings.redis_cluster)
            self._store = RedisStore(redis, StoreConfig.from_settings(self.settings, self.prefix))
        return self._store

    @property
    def inspector(self) -> JobAdmin:
        """The job admin path of the store (``store.jobs``)."""
        return self.store.jobs

    async def close(self) -> None:
        """Close the Redis connections."""
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self._sync_bridge is not None:
            self._sync_bridge.close()
            self._sync_bridge = None

    # -- enqueue ------------------------------------------------------------------------------
    def build_job(self, type: str, payload: dict[str, Any] | None = None, **options: Any) -> Job:
        """A validated job for ``type``, with the task's defaults where options are not given: this app's
        task, else the defaults a worker registered for the type (``registered_tasks``)."""
        defaults = self.settings.default_max_retries
        return build_job(self.registry, defaults, type, payload, remote=self._registered, **options)

    async def registered_tasks(self, max_age: float = REGISTERED_TASKS_MAX_AGE) -> dict[str, TaskOptions]:
        """The task types workers have registered in Redis with their defaults (read at most every ``max_age`` s)."""
        if time.monotonic() - self._registered_at > max_age:
            found = await self.store.workers.tasks()
            self._registered = {name: TaskOptions.from_dict(d) for name, d in found.items()}
            self._registered_at = time.monotonic()
        return self._registered

    async def knows_type(self, type: str) -> bool:
        """True when this app defines ``type`` or a worker has registered it."""
        return type in self.registry or type in await self.registered_tasks()

    async def enqueue(self, type: str, payload: dict[str, Any] | None = None, **options: Any) -> str:
        """Enqueue a job of ``type`` by name; returns its id (the existing one for a known idempotency key)."""
        if type not in self.registry:
            await self.registered_tasks()  # a type of another app's workers: take the defaults they registered
        job = self.build_job(type, payload, **options)
        due = due_time_ms(options.get("delay"), options.get("run_at"), _now_ms())
        with tracing.enqueue_span((job,)):
            result = await self.store.enqueue(job, due)
        if result.created:
            self.count_enqueued((job,))
        return result.id

    def count_enqueued(self, jobs: Iterable[Job]) -> None:
        """Count ``jobs`` in ``tickr_jobs_enqueued_total`` (when metrics are on): callers of the store's enqueue."""
        metrics = instruments(self.settings.metrics)
        if metrics is not None:
            metrics.enqueued(jobs)

    async def enqueue_many(self, jobs: Iterable[tuple[str, dict[str, Any]] | dict[str, Any]]) -> list[str]:
        """Enqueue a batch in one round trip. Each item is ``(type, payload)`` or a dict with
        ``type``, ``payload`` and any enqueue option. Every job is checked before any is sent;
        a ``ValidationError`` names the fields of the first bad one as ``jobs[<index>].<field>``."""
        items = list(jobs)
        if any((item[0] if isinstance(item, tuple) else item.get("type")) not in self.registry for item in items):
            await self.registered_tasks()
        now = _now_ms()
        built: list[tuple[Job, int | None]] = []
        for index, item in enumerate(items):
            if isinstance(item, tuple):
                spec: dict[str, Any] = {"type": item[0], "payload": item[1]}
            else:
                spec = dict(item)
            job_type, payload = spec.pop("type"), spec.pop("payload", None)
            try:
                job = self.build_job(job_type, payload, **spec)
                due = due_time_ms(spec.get("delay"), spec.get("run_at"), now)
            except ValidationError as exc:
                errors = {f"jobs[{index}].{name}": message for name, message in exc.errors.items()}
                raise ValidationError(f"jobs[{index}]: {exc}", errors) from None
            built.append((job, due))
        with tracing.enqueue_span([job for job, _ in built]):
            results = await self.store.enqueue_many(built)
        self.count_enqueued(job for (job, _), r in zip(built, results, strict=True) if r.created)
        return [r.id for r in results]

    def enqueue_sync(self, type: str, payload: dict[str, Any] | None = None, **options: Any) -> str:
        """``enqueue`` for code that is not async (runs on a private event loop thread)."""
        bridge = self._bridge()
        return bridge.run(bridge.app.enqueue(type, payload, **options))

    def enqueue_many_sync(self, jobs: Iterable[tuple[str, dict[str, Any]] | dict[str, Any]]) -> list[str]:
        """``enqueue_many`` for code that is not async."""
        bridge = self._bridge()
        return bridge.run(bridge.app.enqueue_many(list(jobs)))

    def _bridge(self) -> _SyncBridge:
        if self._sync_bridge is None:
            self._sync_bridge = _SyncBridge(App(settings=self.settings, prefix=self.prefix, builtins=False), self)
        return self._sync_bridge

    async def schedule(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        cron: str,
        timezone: str = "UTC",
        misfire: str = "skip",
        max_catch_up: int = 10,
        overlap: bool = True,
        name: str | None = None,
        schedule_id: str | None = None,
        **options: Any,
    ) -> str:
        """Create a recurring job of ``type`` firing on ``cron`` in ``timezone``; returns the schedule id.

        ``options``: queue, priority, max_retries, timeout, execution, backoff. See docs/schedules.md.
        """
        created = await Schedules(self).create(
            type,
            payload,
            cron=cron,
            timezone=timezone,
            misfire=misfire,
            max_catch_up=max_catch_up,
            overlap=overlap,
            name=name,
            schedule_id=schedule_id,
            **options,
        )
        return created.id

    # -- admin --------------------------------------------------------------------------------
    async def get_job(self, job_id: str) -> Job:
        """The job as stored now; ``JobNotFound`` if unknown or expired."""
        return await self.inspector.get_job(job_id)

    async def cancel(self, job_id: str) -> str:
        """Cancel a job that has not started."""
        return await self.inspector.cancel(job_id)

    async def replay(self, job_id: str) -> str:
        """Bring a dead (or lost, or cancelled) job back to its queue with fresh attempts."""
        return await self.inspector.replay(job_id)

    retry = replay  # the word Celery and BullMQ users look for; ``replay`` is tickr's


def _is_args_kwargs(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], tuple) and isinstance(item[1], dict)


def _now_ms() -> int:
    return -(-time.time_ns() // 1_000_000)  # rounded up, like due times: a delay never ends early


class _SyncBridge:
    """An event loop on a daemon thread, so sync code can enqueue without an event loop of its own."""

    def __init__(self, private_app: App, owner: App) -> None:
        self.app = private_app
        self.app.registry = owner.registry
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tickr-sync-enqueue", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.run(self.app.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
