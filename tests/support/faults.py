"""Network faults for tests, on 127.0.0.1: a server that accepts and never answers, and a TCP proxy
that can stall (stop forwarding, connections left open) and resume, or hold some bytes back."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self


class HangingListener:
    """Accepts every connection, reads and discards what comes, never writes a byte."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> HangingListener:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        try:
            with contextlib.suppress(OSError):
                while await reader.read(65536):
                    pass
        finally:
            self._writers.discard(writer)


class StallProxy:
    """Forwards to (host, port) until `stall()`: from then on nothing is forwarded either way (bytes wait
    in the proxy, connections stay open, new ones are accepted and wait too) until `resume()`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._flowing.set()
        assert self._server is not None
        self._server.close()
        for w in list(self._links):
            w.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Stall, and drop the connections it carries: the link is gone, not just slow, until `resume()`."""
        self.stall()
        for writer in list(self._links):
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        try:
            await asyncio.gather(self._upstream(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._links.difference_update((writer, up_writer))
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Client to server."""
        await self._pipe(reader, writer)


class LaggingProxy(StallProxy):
    """Forwards to (host, port), in order, but holds client-to-server bytes from each occurrence of
    `marker` for `delay` seconds (what comes before it goes at once; nothing overtakes): a network
    where some commands are slow to arrive, e.g. NATS `SUB`s."""

    def __init__(self, host: str, port: int, *, marker: bytes, delay: float) -> None:
        super().__init__(host, port)
        self.marker, self.delay = marker, delay
        self.held = 0

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                at = data.find(self.marker)
                if at >= 0:
                    writer.write(data[:at])
                    await writer.drain()
                    self.held += 1
                    await asyncio.sleep(self.delay)
                    data = data[at:]
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()
