"""Alembic's environment for the history tables, run by ``tickr.history.migrate`` (no alembic.ini needed).

Online, ``migrate`` passes an open (sync-facing) connection in ``config.attributes["connection"]``; offline
(``tickr migrate --sql``), ``config.attributes["url"]`` names the dialect to render the SQL for.
"""

from __future__ import annotations

from alembic import context

from tickr.history.schema import metadata

config = context.config


def run_offline() -> None:
    context.configure(
        url=config.attributes["url"],
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
