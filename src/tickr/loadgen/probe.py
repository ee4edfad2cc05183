"""The benchmark's probe job type: a no-op that returns the wall-clock time (µs resolution) at which it started.

Workers load it with ``tickr worker tickr.loadgen.probe:app``; the built-in job types stay available.
"""

from __future__ import annotations

import time

from tickr.app import App

PROBE = "bench.probe"
APP_SPEC = "tickr.loadgen.probe:app"

app = App()


@app.task(name=PROBE, max_retries=0)
async def probe(**_: object) -> dict[str, float]:
    """Record when the handler started (``time.time()``, same host as the benchmark client)."""
    return {"t": time.time()}
