"""The app the chaos tests run: its one task records every execution's start and end in a file.

The record lives outside Redis (one append-only file per process, ``$TICKR_CHAOS_LOG/<pid>.log``), so it
survives both a SIGKILLed worker (a write is in the page cache once ``os.write`` returns) and a Redis that is
down, and the test can tell each execution apart: ``S <job id> <pid> <unix time> <attempt>`` when the body
starts, ``E ...`` when it has finished (before the ack).
"""

from __future__ import annotations

import asyncio
import os
import time

from tickr import App, current_job

app = App()
_fd: list[int] = []  # this process's log file (opened on the first job, after any fork)


def _write(kind: str) -> None:
    if not _fd:
        path = os.path.join(os.environ["TICKR_CHAOS_LOG"], f"{os.getpid()}.log")
        _fd.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
    ctx = current_job()
    os.write(_fd[0], f"{kind} {ctx.job_id} {os.getpid()} {time.time():.6f} {ctx.attempt}\n".encode())


@app.task(name="chaos.step")
async def step(ms: float = 10.0) -> None:
    """A small job: sleeps ``ms`` milliseconds between its two records."""
    _write("S")
    await asyncio.sleep(ms / 1000)  # the job's "work": long enough to be in flight when a process dies
    _write("E")
