"""The cron scheduler service: fires due schedules exactly once across any number of replicas, with no leader.

Per due schedule: plan the occurrences from the stored ``next_run_at`` (scheduler/cron.py), enqueue each job
with the idempotency key ``schedule:<id>:<fire ms>``, then advance ``next_run_at`` by compare-and-set
(``schedule_fire.lua``). Racing replicas enqueue the same job (the key makes the later calls no-ops returning
its id) and exactly one advance wins; a replica killed between the two steps leaves the occurrence due, and
the next replica's enqueue returns the job already made. Sleeps until the earliest due time; a change to any
schedule wakes it through the notify zset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from tickr.core.cron import CronSpec, parse_schedule
from tickr.core.errors import InvalidState, JobNotFound, StoreError
from tickr.core.factory import new_job
from tickr.core.job import Job, JobState
from tickr.core.schedule import FiredRun, FireRequest, Schedule
from tickr.lifecycle import LoopService
from tickr.metrics.instruments import Instruments, instruments
from tickr.scheduler.cron import MISFIRE_TOLERANCE_MS, FirePlan, plan_fires
from tickr.scheduler.manager import Schedules
from tickr.store.store import EnqueueResult, RedisStore
from tickr.tasks import TaskCatalog

log = logging.getLogger("tickr.scheduler")

IDEMPOTENCY_MARGIN_MS = 60_000  # occurrences older than the idempotency TTL minus this are never enqueued
_SEEN_TOKENS = 256
_PARK_SECONDS = 60.0
_FIRE_MARGIN_MS = 1.0  # aim just past the fire time: loop timers (uvloop: whole ms) may fire a little early


@dataclass(slots=True)
class _Pass:
    """One due schedule in one pass: its plan, the occurrences it will run, and what enqueue returned."""

    schedule: Schedule
    expected: int
    plan: FirePlan
    run: list[int]
    skipped: int = 0
    runs: list[FiredRun] = field(default_factory=list)
    results: list[EnqueueResult] = field(default_factory=list)


@dataclass(slots=True)
class SchedulerConfig:
    """How one scheduler runs. Times in seconds unless the name says ms."""

    max_sleep_seconds: float = 5.0  # longest sleep without looking at the due zset
    misfire_tolerance_ms: int = MISFIRE_TOLERANCE_MS  # later than this, an occurrence is a misfire
    batch: int = 100  # due schedules handled per pass
    error_backoff_seconds: float = 1.0  # pause after a pass that failed
    lead_ms: int = 20  # wake this early to read and plan, then enqueue right at the fire time


class SchedulerService(LoopService):
    """Fires the due occurrences of every active schedule. Run any number at once.

    A ``Service``: ``start()``/``stop()``; ``passes`` advances after every pass. ``run_once()`` is one pass
    (tests drive it with an injected clock). Stop order: the notify listener, then the firing loop.
    """

    name = "scheduler"
    log = log

    def __init__(
        self, app: TaskCatalog, config: SchedulerConfig | None = None, *, store: RedisStore | None = None
    ) -> None:
        super().__init__()
        self.app = app
        self.config = config or SchedulerConfig()
        self.max_backoff = self.config.error_backoff_seconds
        self.store = store or app.store
        self.schedules = self.store.schedules
        self.clock = self.store.clock
        self.manager = Schedules(app, self.store)
        ttl = self.store.config.idempotency_ttl_ms
        self.horizon_ms = max(ttl - IDEMPOTENCY_MARGIN_MS, ttl // 2)
        self.fired = 0
        settings = getattr(app, "settings", None)  # a TaskCatalog need not carry settings: metrics on by default
        self.metrics: Instruments | None = instruments(getattr(settings, "metrics", True))
        self.listener = _NotifyListener(self)
        self._synced = False
        self._specs: dict[tuple[str, str], CronSpec] = {}
        self._parked: dict[str, float] = {}  # schedule id -> monotonic time until which it is left alone

    async def setup(self) -> None:
        """Upsert the app's periodic definitions (retried each pass until Redis answers), start listening."""
        self._synced = await self._sync_periodic()
        await self.listener.start()
        log.info("scheduler started (%d periodic definitions)", len(self.app.periodic))

    async def run_pass(self) -> float:
        self._synced = self._synced or await self._sync_periodic()
        return await self.run_once()

    async def stop(self) -> None:
        await self.listener.stop()
        was_running = self.running
        await super().stop()
        if was_running:
            log.info("scheduler stopped (%d jobs fired)", self.fired)

    async def _sync_periodic(self) -> bool:
        """Create or update the app's ``@task(cron=...)`` schedules; False (logged) when Redis cannot be reached."""
        try:
            await self.manager.sync_periodic()
        except StoreError as exc:
            log.warning("could not sync periodic tasks yet: %s", exc)
            return False
        return True

    async def run_once(self) -> float:
        """Fire what is due (or due within ``lead_ms``, at its time); return how long to sleep (capped)."""
        self._wake.clear()  # a change notified from here on wakes the coming sleep
        sent = self.clock.local_ms()
        now, head = await self.schedules.due_now(self.config.batch + len(self._parked))
        if not self.store.clock_arg():
            self.clock.observe(now, sent, self.clock.local_ms())
        head = self._unparked(head)[: self.config.batch]
        # The earliest fire time, if it is at most lead_ms away (none with a test clock), and all due by then.
        lead = 0 if self.store.clock_arg() else self.config.lead_ms
        target = max(now, head[0][1]) if head and head[0][1] <= now + lead else now
        due = [schedule_id for schedule_id, at in head if at <= target]
        failed = False
        if due:
            try:
                await self._fire_due(due, target)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failed = True
                log.warning("firing due schedules failed: %r", exc)
            after = self._unparked((await self.schedules.due_now(len(self._parked) + 1))[1])
            next_due = after[0][1] if after else None
        else:
            next_due = head[0][1] if head else None
        if failed:
            return self.config.error_backoff_seconds
        if len(due) >= self.config.batch:
            return 0.0
        if next_due is None:
            return self.config.max_sleep_seconds
        wake_at = next_due - self.config.lead_ms
        return max(0.0, min(self.config.max_sleep_seconds, self.clock.seconds_until(wake_at)))

    def _park(self, schedule_id: str, reason: str) -> None:
        """Leave a schedule this scheduler cannot handle alone for a while, instead of spinning on it."""
        log.error("schedule %s: %s; retrying in %.0f s", schedule_id, reason, _PARK_SECONDS)
        self._parked[schedule_id] = time.monotonic() + _PARK_SECONDS

    def _unparked(self, head: list[tuple[str, int]]) -> list[tuple[str, int]]:
        now = time.monotonic()
        for schedule_id in [i for i, until in self._parked.items() if until <= now]:
            del self._parked[schedule_id]
        return [(i, at) for i, at in head if i not in self._parked]

    # -- firing -------------------------------------------------------------------------------
    async def _fire_due(self, due: list[str], at: int) -> None:
        """Plan the schedules due at ``at`` and build their jobs (ahead of time), wait for ``at``, then
        enqueue all the jobs and advance all the schedules: three round trips in all."""
        batch: list[_Pass] = []
        for schedule_id, schedule in zip(due, await self.schedules.get_many(due), strict=True):
            planned = self._plan(schedule, at) if schedule else None
            if schedule is None:
                self._park(schedule_id, "listed as due but its record is missing")
            elif planned is not None:
                batch.append(planned)
        if not batch:
            return
        await self._apply_overlap(batch)
        jobs = [(p, fire, self._job(p.schedule, fire)) for p in batch for fire in p.run]
        wait = self.clock.seconds_until(at + _FIRE_MARGIN_MS)
        if wait > 0:
            await asyncio.sleep(wait)
        results = await self.schedules.enqueue_jobs([job for _, _, job in jobs])
        for (p, fire, job), result in zip(jobs, results, strict=True):
            p.runs.append(FiredRun(fire, job.queue, result.id))
            p.results.append(result)
        if self.metrics is not None:
            self.metrics.enqueued(job for (_, _, job), r in zip(jobs, results, strict=True) if r.created)
        requests = [
            FireRequest(p.schedule.id, p.expected, p.plan.next_run_at, p.runs, p.skipped, p.plan.misfired)
            for p in batch
        ]
        for p, (advanced, _) in zip(batch, await self.schedules.fire_many(requests), strict=True):
            if advanced:
                self._advanced(p)
            else:
                await self._drop_orphans(p.schedule.id, p.runs, p.results)

    def _plan(self, schedule: Schedule, now: int) -> _Pass | None:
        expected = schedule.next_run_at
        if expected is not None and expected > now:
            return None  # advanced by another scheduler since we listed it
        if not schedule.is_active or schedule.deleted or expected is None:
            self._park(schedule.id, "listed as due but not active")  # the scripts never leave it so
            return None
        try:
            plan = plan_fires(
                self._spec(schedule),
                expected,
                now,
                policy=schedule.misfire,
                max_catch_up=schedule.max_catch_up,
                tolerance_ms=self.config.misfire_tolerance_ms,
                horizon_ms=self.horizon_ms,
            )
        except Exception as exc:  # e.g. a timezone this host's tz database lacks: another scheduler may know it
            self._park(schedule.id, f"cannot be planned: {exc!r}")
            return None
        return _Pass(schedule, expected, plan, list(plan.run))

    async def _apply_overlap(self, batch: list[_Pass]) -> None:
        """With ``overlap`` off, run at most the newest occurrence, and none while the last job is unfinished."""
        single = [p for p in batch if not p.schedule.overlap and p.run]
        waiting = [p for p in single if p.schedule.last_job_id and p.schedule.last_job_queue]
        refs = [(p.schedule.last_job_queue or "", p.schedule.last_job_id or "") for p in waiting]
        statuses = dict(zip(map(id, waiting), await self.schedules.job_statuses(refs), strict=True)) if refs else {}
        for p in single:
            status = statuses.get(id(p))
            keep = [] if status is not None and not JobState(status).is_final else p.run[-1:]
            p.skipped = len(p.run) - len(keep)
            p.run = keep

    def _advanced(self, p: _Pass) -> None:
        self.fired += len(p.runs)
        if self.metrics is not None:
            self.metrics.fired(p.schedule.id, len(p.runs), p.plan.misfired)
        if p.plan.late:
            log.warning(
                "schedule %s misfired (%s): ran %d occurrence(s), missed %d",
                p.schedule.id,
                p.schedule.misfire,
                len(p.runs),
                p.plan.misfired,
            )
        if p.skipped:
            log.info(
                "schedule %s: skipped %d occurrence(s), the previous run is not finished", p.schedule.id, p.skipped
            )

    def _job(self, schedule: Schedule, fire_ms: int) -> Job:
        t = schedule.template
        return new_job(
            t.type,
            t.payload,
            queue=t.queue,
            priority=t.priority,
            max_retries=t.max_retries,
            backoff=t.backoff,
            timeout=t.timeout,
            execution=t.execution,
            idempotency_key=f"schedule:{schedule.id}:{fire_ms}",
            name=schedule.name,
            schedule_id=schedule.id,
        )

    async def _drop_orphans(self, schedule_id: str, runs: list[FiredRun], results: list[EnqueueResult]) -> None:
        """We lost the compare-and-set: cancel jobs we created for occurrences the winner did not record.

        This happens only when racing replicas planned differently (a misfire seen at slightly different
        times, an overlap check racing the previous job's end) or an edit moved the schedule meanwhile.
        """
        for run, result in zip(runs, results, strict=True):
            if result.created and not await self.schedules.recorded(schedule_id, run.queue, run.job_id):
                with contextlib.suppress(InvalidState, JobNotFound):
                    await self.store.jobs.cancel(run.job_id, run.queue)
                    log.info(
                        "schedule %s: cancelled job %s of an occurrence another scheduler skipped",
                        schedule_id,
                        run.job_id,
                    )

    def _spec(self, schedule: Schedule) -> CronSpec:
        key = (schedule.cron, schedule.timezone)
        spec = self._specs.get(key)
        if spec is None:
            if len(self._specs) > 10_000:
                self._specs.clear()
            spec = self._specs[key] = parse_schedule(schedule.cron, schedule.timezone)
        return spec


class _NotifyListener(LoopService):
    """Blocks on the notify zset; on a new token wakes the scheduler and passes the token on to the next one."""

    name = "scheduler-listener"
    log = log
    max_backoff = 1.0

    def __init__(self, scheduler: SchedulerService) -> None:
        super().__init__()
        self.scheduler = scheduler
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def run_pass(self) -> float:
        popped = await self.scheduler.schedules.wait_notify(self.scheduler.config.max_sleep_seconds)
        if popped is None or popped[0] in self._seen:
            return 0.0  # a token we saw before has been round every scheduler: drop it
        self._seen[popped[0]] = None
        while len(self._seen) > _SEEN_TOKENS:
            self._seen.popitem(last=False)
        self.scheduler.wake()
        await self.scheduler.schedules.renotify(*popped)
        return 0.0
