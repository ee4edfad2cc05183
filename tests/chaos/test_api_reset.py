"""After its Redis connections are reset (RST), ``tickr api`` answers 503, never 500 (found by this suite).

``tickr api`` runs on uvloop. A pooled redis-py connection whose socket the peer reset is still in the pool;
the next command on it writes to a closed uvloop transport, which raises ``RuntimeError: unable to perform
operation on <TCPTransport closed=True ...>; the handler is closed`` (asyncio's own loop would fail the
read with a ``ConnectionError`` instead). The store boundary (``store/boundary.py``) translated only
``RedisError`` and ``OSError``, so the ``RuntimeError`` left the store untranslated: 500, logged as an
unhandled error, sometimes a dropped HTTP connection. It now counts as a lost connection.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.chaos.harness import ExecLog, Procs, RedisServer, env_for, figures, free_port
from tests.chaos.proxy import Proxy
from tests.waiting import wait_until

ROUNDS = 3
BURST = 20


@pytest.mark.timeout(60)
async def test_api_answers_503_never_500_after_its_redis_connections_are_reset(
    private_redis: RedisServer, queue: str, procs: Procs, exec_log: ExecLog, tmp_path: Path
) -> None:
    proxy = Proxy("127.0.0.1", private_redis.port).start()
    api_port = free_port()
    env = env_for(
        proxy.url,
        exec_log.directory,
        TICKR_DATA_DIR=str(tmp_path / "data"),
        TICKR_AUTO_MIGRATE="true",
        TICKR_API_PORT=str(api_port),
    )
    api = procs.tickr("api", ["api"], env)
    seen: Counter[str] = Counter()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=5.0) as client:

            async def api_up() -> bool:
                assert api.poll() is None, f"tickr api exited\n{procs.output('api')}"
                try:
                    return (await client.get("/api/v1/queues")).status_code == 200
                except httpx.TransportError:
                    return False

            async def burst() -> list[str]:
                body = {"type": "chaos.step", "payload": {"ms": 1}, "queue": queue}
                replies = await asyncio.gather(
                    *(client.post("/api/v1/jobs", json=body) for _ in range(BURST)), return_exceptions=True
                )
                return [str(r.status_code) if isinstance(r, httpx.Response) else type(r).__name__ for r in replies]

            await wait_until(api_up, timeout=60, message="the API to answer")
            await burst()  # BURST pooled connections to Redis, all through the proxy
            for _ in range(ROUNDS):
                proxy.reset()  # RST on every connection; then Redis is reachable again at once
                proxy.heal()
                seen.update(await burst())
    finally:
        proxy.close()
    bad = {k: v for k, v in seen.items() if k not in {"201", "503"}}
    figures("api-reset", requests=sum(seen.values()), **{f"status_{k}": v for k, v in sorted(seen.items())})
    assert not bad, f"answers other than 201/503 after a reset: {bad}\n{procs.output('api', 25)}"
