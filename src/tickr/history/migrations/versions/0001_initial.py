"""The history tables: jobs, job_runs, schedules.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("type", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16)),
        sa.Column("payload", JSONDoc),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_retries", sa.Integer()),
        sa.Column("execution", sa.String(16)),
        sa.Column("idempotency_key", sa.String(256)),
        sa.Column("name", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("schedule_id", sa.String(128)),
        sa.Column("worker", sa.String(256)),
        sa.Column("created_at", sa.BigInteger()),
        sa.Column("scheduled_for", sa.BigInteger()),
        sa.Column("started_at", sa.BigInteger()),
        sa.Column("finished_at", sa.BigInteger()),
        sa.Column("error_type", sa.String(256)),
        sa.Column("error_message", sa.Text()),
        sa.Column("result", JSONDoc),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    for name, columns in (
        ("ix_jobs_created_at_id", ["created_at", "id"]),
        ("ix_jobs_queue_created_at_id", ["queue", "created_at", "id"]),
        ("ix_jobs_status_created_at_id", ["status", "created_at", "id"]),
        ("ix_jobs_type_created_at_id", ["type", "created_at", "id"]),
        ("ix_jobs_priority_created_at_id", ["priority", "created_at", "id"]),
        ("ix_jobs_schedule_id_created_at_id", ["schedule_id", "created_at", "id"]),
        ("ix_jobs_worker_created_at_id", ["worker", "created_at", "id"]),
        ("ix_jobs_updated_at", ["updated_at"]),
    ):
        op.create_index(name, "jobs", columns)

    op.create_table(
        "job_runs",
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("lease", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("type", sa.String(128)),
        sa.Column("schedule_id", sa.String(128)),
        sa.Column("worker", sa.String(256)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("due_at", sa.BigInteger()),
        sa.Column("started_at", sa.BigInteger()),
        sa.Column("finished_at", sa.BigInteger()),
        sa.Column("duration_ms", sa.BigInteger()),
        sa.Column("lateness_ms", sa.BigInteger()),
        sa.Column("error_type", sa.String(256)),
        sa.Column("error_message", sa.Text()),
        sa.Column("error_traceback", sa.Text()),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "lease", name="pk_job_runs"),
    )
    op.create_index("ix_job_runs_schedule_id_started_at", "job_runs", ["schedule_id", "started_at"])
    op.create_index("ix_job_runs_worker_started_at", "job_runs", ["worker", "started_at"])
    op.create_index("ix_job_runs_started_at", "job_runs", ["started_at"])

    op.create_table(
        "schedules",
        sa.Column("schedule_id", sa.String(128), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer()),
        sa.Column("definition", JSONDoc),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("schedule_id", "event_seq", name="pk_schedules"),
    )


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_table("job_runs")
    op.drop_table("jobs")
