"""One lifecycle for every background service: start, an idempotent stop, a started signal and a pass signal.

    ServiceProtocol    what every service offers: start() / stop() / started / passes
    Service            implements it by running ``run()`` as one task
    └── LoopService    ``run_pass()`` repeated: log, back off and go on after an error; re-raise cancellation

Tests await ``service.started.wait()`` and ``service.passes.wait_beyond(n)`` (``n`` read *before* the change
they caused), so they never race a pass that finished first and never sleep for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol, runtime_checkable

STOP_TIMEOUT_SECONDS = 5.0


class PassSignal:
    """A monotonic pass counter that tasks can wait on: no pass is missed, whenever the waiter arrives."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def advance(self) -> None:
        """One more pass finished: wake everyone waiting."""
        self.count += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_beyond(self, count: int) -> int:
        """Wait until more than ``count`` passes have finished; returns the count (bound it with a timeout)."""
        while self.count <= count:
            await self._changed.wait()
        return self.count

    async def wait_next(self) -> int:
        """Wait for the next pass to finish (one that ends after this call)."""
        return await self.wait_beyond(self.count)


@runtime_checkable
class ServiceProtocol(Protocol):
    """A background piece of a process: the fetcher, heartbeat, completer, reaper, scheduler, sink, ..."""

    name: str
    started: asyncio.Event
    passes: PassSignal

    async def start(self) -> None:
        """Begin; returns once the service is running (``started`` may be set a little later)."""

    async def stop(self) -> None:
        """Finish (idempotent: a second call returns at once)."""


class Service:
    """A background piece of a process with one lifecycle.

    ``start()`` runs ``run()`` in a task and returns at once; ``stop()`` may be called any number of times
    (the first cancels the task and waits up to ``stop_timeout``). ``started`` is set once ``run`` has set
    up (subclasses call ``self.mark_started()``; by default ``start`` sets it), and ``passes`` advances after
    each unit of work.
    """

    name = "service"
    log = logging.getLogger("tickr")
    stop_timeout = STOP_TIMEOUT_SECONDS
    # True: ``stop()`` first asks ``run()`` to end by itself (``stopping`` and ``request_stop``), and cancels
    # it only after ``stop_timeout``. For services whose cancellation mid-call would lose work (a dequeue).
    graceful_stop = False

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.passes = PassSignal()
        self.stopping = False
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """The service's body; runs until cancelled."""
        raise NotImplementedError

    def mark_started(self) -> None:
        self.started.set()

    def request_stop(self) -> None:
        """Hook for ``graceful_stop`` services: make ``run()`` notice ``stopping`` soon."""

    async def start(self) -> None:
        """Start ``run()`` in a task of its own."""
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(self._main(), name=f"tickr-{self.name}")

    async def _main(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("%s stopped on an unexpected error", self.name)
            raise

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task running ``run()``, while the service has one."""
        return self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Stop the service: cancel its task and wait for it (bounded). Safe to call twice."""
        self.stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        if self.graceful_stop:
            self.request_stop()
            done, _ = await asyncio.wait([task], timeout=self.stop_timeout)
            if done:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    task.result()
                return
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=self.stop_timeout)
        if not done:
            self.log.warning("%s did not stop within %.0fs", self.name, self.stop_timeout)
            return
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()


class LoopService(Service):
    """A service whose work is one pass repeated; ``run_pass()`` returns the seconds until the next pass.

    An error in a pass is logged and followed by a backoff that doubles up to ``max_backoff`` (reset by a
    good pass); cancellation is re-raised. ``wake()`` ends the wait before the next pass at once.
    """

    min_backoff = 0.1
    max_backoff = 5.0

    def __init__(self) -> None:
        super().__init__()
        self._wake = asyncio.Event()
        self.failures = 0

    async def run_pass(self) -> float:
        raise NotImplementedError

    def wake(self) -> None:
        """Run the next pass now instead of after the current wait."""
        self._wake.set()

    def request_stop(self) -> None:
        self._wake.set()

    async def setup(self) -> None:
        """Runs once before the first pass."""

    async def run(self) -> None:
        await self.setup()
        self.mark_started()
        while not self.stopping:
            self._wake.clear()
            try:
                delay = await self.run_pass()
                self.failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                delay = min(self.max_backoff, self.min_backoff * 2 ** min(self.failures - 1, 16))
                self.log.warning("%s pass failed (%s); next try in %.1fs", self.name, describe(exc), delay)
            self.passes.advance()
            if delay > 0 and not self.stopping:
                await self.idle(delay)

    async def idle(self, seconds: float) -> None:
        """Wait ``seconds``, or less if ``wake()`` is called."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()


def describe(exc: BaseException) -> str:
    """A short ``Type: message`` for logs."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def stop_all(services: list[ServiceProtocol]) -> None:
    """Stop ``services`` one after the other, in the order given."""
    for service in services:
        await service.stop()
