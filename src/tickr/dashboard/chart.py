"""The overview's last-hour chart: jobs finished per minute (succeeded / dead) from the SQL history, as inline SVG."""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup
from sqlalchemy import func, select

from tickr.history.queries import HistoryQueries, history_boundary
from tickr.history.schema import jobs

MINUTE_MS = 60_000
MINUTES = 60
WIDTH, HEIGHT = 600, 80


@dataclass(frozen=True, slots=True)
class Hour:
    """Per minute of the last hour (oldest first): succeeded and dead counts."""

    succeeded: list[int]
    dead: list[int]

    @property
    def total(self) -> int:
        return sum(self.succeeded) + sum(self.dead)

    @property
    def failure_rate(self) -> float:
        return sum(self.dead) / self.total if self.total else 0.0

    def svg(self) -> Markup:
        """Stacked bars, one per minute; ``<title>`` on each says its counts (hover)."""
        peak = max((s + d for s, d in zip(self.succeeded, self.dead, strict=True)), default=0) or 1
        step = WIDTH / MINUTES
        bars = []
        for i, (ok, dead) in enumerate(zip(self.succeeded, self.dead, strict=True)):
            h_ok, h_dead = HEIGHT * ok / peak, HEIGHT * dead / peak
            x = i * step
            ago = MINUTES - i
            bars.append(
                Markup(
                    '<g><title>{ago} min ago: {ok} succeeded, {dead} dead</title>'
                    '<rect class="ok" x="{x:.1f}" y="{y1:.1f}" width="{w:.1f}" height="{h1:.1f}"/>'
                    '<rect class="bad" x="{x:.1f}" y="{y2:.1f}" width="{w:.1f}" height="{h2:.1f}"/></g>'
                ).format(
                    ago=ago, ok=ok, dead=dead, x=x, w=step * 0.8,
                    y1=HEIGHT - h_ok, h1=h_ok, y2=HEIGHT - h_ok - h_dead, h2=h_dead,
                )
            )  # fmt: skip
        return Markup(
            '<svg class="chart" viewBox="0 0 {w} {h}" preserveAspectRatio="none" role="img" '
            'aria-label="jobs finished per minute over the last hour">{bars}</svg>'
        ).format(w=WIDTH, h=HEIGHT, bars=Markup("").join(bars))


@history_boundary
async def last_hour(history: HistoryQueries, now_ms: int) -> Hour:
    """Finished jobs per minute, by ``updated_at`` (indexed; for a finished job it is the time it finished)."""
    start = now_ms - MINUTES * MINUTE_MS
    minute = ((jobs.c.updated_at - start) / MINUTE_MS).cast(jobs.c.attempt.type)
    query = (
        select(minute.label("m"), jobs.c.status, func.count())
        .where(jobs.c.updated_at >= start)  # no status filter: it would steer the planner off this index
        .group_by("m", jobs.c.status)
    )
    succeeded, dead = [0] * MINUTES, [0] * MINUTES
    async with history.db.engine.connect() as conn:
        for m, status, count in (await conn.execute(query)).all():
            if 0 <= int(m) < MINUTES and status in ("succeeded", "dead"):
                (succeeded if status == "succeeded" else dead)[int(m)] += int(count)
    return Hour(succeeded, dead)
