"""Runs one leased job: finds its handler, applies the timeout, and reports the outcome."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

from tickr.config import Settings
from tickr.context import JobContext, reset_current_job, set_current_job
from tickr.core.errors import Permanent, Retry
from tickr.core.job import JobError
from tickr.metrics import tracing
from tickr.metrics.instruments import DEAD, RETRIED, STALE, SUCCEEDED, Instruments
from tickr.store import codec
from tickr.store.store import LeasedJob, RedisStore
from tickr.tasks import TaskDef
from tickr.worker.completer import Completer

log = logging.getLogger("tickr.worker")
TRACEBACK_LIMIT = 4000


class JobTimeout(Exception):
    """The handler ran longer than the job's timeout."""


def describe_error(exc: BaseException) -> JobError:
    """Error type, message and a short traceback, as stored on the job."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=8))
    return JobError(type=type(exc).__name__, message=str(exc) or type(exc).__name__, traceback=text[-TRACEBACK_LIMIT:])


class Executor:
    """Executes jobs with the registered handlers and hands the outcome to Redis."""

    def __init__(
        self,
        store: RedisStore,
        registry: Mapping[str, TaskDef],
        completer: Completer,
        settings: Settings,
        worker_id: str,
        metrics: Instruments | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.log_jobs = settings.log_jobs
        self.registry = registry
        self.completer = completer
        self.settings = settings
        self.worker_id = worker_id
        self.succeeded = 0
        self.failed = 0

    async def run(self, leased: LeasedJob) -> None:
        """Run ``leased`` to an outcome: ack, retry or dead-letter. Cancellation propagates."""
        if tracing.active():
            with tracing.run_span(leased.job) as span:
                span.set_attribute("tickr.outcome", await self._run(leased))
            return
        await self._run(leased)

    async def _run(self, leased: LeasedJob) -> str:
        job = leased.job
        token = set_current_job(
            JobContext(job.id, job.type, job.queue, job.attempt, job.max_retries, self.worker_id, self.settings)
        )
        if self.log_jobs:
            log.info("job %s (%s) attempt %d started", job.id, job.type, job.attempt)
        started = time.perf_counter()
        try:
            result = await self._invoke(leased)
        except asyncio.CancelledError:
            raise
        except Permanent as exc:
            outcome = await self._fail(leased, exc, delay_s=0.0, permanent=True, started=started)
        except Retry as exc:
            delay = exc.after if exc.after is not None else job.backoff.next_delay(job.attempt, exc)
            outcome = await self._fail(leased, exc, delay_s=delay, permanent=False, started=started)
        except Exception as exc:
            delay = job.backoff.next_delay(job.attempt, exc)
            outcome = await self._fail(leased, exc, delay_s=delay, permanent=False, started=started)
        else:
            outcome = await self._ack(leased, result, started)
        finally:
            reset_current_job(token)
        return outcome

    async def _invoke(self, leased: LeasedJob) -> Any:
        job = leased.job
        task = self.registry.get(job.type)
        if task is None:
            raise Permanent(f"no handler for type '{job.type}'")
        args, kwargs = task.call_arguments(job.payload)
        if job.timeout is None:  # the common case: no timer to arm
            if task.is_async:
                return await task.fn(*args, **kwargs)
            return await asyncio.to_thread(task.fn, *args, **kwargs)
        try:
            if task.is_async:
                async with asyncio.timeout(job.timeout):
                    return await task.fn(*args, **kwargs)
            # A sync handler cannot be interrupted: on timeout the job fails, the thread runs on.
            async with asyncio.timeout(job.timeout):
                return await asyncio.to_thread(task.fn, *args, **kwargs)
        except TimeoutError:
            raise JobTimeout(f"job exceeded its timeout of {job.timeout:g}s") from None

    async def _ack(self, leased: LeasedJob, result: Any, started: float) -> str:
        ran = time.perf_counter() - started
        try:
            result_json = codec.dumps(result) if result is not None else ""
        except TypeError as exc:
            error = Permanent(f"result is not JSON-serialisable: {exc}")
            return await self._fail(leased, error, 0.0, permanent=True, started=started)
        acked = await self.completer.ack(leased.job.queue, leased.job.id, leased.token, result_json)
        self.succeeded += 1
        if self.metrics is not None and acked:  # a refused ack is counted by the completer, with its batch
            self.metrics.finished(leased.job, ran, SUCCEEDED)
        if self.log_jobs:
            log.info("job %s (%s) succeeded in %.3fs", leased.job.id, leased.job.type, ran)
        return SUCCEEDED if acked else STALE

    async def _fail(
        self, leased: LeasedJob, exc: BaseException, delay_s: float, permanent: bool, started: float
    ) -> str:
        ran = time.perf_counter() - started
        job = leased.job
        self.failed += 1
        outcome = await self.store.fail(
            job.queue, job.id, leased.token, describe_error(exc), delay_ms=int(delay_s * 1000), permanent=permanent
        )
        kind = STALE if outcome.kind == "stale" else RETRIED if outcome.kind == "retrying" else DEAD
        if self.metrics is not None:
            self.metrics.finished(job, ran, kind)
        if kind == STALE:
            log.warning("failure of job %s refused: its lease is held by another worker", job.id)
        elif kind == DEAD or self.log_jobs:  # a retry is routine: logged per job only with TICKR_LOG_JOBS
            log.log(
                logging.WARNING if kind == DEAD else logging.INFO,
                "job %s (%s) attempt %d failed: %s: %s -> %s",
                job.id,
                job.type,
                job.attempt,
                type(exc).__name__,
                exc,
                outcome.kind,
            )
        return kind
