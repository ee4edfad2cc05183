"""History queries on SQLite and PostgreSQL: every filter, keyset paging in a stable order, runs, occurrences."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.history.rows import insert_rows, job_row, run_row
from tickr.api.views import JobOut
from tickr.core.errors import ValidationError
from tickr.core.job import JobState
from tickr.history.database import HistoryDB
from tickr.history.queries import HistoryQueries, HistoryUnavailable, encode_cursor, like_pattern, parse_time

T0 = 1_800_000_000_000


@pytest.fixture
def db(migrated_db: HistoryDB) -> HistoryDB:
    """The tables as the migrations make them, on SQLite and PostgreSQL (``tests/history/conftest.py``)."""
    return migrated_db


@pytest.fixture
def queries(db: HistoryDB) -> HistoryQueries:
    return HistoryQueries(db)


async def ids(queries: HistoryQueries, **filters: Any) -> list[str]:
    page = await queries.list_jobs(limit=500, **filters)
    assert page.next_cursor is None
    return [job.id for job in page.jobs]


async def test_each_filter_selects_its_jobs(db: HistoryDB, queries: HistoryQueries) -> None:
    rows = [
        job_row(
            id="a",
            queue="mail",
            type="send",
            status="dead",
            worker="w1",
            created_at=T0 + 1,
            error_type="SMTPError",
            error_message="Connection refused by mx.example",
        ),
        job_row(id="b", queue="mail", type="send", status="succeeded", worker="w2", created_at=T0 + 2),
        job_row(
            id="c",
            queue="video",
            type="encode",
            status="dead",
            worker="w1",
            created_at=T0 + 3,
            error_type="TimeoutError",
            error_message="took 100% of the budget",
        ),
        job_row(
            id="d",
            queue="video",
            type="encode",
            status="retrying",
            worker="w3",
            created_at=T0 + 4,
            schedule_id="nightly",
            error_type="ValueError",
            error_message="bad frame 1000",
        ),
        job_row(
            id="e",
            queue="mail",
            type="digest",
            status="succeeded",
            schedule_id="nightly",
            created_at=T0 + 5,
            error_type=None,
            error_message="under_score",
        ),
    ]
    await insert_rows(db, rows)
    assert await ids(queries) == ["e", "d", "c", "b", "a"]
    assert await ids(queries, queue="mail") == ["e", "b", "a"]
    assert await ids(queries, status="dead") == ["c", "a"]
    assert await ids(queries, status=JobState.RETRYING) == ["d"]
    assert await ids(queries, type="encode") == ["d", "c"]
    assert await ids(queries, schedule_id="nightly") == ["e", "d"]
    assert await ids(queries, worker="w1") == ["c", "a"]
    assert await ids(queries, since_ms=T0 + 3) == ["e", "d", "c"]  # inclusive
    assert await ids(queries, until_ms=T0 + 3) == ["b", "a"]  # exclusive
    assert await ids(queries, since_ms=T0 + 2, until_ms=T0 + 4) == ["c", "b"]
    assert await ids(queries, queue="mail", status="dead", worker="w1") == ["a"]
    # error text: type or message, any case; LIKE wildcards in the text are literal
    assert await ids(queries, error_contains="smtp") == ["a"]
    assert await ids(queries, error_contains="REFUSED") == ["a"]
    assert await ids(queries, error_contains="error") == ["d", "c", "a"]
    assert await ids(queries, error_contains="0%") == ["c"]
    assert await ids(queries, error_contains="100%") == ["c"]
    assert await ids(queries, error_contains="de_") == []  # unescaped, "_" would match the "r" of "under"
    assert await ids(queries, error_contains="r_score") == ["e"]
    assert await ids(queries, error_contains="\\") == []
    assert await ids(queries, queue="nope") == []


async def test_paging_is_stable_across_pages(db: HistoryDB, queries: HistoryQueries) -> None:
    # 40 jobs, created in 8 distinct milliseconds: ties are broken by id, descending.
    rows = [
        job_row(id=f"job-{n:03d}", created_at=T0 + n // 5, status="dead" if n % 3 else "succeeded") for n in range(40)
    ]
    await insert_rows(db, rows)
    expected = sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
        ({}, lambda r: True),
        ({"status": "dead"}, lambda r: r["status"] == "dead"),
        ({"queue": "default", "since_ms": T0 + 2}, lambda r: r["created_at"] >= T0 + 2),
    ]
    for filters, selects in cases:
        want = [r["id"] for r in expected if selects(r)]
        got: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = await queries.list_jobs(limit=7, cursor=cursor, **filters)
            got += [job.id for job in page.jobs]
            pages += 1
            if page.next_cursor is None:
                break
            assert len(page.jobs) == 7  # full pages until the last
            cursor = page.next_cursor
            if pages == 1:  # jobs written meanwhile (newer) do not shift later pages
                newer = job_row(id=f"new-{len(filters)}", created_at=T0 + 999, status="dead")
                await insert_rows(db, [newer])
        assert got == want
        expected.insert(0, newer)
        assert pages == -(-len(want) // 7)


async def test_an_exact_page_has_no_next_cursor(db: HistoryDB, queries: HistoryQueries) -> None:
    await insert_rows(db, [job_row(id=f"j{n}", created_at=T0 + n) for n in range(4)])
    page = await queries.list_jobs(limit=4)
    assert len(page.jobs) == 4 and page.next_cursor is None
    first = await queries.list_jobs(limit=2)
    second = await queries.list_jobs(limit=2, cursor=first.next_cursor)
    assert [j.id for j in first.jobs + second.jobs] == ["j3", "j2", "j1", "j0"] and second.next_cursor is None


@pytest.mark.parametrize(
    "cursor",
    [
        "x",
        "%%%",
        encode_cursor("r", 3),  # a runs cursor
        encode_cursor("j", "late", "id"),
        encode_cursor("j", 1),
        encode_cursor("j", True, "id"),
        "W10",  # []
        "bm90IGpzb24",  # "not json"
    ],
)
async def test_a_bad_cursor_names_the_cursor(queries: HistoryQueries, cursor: str) -> None:
    with pytest.raises(ValidationError) as caught:
        await queries.list_jobs(cursor=cursor)
    assert set(caught.value.errors) == {"cursor"}


async def test_bad_limit_and_status(queries: HistoryQueries) -> None:
    for limit in (0, 501):
        with pytest.raises(ValidationError) as caught:
            await queries.list_jobs(limit=limit)
        assert set(caught.value.errors) == {"limit"}
    with pytest.raises(ValidationError) as caught:
        await queries.list_jobs(status="sleeping")
    assert set(caught.value.errors) == {"status"}


async def test_get_job_rebuilds_the_job(db: HistoryDB, queries: HistoryQueries) -> None:
    row = job_row(
        id="j1",
        queue="mail",
        type="send",
        status="dead",
        priority="high",
        payload={"to": "a@example.com"},
        attempt=2,
        max_retries=1,
        execution="at_most_once",
        idempotency_key="k1",
        name="welcome",
        worker="w2",
        created_at=T0,
        scheduled_for=T0 + 5,
        started_at=T0 + 10,
        finished_at=T0 + 30,
        result=None,
        error_type="SMTPError",
        error_message="refused",
    )
    runs = [
        run_row("j1", 1, outcome="failed", error_type="SMTPError", error_message="refused", error_traceback="tb 1"),
        run_row("j1", 2, outcome="failed", error_type="SMTPError", error_message="refused", error_traceback="tb 2"),
    ]
    await insert_rows(db, [row, job_row(id="j2", result={"ok": True})], runs)
    job = await queries.get_job("j1")
    assert job is not None
    view = JobOut.of(job).model_dump()
    assert (view["id"], view["queue"], view["type"], view["status"], view["priority"]) == (
        "j1",
        "mail",
        "send",
        "dead",
        "high",
    )
    assert (view["attempt"], view["max_retries"], view["execution"], view["worker"]) == (2, 1, "at_most_once", "w2")
    assert view["payload"] == {"to": "a@example.com"} and view["idempotency_key"] == "k1"
    assert (view["created_at_ms"], view["started_at_ms"], view["finished_at_ms"]) == (T0, T0 + 10, T0 + 30)
    assert view["last_error"] == {"type": "SMTPError", "message": "refused", "traceback": "tb 2"}
    other = await queries.get_job("j2")
    assert other is not None and other.result == {"ok": True} and other.last_error is None
    assert await queries.get_job("nope") is None


async def test_runs_newest_attempt_first_with_paging(db: HistoryDB, queries: HistoryQueries) -> None:
    runs = [
        run_row(
            "j1",
            n,
            outcome="failed" if n < 5 else "succeeded",
            worker=f"w{n}",
            due_at=T0 + 100 * n,
            started_at=T0 + 100 * n + 7,
            finished_at=T0 + 100 * n + 50,
            duration_ms=43,
            lateness_ms=7,
            error_type="E" if n < 5 else None,
            error_message=f"try {n}" if n < 5 else None,
        )
        for n in range(1, 6)
    ]
    await insert_rows(db, [job_row(id="j1", attempt=5)], [*runs, run_row("j2", 1)])
    first = await queries.runs("j1", limit=2)
    assert [r.attempt for r in first.runs] == [5, 4] and first.next_cursor
    latest = first.runs[0].to_dict()
    assert (latest["outcome"], latest["worker"], latest["fire_time"], latest["error"]) == (
        "succeeded",
        "w5",
        T0 + 500,
        None,
    )
    assert first.runs[1].error == {"type": "E", "message": "try 4"}
    second = await queries.runs("j1", limit=2, cursor=first.next_cursor)
    third = await queries.runs("j1", limit=2, cursor=second.next_cursor)
    assert [r.attempt for r in second.runs + third.runs] == [3, 2, 1] and third.next_cursor is None
    assert (await queries.runs("nope")).runs == []
    with pytest.raises(ValidationError) as caught:
        await queries.runs("j1", cursor=encode_cursor("j", T0, "x"))
    assert set(caught.value.errors) == {"cursor"}


async def test_schedule_runs_are_the_occurrences(db: HistoryDB, queries: HistoryQueries) -> None:
    minute = 60_000
    rows = [
        job_row(
            id=f"occ-{n}",
            schedule_id="nightly",
            idempotency_key=f"schedule:nightly:{T0 + n * minute}",
            created_at=T0 + n * minute + 3,
            started_at=T0 + n * minute + 10,
            finished_at=T0 + n * minute + 40,
            status="dead" if n == 2 else "succeeded",
            attempt=n,
            error_type="E" if n == 2 else None,
            error_message="boom" if n == 2 else None,
        )
        for n in range(5)
    ]
    await insert_rows(db, [*rows, job_row(id="other", schedule_id="hourly", created_at=T0 + 999 * minute)])
    first = await queries.schedule_runs("nightly", limit=3)
    assert [e.job_id for e in first.items] == ["occ-4", "occ-3", "occ-2"]
    dead = first.items[2]
    assert (dead.fire_time, dead.outcome, dead.attempt) == (T0 + 2 * minute, "dead", 2)
    assert (dead.lateness_ms, dead.duration_ms, dead.started_at) == (3, 30, T0 + 2 * minute + 10)
    assert dead.error == {"type": "E", "message": "boom"}
    second = await queries.schedule_runs("nightly", limit=3, cursor=first.next_cursor)
    assert [e.job_id for e in second.items] == ["occ-1", "occ-0"] and second.next_cursor is None
    found = await queries.occurrences(["occ-1", "missing"])
    assert list(found) == ["occ-1"] and found["occ-1"].fire_time == T0 + minute
    assert await queries.occurrences([]) == {}


def test_like_pattern_and_time_parsing() -> None:
    assert like_pattern("100%_a\\b") == "%100\\%\\_a\\\\b%"
    now = T0
    assert parse_time("90s", "since", now) == now - 90_000
    assert parse_time("30m", "since", now) == now - 1_800_000
    assert parse_time("1h", "until", now) == now - 3_600_000
    assert parse_time("7d", "since", now) == now - 7 * 86_400_000
    assert parse_time("2026-01-02T03:04:05.123Z", "since", now) == 1_767_323_045_123
    assert parse_time("2026-01-02T05:04:05+02:00", "since", now) == 1_767_323_045_000
    for bad in ("1y", "yesterday", "2026-01-02", "2026-01-02T03:04:05", "-1h", ""):
        with pytest.raises(ValidationError) as caught:
            parse_time(bad, "until", now)
        assert set(caught.value.errors) == {"until"}


@pytest.mark.parametrize("url", ["postgresql+asyncpg://postgres@127.0.0.1:1/test", "sqlite+aiosqlite:///{tmp}/none.db"])
async def test_an_unreachable_database_is_history_unavailable(url: str, tmp_path: Path) -> None:
    db = HistoryDB(url.format(tmp=tmp_path))  # SQLite: a file with no tables
    queries = HistoryQueries(db)
    try:
        for call in (queries.list_jobs(), queries.get_job("x"), queries.runs("x"), queries.schedule_runs("s")):
            with pytest.raises(HistoryUnavailable):
                await call
    finally:
        await db.close()


async def test_priority_filter_and_bad_priority(db: HistoryDB, queries: HistoryQueries) -> None:
    await insert_rows(
        db,
        [
            job_row(id="c1", priority="critical", created_at=T0 + 1),
            job_row(id="l1", priority="low", created_at=T0 + 2),
            job_row(id="c2", priority="critical", created_at=T0 + 3, status="dead"),
        ],
    )
    assert await ids(queries, priority="critical") == ["c2", "c1"]
    assert await ids(queries, priority="critical", status="dead") == ["c2"]
    assert await ids(queries, priority="high") == []
    with pytest.raises(ValidationError) as caught:
        await queries.list_jobs(priority="urgent")
    assert set(caught.value.errors) == {"priority"}


async def test_oldest_first_pages_stably_and_cursors_keep_their_order(db: HistoryDB, queries: HistoryQueries) -> None:
    rows = [job_row(id=f"job-{n:03d}", created_at=T0 + n // 4, priority="low" if n % 2 else "high") for n in range(30)]
    await insert_rows(db, rows)
    for filters in ({}, {"priority": "low"}):
        want = sorted(
            (r for r in rows if filters.get("priority") in (None, r["priority"])),
            key=lambda r: (r["created_at"], r["id"]),
        )
        got: list[str] = []
        cursor = None
        while True:
            page = await queries.list_jobs(limit=4, order="asc", cursor=cursor, **filters)
            got += [job.id for job in page.jobs]
            if page.next_cursor is None:
                break
            assert len(page.jobs) == 4
            cursor = page.next_cursor
            if len(got) == 4:  # an older job written meanwhile does not shift later pages
                older = job_row(id=f"old-{len(filters)}", created_at=T0 - 1, priority="low")
                await insert_rows(db, [older])
        assert got == [r["id"] for r in want]
        rows.insert(0, older)
    desc = await queries.list_jobs(limit=3)
    asc = await queries.list_jobs(limit=3, order="asc")
    assert desc.next_cursor and asc.next_cursor
    for cursor, order in ((desc.next_cursor, "asc"), (asc.next_cursor, "desc")):
        with pytest.raises(ValidationError) as caught:
            await queries.list_jobs(limit=3, order=order, cursor=cursor)
        assert set(caught.value.errors) == {"cursor"}
        assert "order=" in caught.value.errors["cursor"]
    with pytest.raises(ValidationError) as caught:
        await queries.list_jobs(order="sideways")
    assert set(caught.value.errors) == {"order"}
