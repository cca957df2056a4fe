"""A TCP proxy to PostgreSQL that a test can pause: a hung database on demand.

Paused, it accepts connections and keeps every socket open but forwards nothing in either
direction (what a frozen server or a black-holed network looks like to a client); resumed, it
forwards what it held and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit


class PausableProxy:
    """Forwards 127.0.0.1:<port> to a PostgreSQL server until paused."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = target_url
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 5432
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> PausableProxy:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def url(self) -> str:
        """The target's URL, through the proxy."""
        parts = urlsplit(self._target)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(
            netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))

    def pause(self) -> None:
        """Stop forwarding; sockets stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, what was held first."""
        self._flowing.set()

    def drop(self) -> None:
        """Close every connection now (a peer or network that went away); keep listening."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        self._flowing.set()
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self._host, self._port)
        except OSError:
            client_w.close()
            return
        self._writers += [client_w, server_w]
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()
