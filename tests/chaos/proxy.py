"""A TCP proxy that can cut the connection between a worker and Redis, in a thread with its own event loop.

Cuts:

- ``reset()``: every proxied connection is closed on both sides with an RST (``SO_LINGER`` 0) and the
  listening socket is closed, so new connections are refused until ``heal()``.
- ``stall()``: sockets stay open but nothing is forwarded in either direction, and a new connection is
  accepted but not forwarded either: a network that silently drops packets. ``heal()`` forwards what was
  held, as TCP would retransmit it once the path is back.
- ``blackhole()``: like ``stall()``, but the connections of before never come back (a NAT entry or a
  failed-over address that vanished without a reset); only connections made after ``heal()`` flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tests.chaos.harness import free_port

T = TypeVar("T")
CHUNK = 65_536


class _Pair:
    def __init__(self, client: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.flowing = flowing  # this pair's gate: the proxy's, or a never-set one after a blackhole

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.upstream) if w is not None]


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="chaos-proxy", daemon=True)
        self.server: asyncio.Server | None = None
        self.flowing = asyncio.Event()
        self.pairs: set[_Pair] = set()
        self.accepted = 0
        self.resets = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> Proxy:
        self.thread.start()
        self._call(self._listen())
        return self

    def reset(self) -> None:
        self._call(self._reset())

    def stall(self) -> None:
        self._call(self._stall())

    def blackhole(self) -> None:
        self._call(self._blackhole())

    def heal(self) -> None:
        self._call(self._heal())

    def close(self) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._shutdown())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()

    async def _shutdown(self) -> None:
        await self._reset()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()  # pumps held by a blackhole wait forever otherwise
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        self.flowing.set()
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _reset(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for pair in list(self.pairs):
            for writer in pair.writers():
                sock = writer.get_extra_info("socket")
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                self.resets += 1
        self.pairs.clear()

    async def _stall(self) -> None:
        self.flowing.clear()

    async def _blackhole(self) -> None:
        self.flowing.clear()
        for pair in self.pairs:
            pair.flowing = asyncio.Event()  # never set: this connection forwards nothing ever again
        self.flowing = asyncio.Event()  # connections accepted from now on wait for heal()

    async def _heal(self) -> None:
        if self.server is None:
            await self._listen()
        self.flowing.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        pair = _Pair(writer, self.flowing)
        self.pairs.add(pair)
        try:
            await pair.flowing.wait()  # a stalled network: connected, but nothing reaches Redis
            up_reader, pair.upstream = await asyncio.open_connection(*self.target)
            await asyncio.gather(self._pump(reader, pair.upstream, pair), self._pump(up_reader, writer, pair))
        except OSError:
            pass
        finally:
            self.pairs.discard(pair)
            for w in pair.writers():
                w.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pair: _Pair) -> None:
        try:
            while data := await reader.read(CHUNK):
                await pair.flowing.wait()  # held during a stall (and forever after a blackhole)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()  # one side is gone: so is the other
