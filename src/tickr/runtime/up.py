"""``tickr up``: everything in one process for a laptop or a small server.

Embedded Valkey (when no ``TICKR_REDIS_URL``) with append-only persistence in the data
directory, a worker pool and the lease reaper; Ctrl+C stops it all gracefully.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from tickr.config import Settings
from tickr.runtime.embedded import EmbeddedValkey
from tickr.runtime.loader import load_app
from tickr.runtime.services import ProcessPlan, ProcessServices
from tickr.runtime.signals import on_stop_signals
from tickr.worker.worker import WorkerConfig

log = logging.getLogger("tickr.up")


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


async def run_up(settings: Settings, app_spec: str | None, *, serve_api: bool = True) -> None:
    """``tickr up``: the embedded server (unless a Redis URL is set), a worker, the scheduler and the API,
    until SIGINT/SIGTERM. A signal during start-up still stops everything cleanly."""
    services: ProcessServices | None = None
    early_stops = 0

    def on_signal() -> None:
        nonlocal early_stops
        if services is None:
            early_stops += 1
        else:
            services.stop()

    with on_stop_signals(on_signal):
        settings, server = await asyncio.to_thread(start_embedded, settings)
        try:
            app = load_app(app_spec, settings)
            plan = ProcessPlan(scheduler=True, api=settings if serve_api else None)
            services = ProcessServices(app, WorkerConfig.from_settings(settings), plan)
            for _ in range(early_stops):
                services.stop()
            if server is not None:
                url_file(settings).write_text(server.url + "\n")
            try:
                await services.run()
            finally:
                await app.close()
        finally:
            if server is not None:
                url_file(settings).unlink(missing_ok=True)
                await asyncio.to_thread(server.stop)
            log.info("tickr stopped")
