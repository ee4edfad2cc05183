"""``tickr up``: everything in one process for a laptop or a small server.

Embedded Valkey (when no ``TICKR_REDIS_URL``) with append-only persistence in the data
directory, a worker pool and the lease reaper; Ctrl+C stops it all gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from tickr.config import Settings
from tickr.runtime.embedded import EmbeddedValkey
from tickr.runtime.loader import load_app
from tickr.worker.worker import Worker, WorkerConfig

log = logging.getLogger("tickr.up")

ExtraService = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


def start_embedded(settings: Settings) -> tuple[Settings, EmbeddedValkey | None]:
    """Start the bundled valkey-server unless a Redis URL is configured."""
    if settings.redis_url:
        return settings, None
    server = EmbeddedValkey(settings.data_dir / "valkey", persistent=True)
    server.start()
    url_file(settings).write_text(server.url + "\n")
    log.info("embedded Valkey listening at %s (data in %s)", server.url, settings.data_dir / "valkey")
    return settings.model_copy(update={"redis_url": server.url}), server


def url_file(settings: Settings) -> Path:
    """Where ``tickr up`` writes its embedded server's URL, so other commands on the machine find it."""
    return settings.data_dir / "redis-url"


def discover_redis_url(settings: Settings) -> str | None:
    """``TICKR_REDIS_URL``, else the URL of a running ``tickr up`` in the same data directory."""
    if settings.redis_url:
        return settings.redis_url
    path = url_file(settings)
    return path.read_text().strip() or None if path.exists() else None


async def run_up(
    settings: Settings, app_spec: str | None, concurrency: int, extra_services: list[ExtraService] | None = None
) -> None:
    """Run the embedded server, the worker pool and any extra services until SIGINT/SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # a signal during start-up still stops cleanly
        loop.add_signal_handler(sig, stopping.set)
    settings, server = await asyncio.to_thread(start_embedded, settings)
    app = load_app(app_spec, settings)
    worker = Worker(
        app,
        WorkerConfig(
            queues=settings.queue_list(),
            concurrency=concurrency,
            grace_seconds=settings.shutdown_grace_seconds,
            wake_cap_seconds=settings.wake_cap_seconds,
        ),
    )

    def on_signal() -> None:
        stopping.set()
        worker.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if stopping.is_set():
        worker.stop()
    if server is not None:
        url_file(settings).write_text(server.url + "\n")
    extras = [loop.create_task(service(settings, stopping)) for service in extra_services or []]
    try:
        await worker.run()
    finally:
        stopping.set()
        await asyncio.gather(*extras, return_exceptions=True)
        await app.close()
        if server is not None:
            url_file(settings).unlink(missing_ok=True)
            await asyncio.to_thread(server.stop)
        log.info("tickr stopped")
