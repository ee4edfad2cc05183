"""Settings: every ``TICKR_*`` environment variable (or ``.env`` entry) in one typed object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """tickr's configuration. Each field is read from ``TICKR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="TICKR_", env_file=".env", extra="ignore")

    redis_url: str | None = Field(None, description="Redis/Valkey URL; unset in `tickr up` starts an embedded Valkey")
    redis_cluster: bool = Field(
        False, description="Connect to a Redis Cluster (a redis:// URL names a seed; redis+cluster:// implies it)"
    )
    redis_min_replicas: int = Field(
        0,
        ge=0,
        description="Replicas that must acknowledge each state change (WAIT after each script); fewer is an error",
    )
    redis_min_replicas_timeout_ms: int = Field(
        500, ge=0, description="How long a state change waits for TICKR_REDIS_MIN_REPLICAS replicas"
    )
    data_dir: Path = Field(Path(".tickr"), description="Where embedded Valkey, SQLite history and reports live")

    lease_seconds: float = Field(30.0, gt=0, description="Lease length; heartbeats extend it every lease/3")
    heartbeat_seconds: float = Field(
        2.0, gt=0, description="How often a worker proves it is alive (a light write per queue it serves)"
    )
    worker_lapse_seconds: float = Field(
        6.0,
        ge=0,
        description="A worker with no heartbeat for this long is dead: a reaper releases its leases at once"
        " (fenced); 0 disables, leaving lease expiry only",
    )
    concurrency: int = Field(32, ge=1, le=10_000, description="Concurrent jobs per worker process")
    queues: str = Field("default", description="Comma-separated queues a worker serves")
    priority_weights: str = Field("8,4,2,1", description="Weights of critical,high,default,low")
    idempotency_ttl_seconds: int = Field(86_400, ge=1, description="How long an idempotency key is remembered")
    shutdown_grace_seconds: float = Field(30.0, ge=0, description="How long in-flight jobs may finish on shutdown")
    done_retention_seconds: int = Field(86_400, ge=1, description="How long finished jobs stay in Redis")
    done_max: int = Field(10_000, ge=0, description="Finished job ids kept per queue for listings")
    events_maxlen: int = Field(
        2_000_000,
        ge=0,
        description="Cap of each queue's event stream (unread events beyond it are dropped and counted);"
        " the default holds 10 minutes at 1,000 jobs/s",
    )
    default_max_retries: int = Field(3, ge=0, le=1000)
    wake_cap_seconds: float = Field(5.0, gt=0, description="Longest a idle worker blocks before looking again")
    unknown_type_grace_seconds: float = Field(
        300.0, ge=0, description="How long a job waits for a live worker that runs its type before it is dead-lettered"
    )
    strict_types: bool = Field(False, description="Refuse (422) jobs of a type no live worker has ever registered")

    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=0, le=65535)
    api_token: SecretStr | None = Field(None, description="Bearer token the API requires (never logged)")
    api_read_token: SecretStr | None = Field(
        None, description="A read-only bearer token: reads everything (API and dashboard), changes nothing"
    )
    max_payload_bytes: int = Field(1_048_576, ge=1024)

    http_signing_secret: SecretStr | None = None
    http_allow_private: bool = False
    http_allow_hosts: str = Field("", description="Comma-separated hosts or CIDRs the http job may reach anyway")
    smtp_url: SecretStr | None = Field(None, description="SMTP server of the email job type; may hold a password")

    history: bool = Field(True, description="Record every state change for the SQL history; false writes no events")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL of the history database; unset = SQLite at <data_dir>/history.db"
    )
    auto_migrate: bool | None = Field(
        None, description="Apply history migrations at start; default true in embedded mode (`tickr up`), else false"
    )
    history_retention_days: float = Field(30.0, gt=0, description="History rows older than this are deleted")
    history_batch_size: int = Field(500, ge=1, le=10_000, description="Events the sink writes per transaction")
    history_nice: int = Field(
        10, ge=0, le=19, description="Niceness of the sink process: it yields the CPU to workers sharing its host"
    )

    log_format: str = Field("console", pattern="^(console|json)$")
    log_level: str = "INFO"
    log_jobs: bool = Field(False, description="Log every job's start and end at INFO (off: no per-job line)")

    metrics: bool = Field(True, description="Count jobs for Prometheus and serve /metrics; false turns both off")
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Port of a worker's (or a supervisor's merged) /metrics; unset: none"
    )
    metrics_host: str = Field("127.0.0.1", description="Address the worker's /metrics endpoint binds")
    metrics_auth: bool = Field(False, description="The API's /metrics needs the bearer token too (when one is set)")
    metrics_dir: Path | None = Field(
        None, description="Multiprocess metric files of worker processes that the API merges (tickr up sets it)"
    )

    @model_validator(mode="after")
    def _check_lapse(self) -> Settings:
        if self.worker_lapse_seconds and self.worker_lapse_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"worker_lapse_seconds ({self.worker_lapse_seconds:g}) must be greater than heartbeat_seconds"
                f" ({self.heartbeat_seconds:g}), or 0 to disable: a live worker would be taken for dead"
            )
        return self

    @field_validator("priority_weights")
    @classmethod
    def _check_weights(cls, value: str) -> str:
        parse_weights(value)
        return value

    def weights(self) -> tuple[int, int, int, int]:
        return parse_weights(self.priority_weights)

    def queue_list(self) -> list[str]:
        return [q.strip() for q in self.queues.split(",") if q.strip()]


def parse_weights(value: str) -> tuple[int, int, int, int]:
    """Parse ``"8,4,2,1"`` into four positive integer weights."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError("priority_weights must be four positive integers: critical,high,default,low")
    a, b, c, d = (int(p) for p in parts)
    return a, b, c, d


def default(name: str) -> Any:
    """The default of setting ``name``: other modules take their defaults from here, never copy them."""
    return Settings.model_fields[name].default


EMBEDDED_URL_FILE = "redis-url"


def embedded_url_file(settings: Settings) -> Path:
    """Where a running ``tickr up`` keeps the URL of its embedded server: ``<data_dir>/redis-url``."""
    return settings.data_dir / EMBEDDED_URL_FILE


def discover_redis_url(settings: Settings) -> str | None:
    """``TICKR_REDIS_URL``, else the URL of a ``tickr up`` running on the same data directory, else None.

    Only reads a file (no I/O to Redis). A unix-socket URL whose socket is gone (a ``tickr up`` that was
    killed) counts as no server.
    """
    if settings.redis_url:
        return settings.redis_url
    try:
        url = embedded_url_file(settings).read_text().strip()
    except OSError:
        return None
    if url.startswith("unix://") and not Path(url.removeprefix("unix://").partition("?")[0]).exists():
        return None
    return url or None
