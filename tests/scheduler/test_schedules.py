"""Schedule management: validation, read/list, update, pause/resume, soft delete, next runs, the SDK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import TestClock
from tickr.app import App
from tickr.core.errors import JobNotFound, ValidationError
from tickr.core.schedule import FireRequest
from tickr.scheduler.manager import Schedules, periodic_schedule_id

T0 = 1_800_000_000_000  # the TestClock's start: 2027-01-15 08:00:00 UTC


async def test_create_stores_the_template_and_the_next_fire(schedules: Schedules) -> None:
    s = await schedules.create(
        "noop", {"a": 1}, cron="0 */5 * * * *", timezone="Europe/Berlin", queue="q", priority="high", name="five"
    )
    assert s.next_run_at == T0 + 5 * 60_000 and s.is_active and not s.deleted and s.version == 1
    assert s.template.payload == {"a": 1} and s.template.queue == "q" and s.template.priority == "high"
    assert s.template.max_retries == 3 and s.name == "five" and s.created_at == T0
    assert await schedules.get(s.id) == s
    assert await schedules.db.redis.zscore(schedules.db.keys.due, s.id) == s.next_run_at


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"cron": "61 * * * *"}, {"cron"}),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, {"timezone"}),
        ({"cron": "nope", "timezone": "Nowhere/Land"}, {"cron", "timezone"}),
        ({"cron": "@daily", "misfire": "later"}, {"misfire"}),
        ({"cron": "@daily", "max_catch_up": 0}, {"max_catch_up"}),
        ({"cron": "@daily", "queue": "a:b", "priority": "urgent"}, {"queue", "priority"}),
        ({"cron": "@daily", "schedule_id": "bad id!"}, {"id"}),
        ({"cron": "@daily", "colour": "red"}, {"colour"}),
    ],
)
async def test_validation_errors_name_the_fields(
    schedules: Schedules, kwargs: dict[str, object], fields: set[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        await schedules.create("noop", **kwargs)  # type: ignore[arg-type]
    assert set(caught.value.errors) == fields


async def test_non_json_payload_and_bad_type_are_validation_errors(schedules: Schedules) -> None:
    with pytest.raises(ValidationError) as caught:
        await schedules.create("noop", {"when": datetime.now(UTC)}, cron="@daily")
    assert set(caught.value.errors) == {"payload"}
    with pytest.raises(ValidationError) as caught:
        await schedules.create("bad type", cron="@daily")
    assert set(caught.value.errors) == {"type"}


async def test_duplicate_id_and_unknown_ids(schedules: Schedules) -> None:
    s = await schedules.create("noop", cron="@daily", schedule_id="nightly")
    with pytest.raises(ValidationError) as caught:
        await schedules.create("noop", cron="@daily", schedule_id="nightly")
    assert set(caught.value.errors) == {"id"}
    assert s.id == "nightly"
    assert await schedules.get("0190aaaa-0000-7000-8000-000000000000") is None
    assert await schedules.get("not/an:id") is None
    for call in (schedules.require, schedules.delete, schedules.pause, schedules.next_runs, schedules.history):
        with pytest.raises(JobNotFound):
            await call("missing")  # type: ignore[operator]


async def test_list_pages_in_creation_order_and_hides_deleted(schedules: Schedules, clock: TestClock) -> None:
    ids = []
    for i in range(5):
        clock.advance(1)
        ids.append((await schedules.create("noop", cron="@daily", name=f"s{i}")).id)
    await schedules.delete(ids[1])
    first = await schedules.list_schedules(limit=2)
    second = await schedules.list_schedules(limit=2, cursor=first.next_cursor)
    third = await schedules.list_schedules(limit=2, cursor=second.next_cursor)
    assert [s.id for s in first.items + second.items + third.items] == [ids[0], *ids[2:]]
    assert third.next_cursor is None or (await schedules.list_schedules(cursor=third.next_cursor)).items == []
    everything = await schedules.list_schedules(limit=10, include_deleted=True)
    assert [s.id for s in everything.items] == ids
    with pytest.raises(ValidationError):
        await schedules.list_schedules(cursor="abc")


async def test_pause_and_resume(schedules: Schedules, clock: TestClock) -> None:
    s = await schedules.create("noop", cron="0 * * * * *")
    due = schedules.db.keys.due
    paused = await schedules.pause(s.id)
    assert not paused.is_active and await schedules.db.redis.zscore(due, s.id) is None
    clock.advance(600)  # ten minutes paused: those occurrences are not run later
    resumed = await schedules.resume(s.id)
    assert resumed.is_active and resumed.next_run_at == T0 + 660_000  # the next minute after now
    assert await schedules.db.redis.zscore(due, s.id) == resumed.next_run_at


async def test_soft_delete_keeps_history_and_reactivates(schedules: Schedules, clock: TestClock) -> None:
    s = await schedules.create("noop", cron="* * * * * *")
    await schedules.db.fire(FireRequest(s.id, s.next_run_at or 0, (s.next_run_at or 0) + 1000))
    clock.advance(5)
    deleted = await schedules.delete(s.id)
    assert deleted.deleted and deleted.deleted_at == clock.now and not deleted.is_active
    assert await schedules.db.redis.zscore(schedules.db.keys.due, s.id) is None
    assert (await schedules.delete(s.id)).deleted  # deleting twice is harmless
    back = await schedules.update(s.id, is_active=True)
    assert back.is_active and not back.deleted and back.deleted_at is None
    assert back.next_run_at == clock.now + 1000
    assert await schedules.db.redis.zscore(schedules.db.keys.due, s.id) == back.next_run_at


async def test_update_recomputes_the_next_fire_only_when_the_timing_changes(schedules: Schedules) -> None:
    s = await schedules.create("noop", {"v": 1}, cron="0 0 * * * *")
    same_time = await schedules.update(s.id, payload={"v": 2}, priority="low", overlap=False)
    assert same_time.next_run_at == s.next_run_at and same_time.template.payload == {"v": 2}
    assert same_time.template.priority == "low" and not same_time.overlap and same_time.version == 2
    moved = await schedules.update(s.id, cron="0 30 * * * *", timezone="Asia/Kolkata")
    assert moved.next_run_at == T0 + 60 * 60_000  # :30 in India (UTC+5:30) is :00 UTC
    with pytest.raises(ValidationError) as caught:
        await schedules.update(s.id, cron="bad")
    assert "cron" in caught.value.errors
    with pytest.raises(ValidationError):
        await schedules.update(s.id, colour="red")


async def test_next_runs_in_utc_and_local(schedules: Schedules) -> None:
    s = await schedules.create("noop", cron="0 30 9 * * *", timezone="Europe/Berlin")
    runs = await schedules.next_runs(s.id, 3)
    assert [utc for utc, _ in runs] == [datetime(2027, 1, 15, 8, 30, tzinfo=UTC) + timedelta(days=d) for d in range(3)]
    assert all((local.hour, local.minute, local.utcoffset()) == (9, 30, timedelta(hours=1)) for _, local in runs)
    await schedules.pause(s.id)
    assert [u for u, _ in await schedules.next_runs(s.id, 3)] == [u for u, _ in runs]


async def test_sdk_schedule_and_periodic_tasks(sapp: App, schedules: Schedules) -> None:
    schedule_id = await sapp.schedule("noop", {"x": 1}, cron="*/10 * * * * *", timezone="UTC", queue="sdk")
    stored = await schedules.require(schedule_id)
    assert stored.template.queue == "sdk" and stored.cron == "*/10 * * * * *"

    @sapp.task(name="report.nightly", cron="0 0 2 * * *", timezone="Europe/Paris", queue="reports", max_retries=1)
    async def nightly() -> None: ...

    assert sapp.periodic["report.nightly"].cron == "0 0 2 * * *"
    first = await schedules.sync_periodic()
    again = await schedules.sync_periodic()
    assert [s.id for s in first] == [periodic_schedule_id("report.nightly")]
    assert again[0].version == first[0].version  # idempotent
    assert first[0].template.queue == "reports" and first[0].template.max_retries == 1
    await schedules.pause(first[0].id)
    sapp.periodic["report.nightly"] = sapp.periodic["report.nightly"].__class__("report.nightly", "0 0 3 * * *")
    changed = (await schedules.sync_periodic())[0]
    assert changed.cron == "0 0 3 * * *" and changed.timezone == "UTC" and not changed.is_active


def test_task_with_a_bad_cron_fails_at_decoration(sapp: App) -> None:
    with pytest.raises(ValidationError):

        @sapp.task(name="bad", cron="every day")
        def bad() -> None: ...
