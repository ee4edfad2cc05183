"""The job listing's plans on PostgreSQL at 1M rows: every filtered page after a cursor is an index scan.

Rows are generated server-side (``generate_series``), then ``ANALYZE``d; each query is the statement
``HistoryQueries.list_jobs`` runs, with the cursor of its first page. Prints each plan's time (``-s``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from tests.history.rows import history_database
from tickr.history.database import HistoryDB
from tickr.history.queries import HistoryQueries, job_cursor

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

ROWS = 1_000_000
T0 = 1_800_000_000_000
GENERATE = f"""
INSERT INTO jobs (id, queue, type, status, worker, schedule_id, attempt, created_at, updated_at, event_seq,
                  error_type, error_message, payload)
SELECT lpad(g::text, 12, '0'),
       'q' || (g % 20),
       't' || (g % 50),
       CASE WHEN g % 10 = 0 THEN 'dead' WHEN g % 10 = 1 THEN 'retrying' WHEN g % 97 = 0 THEN 'lost'
            ELSE 'succeeded' END,
       'worker-' || (g % 200),
       CASE WHEN g % 50 = 0 THEN 'sched-' || (g % 1000) END,
       1,
       {T0} + g * 10,
       {T0} + g * 10,
       g,
       CASE WHEN g % 10 = 0 THEN 'SMTPError' END,
       CASE WHEN g % 10 = 0 THEN 'mailbox ' || (g % 7) || ' is full' END,
       '{{"n": 1}}'::jsonb
FROM generate_series(1, {ROWS}) AS g
"""
CASES: dict[str, dict[str, Any]] = {
    "no filter": {},
    "queue": {"queue": "q7"},
    "status": {"status": "dead"},
    "type": {"type": "t13"},
    "schedule_id": {"schedule_id": "sched-150"},
    "worker": {"worker": "worker-42"},
    "since/until": {"since_ms": T0 + 2_000_000, "until_ms": T0 + 6_000_000},
    "error text": {"error_contains": "BOX 3"},
    "queue+status": {"queue": "q0", "status": "dead"},
    "status+since": {"status": "retrying", "since_ms": T0 + 5_000_000},
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def big(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HistoryDB]:
    path: Path = tmp_path_factory.mktemp("explain")
    async with history_database("postgresql", path) as db:
        async with db.engine.begin() as conn:
            await conn.execute(text(GENERATE))
        async with db.engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("ANALYZE jobs"))
        yield db


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


@pytest.mark.parametrize("case", list(CASES))
async def test_each_filtered_page_uses_an_index(big: HistoryDB, case: str) -> None:
    filters = CASES[case]
    queries = HistoryQueries(big)
    first = await queries.list_jobs(limit=50, **filters)
    assert len(first.jobs) == 50 and first.next_cursor is not None
    # the cursor of the second page, and one 20% down the table (keyset: as cheap)
    for where, cursor in (("page 2", first.next_cursor), ("deep", job_cursor(T0 + ROWS * 8, ""))):
        statement = HistoryQueries.list_query(limit=50, cursor=cursor, **filters)
        sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        async with big.engine.connect() as conn:
            raw = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"))).scalar()
            rows = list((await conn.execute(text(sql))).all())
        [document] = raw if isinstance(raw, list) else json.loads(raw)
        nodes = _nodes(document["Plan"])
        kinds = [node["Node Type"] for node in nodes]
        on_jobs = [node for node in nodes if node.get("Relation Name") == "jobs"]
        assert on_jobs and all("Index" in node["Node Type"] for node in on_jobs), kinds
        assert "Seq Scan" not in kinds and "Sort" not in kinds, kinds
        assert len(rows) == 51
        page = await queries.list_jobs(limit=50, cursor=cursor, **filters)
        assert [job.id for job in page.jobs] == [row.id for row in rows[:50]]
        used = sorted({node.get("Index Name", "") for node in on_jobs})
        print(
            f"\n{case:>14} {where:>8}: {document['Execution Time']:7.3f} ms execution,"
            f" {document['Planning Time']:6.3f} ms planning, {' + '.join(kinds)} on {', '.join(used)}"
        )
