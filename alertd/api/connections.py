"""Connections of the HTTP server: deadlines for headers and bodies, keep-alive, a cap.

aiohttp's server closes only connections idle between requests (its keep-alive timer), so a
client sending its headers or its body a byte at a time held a connection for ever. Here a
request's headers must be complete `http.header_timeout_s` after its first byte (or after the
connection opens), its body `http.body_timeout_s` after the headers, and at most
`http.max_connections` connections are open at once; beyond that a connection gets a 503 and
is closed straight away.
"""

from __future__ import annotations

import asyncio
import json
import resource
from typing import Any

import structlog
from aiohttp import web

from alertd import settings
from alertd.api import plumbing

log = structlog.get_logger(__name__)

# How long a connection answered early (413, 408) may still send what it was sending before it
# is closed: long enough for the answer to reach the client before the socket is reset.
_LINGER_S = 2.0


def _raw_answer(status: str, reason: str, *headers: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, written before any request is read."""
    body = json.dumps({"error": reason}).encode()
    head = [f"HTTP/1.1 {status}", "Connection: close", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_TIMED_OUT = _raw_answer("408 Request Timeout", "request headers not received in time")
_FULL = _raw_answer("503 Service Unavailable", "too many open connections", "Retry-After: 1")


class _Gate:
    """The open connections of one listener, against its cap."""

    __slots__ = ("cap", "open")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's connection protocol with a header deadline and a connection cap.

    It reads two attributes of aiohttp's RequestHandler: `_waiter` (pending while the
    connection waits for a complete request, the test aiohttp's own keep-alive timer makes)
    and `_request_count` (requests parsed so far). tests/integration/test_connections.py
    pins the behaviour should a new aiohttp change them.
    """

    def __init__(self, manager: web.Server, *, gate: _Gate, header_timeout_s: float,
                 **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._header_timeout_s = header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._gate.open += 1
        self._counted = True
        if self._gate.open > self._gate.cap:
            log.warning("http_connection_refused", reason="too many open connections",
                        cap=self._gate.cap)
            self._close_with(_FULL)
            return
        self._arm_header_timer()  # a new connection owes its first request's headers

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._gate.open -= 1
            self._counted = False
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:
            self._cancel_header_timer()  # a request's headers are complete
        elif data and self._header_timer is None and self._awaiting_request():
            self._arm_header_timer()  # the first bytes of the next request

    def _awaiting_request(self) -> bool:
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def _arm_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(self._header_timeout_s, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._awaiting_request():
            log.info("http_headers_timeout", timeout_s=self._header_timeout_s)
            self._close_with(_TIMED_OUT)

    def _close_with(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
        self.force_close()


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections are GuardedRequestHandlers (see the module docstring)."""

    __slots__ = ("_bound", "_gate", "_host", "_http", "_port")

    def __init__(self, runner: web.BaseRunner, http: settings.Http, port: int | None = None
                 ) -> None:
        super().__init__(runner, backlog=1024)
        self._host = http.host
        self._port = http.port if port is None else port
        self._http = http
        self._gate = _Gate(http.max_connections)
        self._bound: int | None = None

    @property
    def name(self) -> str:
        """The URL it listens on."""
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen by the system when asked for 0)."""
        return self._port if self._bound is None else self._bound

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return self._gate.open

    async def start(self) -> None:
        """Listen."""
        await super().start()
        server = self._runner.server
        assert server is not None
        http = self._http

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(
                server, loop=loop, gate=self._gate, header_timeout_s=http.header_timeout_s,
                keepalive_timeout=http.keepalive_s, lingering_time=_LINGER_S, access_log=None,
                **plumbing.HANDLER_ARGS)  # what build_app gives aiohttp's own handler

        loop = asyncio.get_running_loop()
        listening = await loop.create_server(protocol, self._host, self._port,
                                             backlog=self._backlog, reuse_address=True)
        self._server = listening
        self._bound = int(listening.sockets[0].getsockname()[1])
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and http.max_connections >= soft:
            log.warning("http_max_connections_above_fd_limit", max_connections=http.max_connections,
                        fd_limit=soft, hint="raise ulimit -n or lower http.max_connections")


class _BodyLate(TimeoutError):
    """The request body did not arrive in time.

    A TimeoutError: after the 408, aiohttp drains the rest of the body for a moment (lingering)
    from the same stream, and it takes a TimeoutError there as the end of that, quietly; any
    other exception it logs as an unhandled error, one traceback per slow client.
    """


@web.middleware
async def body_deadline(request: web.Request, handler: plumbing.Handler) -> web.StreamResponse:
    """413 at once for a declared body over http.max_body_bytes; 408 for a body not sent in time.

    The deadline is on the request's body stream, so it holds wherever the body is read.
    """
    http = plumbing.ctx(request).cfg.http
    declared = request.content_length
    if (declared is not None and declared > http.max_body_bytes
            and not plumbing.own_body_limit(request)):
        resp = plumbing.problem(413, f"body too large: at most {http.max_body_bytes} bytes")
        resp.force_close()
        return resp
    if not request.body_exists:
        return await handler(request)
    stream = request.content

    def expire() -> None:
        if not stream.is_eof():
            stream.set_exception(_BodyLate())

    timer = asyncio.get_running_loop().call_later(http.body_timeout_s, expire)
    try:
        return await handler(request)
    except _BodyLate:
        log.info("http_body_timeout", path=request.path, timeout_s=http.body_timeout_s)
        resp = plumbing.problem(408, f"request body not received within "
                                     f"{http.body_timeout_s:g} s")
        resp.force_close()
        return resp
    finally:
        timer.cancel()
