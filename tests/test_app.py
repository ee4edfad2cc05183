"""App and Task against real Redis: payloads checked at enqueue, Task.enqueue_many (and its sync twin), due times."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from tickr import App, Settings, ValidationError


def register(app: App, queue: str) -> Any:
    @app.task(name="emails.send", queue=queue)
    async def send(to: str, subject: str, retries: int = 0) -> None: ...

    return send


async def stored(app: App, queue: str) -> list[dict[str, Any]]:
    return [job.payload for job in (await app.inspector.list_jobs(queue=queue)).jobs]


# --------------------------------------------------------------------------- payloads checked at enqueue


async def test_task_enqueue_checks_the_signature(app: App, queue: str) -> None:
    send = register(app, queue)
    with pytest.raises(ValidationError) as info:
        await send.enqueue("a@example.com", subject=5)
    assert info.value.errors == {"payload.subject": "Input should be a valid string"}
    with pytest.raises(ValidationError) as info:
        await app.enqueue("emails.send", {"to": "a@example.com", "retries": "2"}, queue=queue)
    assert set(info.value.errors) == {"payload.subject", "payload.retries"}
    assert await stored(app, queue) == []

    job_id = await send.enqueue("a@example.com", subject="hi", retries=2)
    assert (await app.get_job(job_id)).payload == {"to": "a@example.com", "subject": "hi", "retries": 2}


async def test_a_type_registered_elsewhere_is_not_checked_here(app: App, queue: str) -> None:
    job_id = await app.enqueue("billing.charge", {"amount": "any shape"}, queue=queue)
    assert (await app.get_job(job_id)).payload == {"amount": "any shape"}


class Charge(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")

    account: str
    cents: int = pydantic.Field(gt=0)


async def test_a_declared_payload_model_is_the_check(app: App, queue: str) -> None:
    @app.task(name="billing.charge", queue=queue, payload=Charge)
    async def charge(account: str, cents: int) -> None: ...

    with pytest.raises(ValidationError) as info:
        await charge.enqueue("acct-1", cents=0)
    assert set(info.value.errors) == {"payload.cents"}
    assert await charge.enqueue("acct-1", cents=250)
    assert app.registry["billing.charge"].payload_schema() == Charge.model_json_schema()


def test_payload_must_be_a_model_at_decoration() -> None:
    app = App()
    with pytest.raises(TypeError, match="pydantic BaseModel"):

        @app.task(name="x", payload=dict)  # type: ignore[call-overload]
        def x() -> None: ...


def test_a_cron_task_must_run_with_an_empty_payload() -> None:
    app = App()
    with pytest.raises(ValidationError) as info:

        @app.task(name="reports.nightly", cron="0 3 * * *")
        def nightly(day: str) -> None: ...

    assert set(info.value.errors) == {"payload.day"}
    assert "reports.nightly" not in app.registry and not app.periodic

    @app.task(name="reports.hourly", cron="0 * * * *")
    def hourly(day: str = "today") -> None: ...

    assert "reports.hourly" in app.periodic


# --------------------------------------------------------------------------- Task.enqueue_many


async def test_enqueue_many_takes_args_kwargs_or_both(app: App, queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    send = register(app, queue)
    batches: list[list[Any]] = []
    real = app.enqueue_many

    async def counting(jobs: Any) -> list[str]:
        batches.append(list(jobs))
        return await real(batches[-1])

    monkeypatch.setattr(app, "enqueue_many", counting)
    ids = await send.enqueue_many(
        [
            ("a@example.com", "positional"),
            {"to": "b@example.com", "subject": "keywords", "priority": "high"},
            (("c@example.com",), {"subject": "both", "retries": 1}),
        ],
        delay=60,
    )
    assert len(batches) == 1 and len(ids) == 3  # one call of App.enqueue_many: one round trip
    jobs = [await app.get_job(job_id) for job_id in ids]
    assert [job.payload for job in jobs] == [
        {"to": "a@example.com", "subject": "positional"},
        {"to": "b@example.com", "subject": "keywords"},
        {"to": "c@example.com", "subject": "both", "retries": 1},
    ]
    assert [job.priority for job in jobs] == ["default", "high", "default"]
    assert all(job.status == "scheduled" and job.queue == queue for job in jobs)


async def test_enqueue_many_item_options_win_over_the_batchs(app: App, queue: str) -> None:
    send = register(app, queue)
    ids = await send.enqueue_many(
        [{"to": "a@example.com", "subject": "x"}, {"to": "b@example.com", "subject": "y", "priority": "high"}],
        priority="low",
        max_retries=7,
    )
    jobs = [await app.get_job(job_id) for job_id in ids]
    assert [(job.priority, job.max_retries) for job in jobs] == [("low", 7), ("high", 7)]


async def test_enqueue_many_checks_every_item_before_sending(app: App, queue: str) -> None:
    send = register(app, queue)
    with pytest.raises(ValidationError) as info:
        await send.enqueue_many([("a@example.com", "ok"), {"to": "b@example.com", "subject": 7}])
    assert info.value.errors == {"jobs[1].payload.subject": "Input should be a valid string"}
    assert str(info.value).startswith("jobs[1]: invalid emails.send payload")
    with pytest.raises(TypeError, match=r"jobs\[1\]: task 'emails.send': .*unexpected keyword argument 'cc'"):
        await send.enqueue_many([("a@example.com", "ok"), {"to": "b", "subject": "s", "cc": "x"}])
    with pytest.raises(TypeError, match=r"jobs\[0\]: each item is a tuple .* got list"):
        await send.enqueue_many([["a@example.com", "a list"]])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="unknown enqueue option"):
        await send.enqueue_many([("a@example.com", "ok")], colour="blue")
    assert await stored(app, queue) == []


def test_enqueue_many_sync(redis_url: str, queue: str) -> None:
    app = App(settings=Settings(redis_url=redis_url))
    send = register(app, queue)
    ids = send.enqueue_many_sync([("a@example.com", "one"), {"to": "b@example.com", "subject": "two"}])
    more = app.enqueue_many_sync([("emails.send", {"to": "c@example.com", "subject": "three"})])

    async def check() -> list[dict[str, Any]]:
        try:
            return [(await app.get_job(job_id)).payload for job_id in [*ids, *more]]
        finally:
            await app.close()

    assert [p["subject"] for p in asyncio.run(check())] == ["one", "two", "three"]


# --------------------------------------------------------------------------- due times


async def test_run_at_with_a_sub_millisecond_part_is_due_the_next_millisecond(app: App, queue: str) -> None:
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    base_ms = int(base.timestamp()) * 1000
    ids = [
        await app.enqueue("noop", queue=queue, run_at=base.replace(microsecond=micros))
        for micros in (0, 1, 1_000, 1_001, 999_999)
    ]
    due = [(await app.get_job(job_id)).scheduled_for for job_id in ids]
    assert due == [base_ms, base_ms + 1, base_ms + 1, base_ms + 2, base_ms + 1000]
    (batch,) = await app.enqueue_many([{"type": "noop", "queue": queue, "run_at": base.timestamp() + 0.0001}])
    assert (await app.get_job(batch)).scheduled_for == base_ms + 1


async def test_a_delay_never_ends_early(app: App, queue: str) -> None:
    before_s = datetime.now(UTC).timestamp()
    job = await app.get_job(await app.enqueue("noop", queue=queue, delay=30.0005))
    assert job.scheduled_for is not None
    assert job.scheduled_for >= before_s * 1000 + 30_000.5
