"""Serving metrics: the text of ``/metrics`` (the API's, merged with worker processes' in multiprocess mode),
the endpoint of a worker process or of a supervisor, and the multiprocess directory.

Who serves what: the API's ``/metrics`` has its own process's counters plus the queue gauges read from Redis;
``tickr worker --metrics-port`` serves its process's counters; ``tickr worker --processes P --metrics-port``
serves one endpoint that merges its children (prometheus multiprocess mode); ``tickr up`` serves everything it
runs on its API's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from tickr.lifecycle import PassSignal

log = logging.getLogger("tickr.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Merged(Collector):
    """Several collectors as one: families of one name become one family, equal samples are summed.

    ``tickr up`` serves its own process's counters and its extra worker processes' (multiprocess files)
    together; without merging, the exposition would name a family twice.
    """

    def __init__(self, *sources: Collector) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Any]] = {}
        for source in self.sources:
            for family in source.collect():
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                    values[family.name] = {}
                samples = values[family.name]
                for s in family.samples:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    if key in samples and not s.name.endswith("_created"):
                        samples[key] = samples[key]._replace(value=samples[key].value + s.value)
                    elif key not in samples:
                        samples[key] = s
        for name, family in merged.items():
            family.samples = list(values[name].values())
            yield family


def render(*extra: Collector, multiproc_dir: str | Path | None = None) -> bytes:
    """The exposition text of this process's registry, ``extra`` collectors, and a multiprocess directory's files."""
    registry = CollectorRegistry(auto_describe=False)
    sources: list[Collector] = [REGISTRY, *extra]
    if multiproc_dir is not None:
        files = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(files, path=str(multiproc_dir))  # type: ignore[no-untyped-call]
        sources.append(files)
    registry.register(Merged(*sources))
    return generate_latest(registry)


def fresh_multiproc_dir(path: str | Path | None = None) -> Path:
    """A clean directory for prometheus multiprocess files: ``path`` emptied, or a new temporary one."""
    if path is None:
        return Path(tempfile.mkdtemp(prefix="tickr-metrics-"))
    target = Path(path)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    return target


def child_env(multiproc_dir: Path) -> dict[str, str]:
    """The environment of a worker process whose metrics a supervisor serves: multiprocess mode, no port of its own."""
    env = {k: v for k, v in os.environ.items() if k != "TICKR_METRICS_PORT"}
    env[MULTIPROC_ENV] = str(multiproc_dir)
    return env


def child_exited(multiproc_dir: Path, pid: int) -> None:
    """Forget a dead child's live gauges (its counters stay: a counter never goes down)."""
    mark_process_dead(pid, str(multiproc_dir))  # type: ignore[no-untyped-call]


class MetricsEndpoint:
    """An HTTP ``/metrics`` endpoint on its own port, served from a thread (for workers and supervisors).

    ``multiproc_dir``: serve the merged files of a supervisor's children (and nothing of this process).
    """

    name = "metrics"

    def __init__(self, host: str, port: int, multiproc_dir: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.multiproc_dir = multiproc_dir
        self.started = asyncio.Event()
        self.passes = PassSignal()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start_sync(self) -> None:
        if self._server is not None:
            return
        registry: Collector = REGISTRY
        if self.multiproc_dir is not None:
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=str(self.multiproc_dir))  # type: ignore[no-untyped-call]
        self._server, self._thread = start_http_server(self.port, self.host, registry=registry)
        self.port = int(self._server.server_port)
        self.started.set()
        log.info("metrics at http://%s:%d/metrics", self.host, self.port)

    def stop_sync(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    async def start(self) -> None:
        self.start_sync()

    async def stop(self) -> None:
        self.stop_sync()
