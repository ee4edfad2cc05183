"""Codec: a Job written as the Lua scripts store it (a hash of strings) reads back as an equal Job."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickr.core.job import QUEUE_NAME_RE, TYPE_NAME_RE, Execution, Job, JobError, JobState, Priority
from tickr.core.retry import Backoff
from tickr.store import codec

# What the enqueue path accepts (core/factory.py): 64-bit integers (signed low end, unsigned high end),
# finite floats, str keys. Non-finite floats and wider integers are refused before they reach the codec.
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)  # hypothesis text() leaves out lone surrogates, which are not UTF-8 either
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
PAYLOADS = st.dictionaries(st.text(max_size=10), JSON, max_size=6)
TIMES_MS = st.none() | st.integers(min_value=0, max_value=2**53)  # Lua numbers are doubles
TEXT = st.text(max_size=40)

BACKOFFS = st.just(Backoff()) | st.builds(
    Backoff,
    base=st.floats(min_value=0, max_value=86_400),
    max=st.floats(min_value=0, max_value=7 * 86_400),
    jitter=st.floats(min_value=0, max_value=1),
)

JOBS = st.builds(
    Job,
    id=st.uuids().map(str) | st.text(min_size=1, max_size=40),
    type=st.from_regex(TYPE_NAME_RE, fullmatch=True),
    payload=PAYLOADS,
    queue=st.from_regex(QUEUE_NAME_RE, fullmatch=True),
    priority=st.sampled_from(Priority),
    status=st.sampled_from(JobState),
    attempt=st.integers(min_value=0, max_value=10_000),
    max_retries=st.integers(min_value=0, max_value=1000),
    backoff=BACKOFFS,
    timeout=st.none() | st.floats(min_value=0, max_value=86_400, exclude_min=True),
    execution=st.sampled_from(Execution),
    idempotency_key=st.none() | st.text(min_size=1, max_size=256),
    name=st.none() | TEXT,
    description=st.none() | TEXT,
    schedule_id=st.none() | TEXT,
    created_at=TIMES_MS,
    scheduled_for=TIMES_MS,
    started_at=TIMES_MS,
    finished_at=TIMES_MS,
    last_error=st.none() | st.builds(JobError, type=TEXT, message=TEXT, traceback=TEXT),
    # None is "no result": ack stores no field for it, so a JSON null result also reads back as None.
    result=JSON,
    worker=st.none() | TEXT,
)


def stored_hash(job: Job) -> dict[str, str]:
    """The job hash as the scripts leave it: enqueue writes created_at, status, scheduled_for and
    ``job_fields``; dequeue adds attempt, started_at, worker, token; ack adds result and finished_at;
    fail adds error (``codec.dumps(JobError.to_dict())``). Redis keeps every value as a string.
    ``id`` and ``queue`` are not in the hash: they are part of the key."""
    flat = codec.job_fields(job, codec.dumps(job.payload))
    assert all(isinstance(item, str) for item in flat)
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    assert len(fields) * 2 == len(flat)  # no field written twice
    fields["status"] = job.status.value
    if job.attempt:  # absent until the first dequeue
        fields["attempt"] = str(job.attempt)
    for name in ("created_at", "scheduled_for", "started_at", "finished_at"):
        value = getattr(job, name)
        if value is not None:
            fields[name] = str(value)
    if job.worker is not None:
        fields["worker"] = job.worker
        fields["token"] = "42"  # the lease token: in the hash, not in the Job
    if job.last_error is not None:
        fields["error"] = codec.dumps(job.last_error.to_dict())
    if job.result is not None:
        fields["result"] = codec.dumps(job.result)
    return fields


def same(a: Job, b: Job) -> None:
    """Equal, and equal as JSON text too (so 1, 1.0 and True, equal in Python, are told apart)."""
    assert a == b
    assert codec.dumps(a.to_dict()) == codec.dumps(b.to_dict())


@settings(max_examples=150, deadline=None)
@given(job=JOBS)
def test_every_field_round_trips(job: Job) -> None:
    same(codec.job_from_hash(job.id, job.queue, stored_hash(job)), job)


@settings(max_examples=50, deadline=None)
@given(job=JOBS)
def test_round_trip_through_a_bytes_hgetall_reply(job: Job) -> None:
    """The dequeue reply of a client that does not decode: a flat list of bytes, via ``pairs_to_dict``."""
    flat = [item.encode() for pair in stored_hash(job).items() for item in pair]
    same(codec.job_from_hash(job.id, job.queue, codec.pairs_to_dict(flat)), job)


@settings(max_examples=50, deadline=None)
@given(payload=PAYLOADS)
def test_payload_json_round_trips_exactly(payload: dict[str, Any]) -> None:
    text = codec.dumps(payload)
    assert codec.loads(text) == payload
    assert codec.dumps(codec.loads(text)) == text


def test_defaults_are_not_stored() -> None:
    job = Job(id="j1", type="t", queue="q")
    assert codec.job_fields(job, "{}") == ["type", "t", "payload", "{}", "priority", "default", "max_retries", "3"]


def test_every_non_default_option_is_stored() -> None:
    job = Job(
        id="j1",
        type="t",
        priority=Priority.HIGH,
        max_retries=0,
        backoff=Backoff(base=2, max=60, jitter=0.5),
        timeout=1.5,
        execution=Execution.AT_MOST_ONCE,
        idempotency_key="k",
        name="n",
        description="d",
        schedule_id="s",
    )
    fields = dict(zip(*[iter(codec.job_fields(job, "{}"))] * 2, strict=True))
    assert fields == {
        "type": "t",
        "payload": "{}",
        "priority": "high",
        "max_retries": "0",
        "backoff": '{"base":2,"max":60,"jitter":0.5}',
        "timeout": "1.5",
        "execution": "at_most_once",
        "idempotency_key": "k",
        "name": "n",
        "description": "d",
        "schedule_id": "s",
    }


def test_empty_strings_are_values_not_absence() -> None:
    job = Job(id="j1", type="t", name="", description="", schedule_id="", worker="")
    same(codec.job_from_hash("j1", "default", stored_hash(job)), job)


def test_lua_encoded_error_reads_back() -> None:
    """requeue/reap write the error with cjson, which escapes '/' (orjson does not)."""
    data = {"type": "t", "status": "lost", "error": '{"type":"Lost","message":"a\\/b","traceback":""}'}
    assert codec.job_from_hash("j", "q", data).last_error == JobError("Lost", "a/b", "")


def test_pairs_to_dict_later_pair_wins_and_odd_length_fails() -> None:
    assert codec.pairs_to_dict([b"a", b"1", b"a", b"2"]) == {"a": "2"}
    assert codec.pairs_to_dict(["a", "1"]) == {"a": "1"}
    assert codec.pairs_to_dict([]) == {}
    with pytest.raises(ValueError, match="odd number"):
        codec.pairs_to_dict([b"a"])


@pytest.mark.parametrize("kwargs", [{"max": math.inf}, {"base": math.inf}, {"max": math.nan}])
def test_non_finite_backoff_round_trips_or_is_refused(kwargs: dict[str, float]) -> None:
    try:
        backoff = Backoff(**kwargs)
    except ValueError:
        return  # refusing it up front is a fix too
    job = Job(id="j1", type="t", backoff=backoff)
    decoded = codec.job_from_hash("j1", "default", stored_hash(job))
    assert codec.dumps(decoded.backoff.to_dict()) == codec.dumps(backoff.to_dict())
