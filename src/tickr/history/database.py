"""The history database handle: one async SQLAlchemy engine, SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tickr.config import Settings

SQLITE_FILE = "history.db"
# Driver each dialect uses when the URL names none (``postgresql://`` -> asyncpg, ``sqlite://`` -> aiosqlite).
ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}


def database_url(settings: Settings) -> str:
    """``TICKR_DATABASE_URL`` with its async driver filled in, else SQLite at ``<data_dir>/history.db``."""
    if settings.database_url is None:
        return f"sqlite+aiosqlite:///{(settings.data_dir / SQLITE_FILE).resolve()}"
    url = make_url(settings.database_url.get_secret_value())
    backend = url.get_backend_name()
    if backend not in ASYNC_DRIVERS:
        raise ValueError(f"TICKR_DATABASE_URL: unsupported database {backend!r} (use postgresql:// or sqlite://)")
    if "+" not in url.drivername or url.get_driver_name() in ("psycopg2", "psycopg", "pg8000", "pysqlite"):
        url = url.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}")
    return url.render_as_string(hide_password=False)


class HistoryDB:
    """An async engine on the history database. Creating it does no I/O; ``close()`` disposes the pool.

    ``schema`` (PostgreSQL only) puts every table in that schema, via ``search_path`` (tests use one per run).
    """

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = url
        self.schema = schema
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["pool_pre_ping"] = True  # a connection the server dropped (restart, failover) is replaced
            if schema is not None:
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @classmethod
    def from_settings(cls, settings: Settings) -> HistoryDB:
        return cls(database_url(settings))

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def describe(self) -> str:
        """The URL with any password masked, for logs and messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: readers (the API) never block the sink's writes; NORMAL sync is durable at every checkpoint
    # and safe against corruption; busy_timeout lets a second writer (another sink) wait instead of failing.
    # busy_timeout first: switching to WAL takes a lock, and a second process connecting at that moment must wait.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
