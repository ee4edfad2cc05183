"""Fire lateness of cron schedules with several scheduler processes: job created_at - fire time, p50/p99.

    python benchmarks/cron_lateness.py --schedulers 3 --schedules 10 --seconds 20 [--redis-url URL]

Starts ``tickr scheduler`` processes on a private key prefix, creates every-second schedules, lets them run,
stops the schedulers, then reads every job made: prints the lateness percentiles and checks that each
occurrence made exactly one job. Removes its keys afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

from tickr.app import App
from tickr.config import Settings
from tickr.scheduler.manager import Schedules

RUNNER = (
    "from tickr.cli.main import cli\n"
    "from tickr.cli.schedule_commands import register\n"
    "if not any(c.name == 'scheduler' for c in cli.registered_commands): register(cli)\n"
    "cli()\n"
)


def start(count: int, redis_url: str, prefix: str) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "TICKR_REDIS_URL": redis_url, "TICKR_LOG_LEVEL": "INFO"}
    procs, ready = [], []
    for _ in range(count):
        cmd = [sys.executable, "-c", RUNNER, "scheduler", "--prefix", prefix]
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        event = threading.Event()
        threading.Thread(target=_watch, args=(proc, event), daemon=True).start()
        procs.append(proc)
        ready.append(event)
    for event in ready:
        if not event.wait(30):
            raise SystemExit("a scheduler process did not start")
    return procs


def _watch(proc: subprocess.Popen[str], started: threading.Event) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if "scheduler started" in line:
            started.set()
        elif "WARNING" in line or "ERROR" in line:
            sys.stderr.write(line)


async def measure(args: argparse.Namespace) -> int:
    prefix = args.prefix or f"bench{uuid.uuid4().hex[:8]}"
    queue = "cron-bench"
    app = App(settings=Settings(redis_url=args.redis_url), prefix=prefix)
    procs = await asyncio.to_thread(start, args.schedulers, args.redis_url, prefix)
    try:
        manager = Schedules(app)
        ids = [(await manager.create("noop", cron="* * * * * *", queue=queue)).id for _ in range(args.schedules)]
        await asyncio.sleep(args.seconds)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(15)
    redis, keys = app.store.redis, app.store.keys(queue)
    jobs = [await redis.hgetall(k) async for k in redis.scan_iter(match=keys.job_prefix + "*", count=1000)]
    lateness = sorted(int(j["created_at"]) - int(j["idempotency_key"].rsplit(":", 1)[1]) for j in jobs)
    doubles = sum(n - 1 for n in Counter(j["idempotency_key"] for j in jobs).values())
    recorded = sum([(await manager.require(i)).fired for i in ids])
    q = statistics.quantiles(lateness, n=100, method="inclusive")
    print(
        f"{args.schedulers} schedulers, {args.schedules} every-second schedules, {args.seconds:.0f} s: "
        f"{len(jobs)} fires, {doubles} duplicates, {recorded} recorded\n"
        f"fire lateness (job created_at - fire time): p50={q[49]:.1f} ms p90={q[89]:.1f} ms "
        f"p99={q[98]:.1f} ms min={lateness[0]} ms max={lateness[-1]} ms"
    )
    if not args.keep:
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            await redis.delete(key)
    await app.close()
    return 1 if doubles or recorded != len(jobs) else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("TICKR_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--schedulers", type=int, default=3)
    parser.add_argument("--schedules", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--prefix", default=None, help="key prefix (default: a fresh one)")
    parser.add_argument("--keep", action="store_true", help="keep the keys for inspection")
    began = time.monotonic()
    code = asyncio.run(measure(parser.parse_args()))
    print(f"took {time.monotonic() - began:.1f} s")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
