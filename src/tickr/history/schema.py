"""The history tables (SQLAlchemy Core). Alembic's migrations in ``migrations/`` must match these exactly.

Times are BIGINT milliseconds since the epoch, as in Redis and the API's ``*_ms`` fields: one unit on both
databases, exact, and sortable. ``event_seq`` is the stream order of the last event applied to a row
(``events.entry_seq``): an upsert only moves a row forward, so replayed or reordered events change nothing.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)
JSONDoc = JSON().with_variant(JSONB(), "postgresql")

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("queue", String(64), nullable=False),
    Column("type", String(128)),
    Column("status", String(16), nullable=False),
    Column("priority", String(16)),
    Column("payload", JSONDoc),
    Column("attempt", Integer, nullable=False, default=0),
    Column("max_retries", Integer),
    Column("execution", String(16)),
    Column("idempotency_key", String(256)),
    Column("name", Text),
    Column("description", Text),
    Column("schedule_id", String(128)),
    Column("worker", String(256)),
    Column("created_at", BigInteger),
    Column("scheduled_for", BigInteger),
    Column("started_at", BigInteger),
    Column("finished_at", BigInteger),
    Column("error_type", String(256)),
    Column("error_message", Text),
    Column("result", JSONDoc),
    Column("updated_at", BigInteger, nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    # The listing's order is (created_at DESC, id DESC); each filter has an index ending in that order.
    Index(None, "created_at", "id"),
    Index(None, "queue", "created_at", "id"),
    Index(None, "status", "created_at", "id"),
    Index(None, "type", "created_at", "id"),
    Index(None, "priority", "created_at", "id"),
    Index(None, "schedule_id", "created_at", "id"),
    Index(None, "worker", "created_at", "id"),
    Index(None, "updated_at"),  # retention
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("job_id", String(128), primary_key=True),
    Column("lease", BigInteger, primary_key=True),  # the run's lease token: unique per run, increasing in time
    Column("attempt", Integer, nullable=False),
    Column("queue", String(64), nullable=False),
    Column("type", String(128)),
    Column("schedule_id", String(128)),
    Column("worker", String(256)),
    Column("outcome", String(16), nullable=False),  # running, succeeded, failed, lost, released
    Column("due_at", BigInteger),
    Column("started_at", BigInteger),
    Column("finished_at", BigInteger),
    Column("duration_ms", BigInteger),
    Column("lateness_ms", BigInteger),
    Column("error_type", String(256)),
    Column("error_message", Text),
    Column("error_traceback", Text),
    Column("event_seq", BigInteger, nullable=False),
    Index(None, "schedule_id", "started_at"),
    Index(None, "worker", "started_at"),
    Index(None, "started_at"),  # retention
)

schedules = Table(
    "schedules",
    metadata,
    Column("schedule_id", String(128), primary_key=True),
    Column("event_seq", BigInteger, primary_key=True),
    Column("action", String(16), nullable=False),  # saved, deleted
    Column("version", Integer),
    Column("definition", JSONDoc),
    Column("at", BigInteger, nullable=False),
)
