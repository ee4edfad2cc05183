"""``tickr migrate``: bring the history database to the package's schema, print that SQL, or check it."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from tickr.cli.common import EXIT_FAILED, fail, fail_usage, load_settings
from tickr.history import migrate
from tickr.history.database import HistoryDB, database_url


def register(cli: typer.Typer) -> None:
    """Add ``tickr migrate`` to the main CLI."""
    cli.command("migrate")(migrate_command)


def migrate_command(
    sql: Annotated[bool, typer.Option("--sql", help="print the upgrade as SQL (for a DBA); touch nothing")] = False,
    check: Annotated[bool, typer.Option("--check", help="exit 1 when the database is behind; change nothing")] = False,
    data_dir: Annotated[str | None, typer.Option("--data-dir", envvar="TICKR_DATA_DIR")] = None,
) -> None:
    """Apply the history database migrations (TICKR_DATABASE_URL, else SQLite at <data dir>/history.db)."""
    settings = load_settings(data_dir=data_dir)
    try:
        url = database_url(settings)
        if sql:
            typer.echo(migrate.offline_sql(url), nl=False)
            return
        db = HistoryDB(url)
    except (ValueError, ArgumentError, NoSuchModuleError) as exc:  # a URL SQLAlchemy cannot use
        raise fail_usage(f"TICKR_DATABASE_URL: {exc}") from None
    try:
        before, after = asyncio.run(_run(db, check=check))
    except (OSError, DBAPIError) as exc:
        raise fail(f"history database {db.describe()} unavailable: {_first_line(exc)}") from None
    if check:
        if before != after:
            raise fail(
                f"history database {db.describe()} is at {before or 'no revision'}, head is {after}", EXIT_FAILED
            )
        typer.echo(f"{db.describe()}: at head ({after})")
    elif before == after:
        typer.echo(f"{db.describe()}: already at {after}")
    else:
        typer.echo(f"{db.describe()}: migrated from {before or 'empty'} to {after}")


async def _run(db: HistoryDB, *, check: bool) -> tuple[str | None, str | None]:
    try:
        before = await migrate.current_revision(db)
        if check:
            return before, migrate.head_revision()
        await migrate.upgrade(db)
        return before, await migrate.current_revision(db)
    finally:
        await db.close()


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
