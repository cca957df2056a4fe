"""Slow and idle clients against the real listener: deadlines, the connection cap, early 413."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from alertd import settings
from alertd.api import connections, routes
from alertd.context import Context
from tests.waiting import wait_for

# Generous bound on how long the server may take to close a client whose deadline is 1 s: the
# point is that it closes, not how fast on a loaded machine.
CLOSED_WITHIN_S = 20.0
DRIP_S = 0.2  # a slow client sends a byte this often


@dataclasses.dataclass
class Listener:
    """The app behind a GuardedSite on a free port."""

    site: connections.GuardedSite

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self.site.port

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A raw connection to it."""
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def healthz(self) -> int:
        """The status of GET /healthz on a fresh connection."""
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{self.port}/healthz") as resp:
            return resp.status


Start = Callable[..., Awaitable[Listener]]


@pytest.fixture
async def listen(context: Context) -> AsyncIterator[Start]:
    """Starts the real app behind a GuardedSite with the given http.* settings."""
    runners: list[web.AppRunner] = []

    async def start(**http: Any) -> Listener:
        env = {"ALERTD_DATABASE_URL": context.cfg.database.url,
               **{f"ALERTD_HTTP_{k.upper()}": str(v) for k, v in http.items()}}
        cfg = settings.load(environ=env)
        runner = web.AppRunner(routes.build_app(dataclasses.replace(context, cfg=cfg)),
                               access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        runners.append(runner)
        site = connections.GuardedSite(runner, cfg.http, port=0)
        await site.start()
        return Listener(site)

    yield start
    for runner in runners:
        await runner.cleanup()


async def _drip(writer: asyncio.StreamWriter, data: bytes, at_once: bytes = b"") -> None:
    """Send `at_once`, then `data` a byte at a time and spaces after it, until the server closes."""
    with_tail = data + b" " * 10_000
    try:
        writer.write(at_once)
        for i in range(len(with_tail)):
            writer.write(with_tail[i:i + 1])
            await writer.drain()
            await asyncio.sleep(DRIP_S)  # the client's pace, not synchronisation
    except (ConnectionError, OSError):
        pass


async def _until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or resets), and how long that took."""
    began = time.monotonic()
    data = b""
    async with asyncio.timeout(CLOSED_WITHIN_S):
        # chunk by chunk: a reset (the server closing while the client still sends) makes a
        # StreamReader drop what it holds unread
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                data += chunk
    return data, time.monotonic() - began


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response read from a raw connection: status, headers, body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def test_slow_and_idle_header_senders_are_closed_with_408(listen: Start) -> None:
    """Connections whose headers are not complete 1 s after opening (or after a request's first
    byte) are answered 408 and closed, while other clients are served meanwhile."""
    server = await listen(header_timeout_s=1, keepalive_s=60)
    silent = await server.open()
    slow = await server.open()
    drip_first = asyncio.create_task(_drip(slow[1], b"GET /healthz HTTP/1.1\r\nHost: x\r\n"))
    reused = await server.open()
    reused[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _answer(reused[0]))[0] == 200
    drip_next = asyncio.create_task(_drip(reused[1], b"GET /healthz HTTP/1.1\r\nHost: x\r\n"))
    served = [await server.healthz() for _ in range(3)]
    outcomes = [await _until_closed(conn[0]) for conn in (silent, slow, reused)]
    await asyncio.gather(drip_first, drip_next)
    assert served == [200, 200, 200]
    for data, _ in outcomes:
        assert data.startswith(b"HTTP/1.1 408 ")
        assert json.loads(data.split(b"\r\n\r\n", 1)[1]) == {
            "error": "request headers not received in time"}
    assert await server.healthz() == 200
    await wait_for(lambda: _zero(server), "every closed connection uncounted")


async def _zero(server: Listener) -> bool:
    return server.site.open_connections == 0


async def test_slow_body_is_answered_408_and_closed(listen: Start,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A body still incomplete 1 s after its headers gets 408 and the connection is closed,
    and nothing is logged as an error."""
    server = await listen(body_timeout_s=1)
    reader, writer = await server.open()
    drip = asyncio.create_task(_drip(writer, b'{"platform": "ios"', at_once=(
        b"POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n")))
    data, _ = await _until_closed(reader)
    await drip
    assert data.startswith(b"HTTP/1.1 408 ")
    assert json.loads(data.split(b"\r\n\r\n", 1)[1]) == {
        "error": "request body not received within 1 s"}
    assert await server.healthz() == 200
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_idle_keepalive_connection_is_closed(listen: Start) -> None:
    """A keep-alive connection idle for http.keepalive_s after an answer is closed silently."""
    server = await listen(keepalive_s=1, header_timeout_s=60)
    reader, writer = await server.open()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await _answer(reader))[0] == 200
    data, _ = await _until_closed(reader)
    assert data == b""


async def test_declared_oversized_body_is_refused_before_it_is_read(listen: Start) -> None:
    """Content-Length above http.max_body_bytes gets 413 after 1,000 bytes, nothing more sent."""
    server = await listen(body_timeout_s=600, max_body_bytes=20000)
    reader, writer = await server.open()
    writer.write(b"POST /v1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 400000000\r\n\r\n" + b"x" * 1000)
    async with asyncio.timeout(CLOSED_WITHIN_S):
        status, headers, body = await _answer(reader)
    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(body) == {"error": "body too large: at most 20000 bytes"}
    writer.close()


async def test_connections_beyond_the_cap_get_503_and_others_are_served(listen: Start) -> None:
    """With http.max_connections = 3, a 4th connection gets 503 and is closed; once one of
    the three goes, a new client is served."""
    server = await listen(max_connections=3, header_timeout_s=60)
    held = [await server.open() for _ in range(3)]
    await wait_for(lambda: _count(server, 3), "three connections counted")
    reader, _ = await server.open()
    data, _ = await _until_closed(reader)
    assert data.startswith(b"HTTP/1.1 503 ")
    assert b"Retry-After: 1\r\n" in data
    assert json.loads(data.split(b"\r\n\r\n", 1)[1]) == {"error": "too many open connections"}
    held[0][1].close()
    await wait_for(lambda: _count(server, 2), "the closed connection uncounted")
    assert await server.healthz() == 200
    for _, writer in held[1:]:
        writer.close()


async def _count(server: Listener, n: int) -> bool:
    return server.site.open_connections == n
