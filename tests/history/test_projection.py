"""The projection rules, event by event: statuses, runs, schedules, order, replays and a vanished record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tickr.core.events import StreamEvent, entry_seq
from tickr.core.job import Job, JobError, JobState, Priority
from tickr.history.projection import Projection, project

Q = "q1"
T0 = 1_800_000_000_000


def ev(event: str, ms: int, job_id: str = "j1", *, seq: int = 0, queue: str = Q, **fields: Any) -> StreamEvent:
    """An event ``ms`` after T0; ``started`` and ``due`` are given relative to T0 too. A run's lease defaults
    to its attempt (one lease per attempt, as without replays)."""
    fields.update({k: T0 + fields[k] for k in ("started", "due") if k in fields})
    if "attempt" in fields:
        fields.setdefault("lease", fields["attempt"])
    return StreamEvent(queue, f"{T0 + ms}-{seq}", {"e": event, "id": job_id, **{k: str(v) for k, v in fields.items()}})


def err(kind: str = "ValueError", message: str = "boom", tb: str = "Traceback ...") -> str:
    return orjson.dumps({"type": kind, "message": message, "traceback": tb}).decode()


def record(**fields: Any) -> Job:
    base: dict[str, Any] = {"id": "j1", "type": "email.send", "queue": Q, "payload": {"to": "a@b"}, "created_at": T0}
    base.update(fields)
    return Job(**base)


def one_job(p: Projection) -> dict[str, Any]:
    (row,) = p.jobs
    return row


def runs(p: Projection) -> dict[int, dict[str, Any]]:
    return {row["attempt"]: row for row in p.runs}


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ("queued", "queued"),
        ("scheduled", "scheduled"),
        ("parked", "queued"),
        ("active", "active"),
        ("succeeded", "succeeded"),
        ("retrying", "retrying"),
        ("dead", "dead"),
        ("lost", "lost"),
        ("cancelled", "cancelled"),
    ],
)
def test_each_status_bearing_event_maps_to_its_status(event: str, status: str) -> None:
    row = one_job(project([ev(event, 5)], {(Q, "j1"): record(status=JobState.ACTIVE)}))
    assert row["status"] == status
    assert row["updated_at"] == T0 + 5 and row["event_seq"] == entry_seq(f"{T0 + 5}-0")


def test_job_row_collapses_events_in_seq_order_whatever_order_they_arrive_in() -> None:
    events = [ev("succeeded", 9, attempt=1, started=5, worker="w1"), ev("queued", 1), ev("active", 5, attempt=1)]
    row = one_job(project(events, {(Q, "j1"): record(status=JobState.SUCCEEDED, attempt=1)}))
    assert row["status"] == "succeeded" and row["updated_at"] == T0 + 9
    assert row["event_seq"] == max(e.seq for e in events)


def test_same_ms_events_are_ordered_by_the_stream_sequence() -> None:
    events = [ev("succeeded", 5, seq=1, attempt=1, started=5), ev("active", 5, seq=0, attempt=1)]
    assert one_job(project(events, {}))["status"] == "succeeded"


def test_updated_carries_no_status_the_record_gives_it() -> None:
    row = one_job(project([ev("updated", 3)], {(Q, "j1"): record(status=JobState.SCHEDULED)}))
    assert row["status"] == "scheduled"
    assert project([ev("updated", 3)], {(Q, "j1"): None}).jobs == []  # no status, no record: no row
    assert project([ev("updated", 3)], {}).jobs == []


def test_record_columns_come_from_the_record() -> None:
    job = record(
        status=JobState.DEAD,
        priority=Priority.HIGH,
        attempt=4,
        max_retries=3,
        idempotency_key="k",
        name="n",
        description="d",
        schedule_id="s1",
        worker="w9",
        scheduled_for=T0 + 1,
        started_at=T0 + 2,
        finished_at=T0 + 3,
        last_error=JobError("KeyError", "missing", "tb"),
        result={"ok": True},
    )
    row = one_job(project([ev("dead", 3, attempt=4, error=err("KeyError"))], {(Q, "j1"): job}))
    assert row | {"event_seq": 0} == {
        "id": "j1",
        "queue": Q,
        "status": "dead",
        "updated_at": T0 + 3,
        "event_seq": 0,
        "type": "email.send",
        "priority": "high",
        "payload": {"to": "a@b"},
        "attempt": 4,
        "max_retries": 3,
        "execution": "at_least_once",
        "idempotency_key": "k",
        "name": "n",
        "description": "d",
        "schedule_id": "s1",
        "worker": "w9",
        "created_at": T0,
        "scheduled_for": T0 + 1,
        "started_at": T0 + 2,
        "finished_at": T0 + 3,
        "error_type": "KeyError",
        "error_message": "missing",
        "result": {"ok": True},
    }


def test_hash_gone_leaves_record_columns_none_but_keeps_what_events_know() -> None:
    events = [ev("active", 5, attempt=2, worker="w1", due=4), ev("succeeded", 9, attempt=2, started=5, worker="w1")]
    row = one_job(project(events, {(Q, "j1"): None}))
    assert row["status"] == "succeeded"
    assert (row["attempt"], row["worker"], row["started_at"], row["finished_at"]) == (2, "w1", T0 + 5, T0 + 9)
    assert row["type"] is None and row["payload"] is None
    assert row["created_at"] == T0 + 5, "the first event stands in for the creation time"


def test_attempt_is_the_records_after_a_replay_reset_it() -> None:
    events = [ev("dead", 1, attempt=3, error=err()), ev("queued", 2, replayed=1)]
    row = one_job(project(events, {(Q, "j1"): record(status=JobState.QUEUED, attempt=0)}))
    assert (row["status"], row["attempt"]) == ("queued", 0)


def test_an_active_run_row() -> None:
    (run,) = project([ev("active", 15, attempt=1, worker="w1", due=10)], {(Q, "j1"): record(schedule_id="s")}).runs
    assert run | {"event_seq": 0} == {
        "job_id": "j1",
        "lease": 1,
        "attempt": 1,
        "queue": Q,
        "type": "email.send",
        "schedule_id": "s",
        "worker": "w1",
        "outcome": "running",
        "due_at": T0 + 10,
        "started_at": T0 + 15,
        "finished_at": None,
        "duration_ms": None,
        "lateness_ms": 5,
        "error_type": None,
        "error_message": None,
        "error_traceback": None,
        "event_seq": 0,
    }


def test_succeeded_fills_finish_and_duration_from_started() -> None:
    run = runs(project([ev("succeeded", 40, attempt=1, started=15, worker="w1")], {}))[1]
    assert (run["outcome"], run["started_at"], run["finished_at"], run["duration_ms"]) == (
        "succeeded",
        T0 + 15,
        T0 + 40,
        25,
    )
    assert run["worker"] == "w1" and run["type"] is None  # no record: no type


@pytest.mark.parametrize("event", ["retrying", "dead"])
def test_a_failed_attempt_carries_its_parsed_error(event: str) -> None:
    run = runs(project([ev(event, 40, attempt=2, started=30, worker="w", error=err("IOError", "disk", "tb!"))], {}))[2]
    assert run["outcome"] == "failed" and run["duration_ms"] == 10
    assert (run["error_type"], run["error_message"], run["error_traceback"]) == ("IOError", "disk", "tb!")


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"just a string"'])
def test_malformed_error_json_is_kept_as_the_message(raw: str) -> None:
    run = runs(project([ev("retrying", 40, attempt=1, started=30, error=raw)], {}))[1]
    assert run["outcome"] == "failed" and run["error_type"] is None and run["error_message"] == raw


@pytest.mark.parametrize("event", ["dead", "lost", "queued"])
def test_a_reaped_attempt_is_lost_with_lease_expired(event: str) -> None:
    run = runs(project([ev("active", 10, attempt=1, worker="w"), ev(event, 90, attempt=1, reaped=1)], {}))[1]
    assert (run["outcome"], run["finished_at"], run["error_type"]) == ("lost", T0 + 90, "LeaseExpired")
    assert run["worker"] == "w" and run["duration_ms"] == 80  # the start filled in from the active event


@pytest.mark.parametrize("event", ["queued", "lost"])
def test_a_released_attempt(event: str) -> None:
    run = runs(project([ev(event, 90, attempt=1, released=1)], {}))[1]
    assert (run["outcome"], run["finished_at"], run["error_type"]) == ("released", T0 + 90, None)


@pytest.mark.parametrize(
    "event",
    [
        ev("dead", 1, reason="unknown_type"),
        ev("cancelled", 1),
        ev("queued", 1),
        ev("queued", 1, replayed=1),
        ev("updated", 1),
        ev("parked", 1, type="x"),
        ev("scheduled", 1),
    ],
)
def test_events_without_an_attempt_make_no_run(event: StreamEvent) -> None:
    assert project([event], {(Q, "j1"): record()}).runs == []


def test_one_row_per_attempt_and_later_outcome_wins() -> None:
    events = [
        ev("active", 10, attempt=1, worker="w1", due=8),
        ev("retrying", 20, attempt=1, started=10, worker="w1", error=err(), due=50),
        ev("active", 52, attempt=2, worker="w2", due=50),
        ev("succeeded", 60, attempt=2, started=52, worker="w2"),
    ]
    by_attempt = runs(project(list(reversed(events)), {}))
    assert by_attempt[1]["outcome"] == "failed" and by_attempt[1]["lateness_ms"] == 2
    assert by_attempt[1]["due_at"] == T0 + 8  # the retry's due is the next attempt's, not this one's
    assert by_attempt[2]["outcome"] == "succeeded" and by_attempt[2]["lateness_ms"] == 2
    assert by_attempt[2]["duration_ms"] == 8 and by_attempt[2]["due_at"] == T0 + 50
    assert by_attempt[1]["event_seq"] == events[1].seq


def test_a_released_attempt_run_again_is_the_new_run() -> None:
    """``release`` refunds the attempt, so the next lease reuses its number: the newer run's facts win."""
    events = [
        ev("active", 10, attempt=1, worker="w1", due=5),
        ev("queued", 20, attempt=1, released=1),
        ev("active", 30, attempt=1, worker="w2", due=20),
    ]
    run = runs(project(events, {}))[1]
    assert (run["outcome"], run["worker"], run["started_at"], run["finished_at"]) == ("running", "w2", T0 + 30, None)


def test_replayed_events_project_to_the_same_rows() -> None:
    events = [ev("active", 10, attempt=1, worker="w"), ev("succeeded", 20, attempt=1, started=10, worker="w")]
    records = {(Q, "j1"): record(status=JobState.SUCCEEDED)}
    assert project(events + events, records) == project(events, records)


def test_schedule_events_become_audit_rows() -> None:
    definition = {"cron": "* * * * *", "type": "noop"}
    saved = ev("saved", 1, "s1", queue="", version=3, definition=orjson.dumps(definition).decode())
    deleted = ev("deleted", 2, "s1", queue="", version=3)
    p = project([deleted, saved, ev("saved", 3, "s2", queue="", definition="{bad")], {})
    assert p.jobs == [] and p.runs == []
    assert p.schedules[0] == {
        "schedule_id": "s1",
        "event_seq": saved.seq,
        "action": "saved",
        "version": 3,
        "definition": definition,
        "at": T0 + 1,
    }
    assert p.schedules[1]["action"] == "deleted" and p.schedules[1]["definition"] is None
    assert p.schedules[2]["definition"] == {"unparsed": "{bad"} and p.schedules[2]["version"] is None


def test_too_long_strings_are_cut_to_their_column() -> None:
    run = runs(project([ev("dead", 9, attempt=1, worker="w" * 400, error=err("E" * 300))], {}))[1]
    assert len(run["worker"]) == 256 and len(run["error_type"]) == 256


def test_a_replayed_job_starts_new_runs_beside_the_old_ones() -> None:
    """Replay starts the attempts again at 1; the lease tells the runs apart, so none overwrites another."""
    events = [
        ev("active", 1, attempt=1, lease=7, worker="w1", due=0),
        ev("dead", 2, attempt=1, lease=7, started=1, worker="w1", error=err()),
        ev("queued", 3, replayed=1),
        ev("active", 4, attempt=1, lease=9, worker="w2", due=3),
        ev("succeeded", 5, attempt=1, lease=9, started=4, worker="w2"),
    ]
    runs = sorted(project(events, {(Q, "j1"): None}).runs, key=lambda r: r["lease"])
    assert [(r["lease"], r["attempt"], r["outcome"], r["worker"]) for r in runs] == [
        (7, 1, "failed", "w1"),
        (9, 1, "succeeded", "w2"),
    ]
