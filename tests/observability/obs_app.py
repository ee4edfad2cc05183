"""The app the observability tests run in a real worker: a task that succeeds, one that fails once, one that dies."""

from __future__ import annotations

import tickr

app = tickr.App()


@app.task(name="obs.ok")
async def ok() -> None:
    return None


@app.task(name="obs.flaky", max_retries=2)
async def flaky() -> None:
    if tickr.current_job().attempt == 1:
        raise tickr.Retry(after=0)  # fails once, then succeeds


@app.task(name="obs.doomed", max_retries=5)
async def doomed() -> None:
    raise tickr.Permanent("never works")  # straight to the dead-letter queue
