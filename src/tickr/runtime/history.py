"""Wiring the SQL history into a process: the schema check at start, and the sink as a companion service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys

from tickr.app import App
from tickr.config import Settings
from tickr.core.errors import ConfigError
from tickr.history.database import HistoryDB
from tickr.history.migrate import SchemaBehind, ensure_schema
from tickr.history.sink import HistorySink, SinkConfig
from tickr.lifecycle import Service
from tickr.procutil import die_with_parent

log = logging.getLogger("tickr.history")


def auto_migrate(settings: Settings) -> bool:
    """``TICKR_AUTO_MIGRATE``, else true for the embedded SQLite file (tickr's own) and false for a
    database named by ``TICKR_DATABASE_URL`` (whose schema changes are its owner's call)."""
    if settings.auto_migrate is not None:
        return settings.auto_migrate
    return settings.database_url is None


async def open_history(settings: Settings) -> HistoryDB:
    """The history database, its schema at the head revision (migrated here if auto-migrate allows).

    ``ConfigError`` with what to do when the schema is behind, or the database cannot be reached.
    """
    try:
        db = HistoryDB.from_settings(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        await ensure_schema(db, auto_migrate=auto_migrate(settings))
    except SchemaBehind as exc:
        await db.close()
        raise ConfigError(str(exc)) from None
    except (OSError, ConnectionError) as exc:
        await db.close()
        raise ConfigError(f"cannot reach the history database {db.describe()}: {exc}") from None
    return db


def sink_config(settings: Settings) -> SinkConfig:
    return SinkConfig(batch_size=settings.history_batch_size, retention_days=settings.history_retention_days)


class HistoryService(Service):
    """A sink with its own database handle: opens (and migrates) the database, runs the sink, closes both."""

    name = "history"

    def __init__(self, app: App, config: SinkConfig | None = None) -> None:
        super().__init__()
        self.app = app
        self.config = config or sink_config(app.settings)
        self.sink: HistorySink | None = None
        self._db: HistoryDB | None = None

    async def start(self) -> None:
        self._db = await open_history(self.app.settings)
        self.sink = HistorySink(self.app.store, self._db, self.config)
        await self.sink.start()
        self.started.set()

    async def stop(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            await sink.stop()
        db, self._db = self._db, None
        if db is not None:
            await db.close()


def lower_priority(niceness: int) -> None:
    """Make this process yield the CPU to others (``os.nice``): the sink is a background writer whose lag may
    grow by a second under load, where a worker sharing the host must not lose throughput."""
    if niceness > 0:
        with contextlib.suppress(OSError):
            os.nice(niceness)


class SinkProcess:
    """``tickr history`` as a child process of ``tickr up``: its own interpreter at a lower CPU priority, so
    writing history never takes the worker's event loop or its CPU. Started after the schema is migrated
    (the API reads the tables from the start); stopped with SIGTERM, its last batch committed."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, settings: Settings) -> None:
        await (await open_history(settings)).close()
        self._spawn(settings)

    def _spawn(self, settings: Settings) -> None:
        env = {**os.environ, "TICKR_REDIS_URL": settings.redis_url or "", "TICKR_DATA_DIR": str(settings.data_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tickr", "history"], env=env, start_new_session=True, preexec_fn=die_with_parent()
        )
        log.info("history sink running (pid %d)", self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait(self) -> None:
        if self.proc is None:
            return
        self.stop()
        code = await asyncio.to_thread(self.proc.wait)
        if code:
            log.warning("the history sink exited with code %s", code)
