"""The senders' wire: send one HTTP request, get its status, headers and body.

Two implementations share the Wire protocol:

- CurlWire: libcurl's multi interface (pycurl; its wheel bundles nghttp2), driven from the
  asyncio event loop by libcurl's socket and timer callbacks. HTTP/2 requests multiplex on
  few connections (PIPEWAIT makes a request wait for a connection that is being set up
  rather than open another), each request has its own timeout, easy handles are reused, and
  a cancelled await takes its request off the wire (an HTTP/2 stream is reset, the
  connection stays).
- AiohttpWire: aiohttp's client (HTTP/1.1), the FCM sender's transport before CurlWire.

The APNs sender has a third, AioapnsWire (alertd.delivery.apns), over aioapns.

A request that gets no HTTP answer raises TimeoutError (its timeout passed) or WireError (no
connection, TLS refused, connection dropped, protocol error): both are OSErrors, which the
senders map to a retry (outcomes.TRANSPORT_ERRORS). Any HTTP answer is a Response.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import pycurl

# libcurl's own default is 100 streams per connection; the senders size it from their
# concurrency and max_connections so that the allowed connections carry all of it.
DEFAULT_STREAMS = 100


class WireError(ConnectionError):
    """A request that got no HTTP answer (connection refused or dropped, TLS, protocol)."""


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer: status, headers (case-insensitive names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Wire(Protocol):
    """Sends HTTP requests to one service (paths are relative to its base URL)."""

    async def request(self, method: str, target: str, headers: Mapping[str, str],
                      body: bytes, timeout_s: float) -> Response:
        """Send one request and wait at most timeout_s for its whole answer. target is a
        path ("/...", joined to the base URL) or an absolute URL."""
        ...

    async def close(self) -> None:
        """Fail what is in flight and close every connection."""
        ...


def _url(base: str, target: str) -> str:
    return base + target if target.startswith("/") else target


def default_ca_file() -> str:
    """The system's CA bundle (pycurl's wheel carries no default path of its own)."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile or paths.openssl_cafile


class _HeaderLines(Mapping[str, str]):
    """Response headers from libcurl's raw header lines, parsed on first use (most answers
    are never asked for a header). Only the last response's lines count (after a 100)."""

    __slots__ = ("_lines", "_parsed")

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines
        self._parsed: dict[str, str] | None = None

    def _map(self) -> dict[str, str]:
        if self._parsed is None:
            parsed: dict[str, str] = {}
            for raw in self._lines:
                line = raw.decode("latin-1")
                if line.startswith("HTTP/"):
                    parsed = {}  # a new status line: an interim answer came before
                    continue
                name, sep, value = line.partition(":")
                if sep:
                    parsed[name.strip().lower()] = value.strip()
            self._parsed = parsed
        return self._parsed

    def __getitem__(self, name: str) -> str:
        return self._map()[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


class _Easy:
    """A reusable libcurl easy handle, its answer buffers and the future of its request."""

    __slots__ = ("body", "curl", "custom", "future", "lines")

    def __init__(self, curl: pycurl.Curl) -> None:
        self.curl = curl
        self.body: list[bytes] = []
        self.lines: list[bytes] = []
        self.future: asyncio.Future[Response] | None = None
        self.custom = False  # CUSTOMREQUEST is set
        curl.setopt(pycurl.WRITEFUNCTION, self.body.append)
        curl.setopt(pycurl.HEADERFUNCTION, self.lines.append)

    def answer(self) -> Response:
        status = int(self.curl.getinfo(pycurl.RESPONSE_CODE))
        return Response(status, _HeaderLines(self.lines[:]), b"".join(self.body))

    def clear(self) -> None:
        self.future = None
        self.body.clear()
        self.lines.clear()


class CurlWire:
    """HTTP over libcurl's multi interface, on the running event loop (see the module)."""

    def __init__(self, base_url: str, *, ca_file: str = "", client_cert: str = "",
                 http2: str = "tls", max_connections: int = 1,
                 max_streams: int = DEFAULT_STREAMS) -> None:
        """base_url: scheme://host:port that paths are joined to; ca_file: the CA bundle to
        trust (empty: the system's); client_cert: a PEM with certificate and key for TLS
        client auth; http2: "prior" (HTTP/2 only: https by ALPN, http by prior knowledge),
        "tls" (HTTP/2 over https by ALPN, HTTP/1.1 over http) or "" (HTTP/1.1);
        max_connections: connections to the host at most; max_streams: requests multiplexed
        on one HTTP/2 connection at most (the server's own limit applies too)."""
        self._base = base_url.rstrip("/")
        self._loop = asyncio.get_running_loop()
        self._ca_file = ca_file or default_ca_file()
        self._client_cert = client_cert
        self._version = {
            "prior": pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
            "tls": pycurl.CURL_HTTP_VERSION_2TLS,
            "": pycurl.CURL_HTTP_VERSION_1_1,
        }[http2]
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        self._multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, max_connections)
        self._multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, max_connections)
        self._multi.setopt(pycurl.M_MAXCONNECTS, max_connections)
        self._multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, max_streams)
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._free: list[_Easy] = []
        self._active: dict[pycurl.Curl, _Easy] = {}
        self._watched: dict[int, int] = {}  # fd -> POLL_IN | POLL_OUT bits registered
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Requests on the wire now (for tests and diagnostics)."""
        return len(self._active)

    def _easy(self) -> _Easy:
        curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.HTTP_VERSION, self._version)
        curl.setopt(pycurl.PIPEWAIT, 1)
        curl.setopt(pycurl.CAINFO, self._ca_file)
        if self._client_cert:
            curl.setopt(pycurl.SSLCERT, self._client_cert)
            curl.setopt(pycurl.SSLKEY, self._client_cert)
        return _Easy(curl)

    async def request(self, method: str, target: str, headers: Mapping[str, str],
                      body: bytes, timeout_s: float) -> Response:
        """See Wire.request."""
        if self._closed:
            raise WireError("the wire is closed")
        easy = self._free.pop() if self._free else self._easy()
        curl = easy.curl
        curl.setopt(pycurl.URL, _url(self._base, target))
        # "Expect:" keeps libcurl from waiting for a 100 Continue before an HTTP/1.1 body.
        curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()] + ["Expect:"])
        if method == "GET":
            curl.setopt(pycurl.HTTPGET, 1)
        else:
            curl.setopt(pycurl.POSTFIELDS, body)
        if method not in ("GET", "POST"):
            curl.setopt(pycurl.CUSTOMREQUEST, method)
            easy.custom = True
        elif easy.custom:
            curl.unsetopt(pycurl.CUSTOMREQUEST)
            easy.custom = False
        curl.setopt(pycurl.TIMEOUT_MS, max(int(timeout_s * 1000), 1))
        future: asyncio.Future[Response] = self._loop.create_future()
        easy.future = future
        self._active[curl] = easy
        self._multi.add_handle(curl)
        try:
            return await future
        finally:
            if easy.future is future:  # no answer yet: cancelled, or the wire closed
                self._active.pop(curl, None)
                self._multi.remove_handle(curl)  # resets its HTTP/2 stream
                easy.clear()
                if not self._closed:
                    self._free.append(easy)

    # libcurl -> event loop ------------------------------------------------------------

    def _on_socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        old = self._watched.get(fd, 0)
        new = 0 if what == pycurl.POLL_REMOVE else what
        loop = self._loop
        if old & pycurl.POLL_IN and not new & pycurl.POLL_IN:
            loop.remove_reader(fd)
        if old & pycurl.POLL_OUT and not new & pycurl.POLL_OUT:
            loop.remove_writer(fd)
        if new & pycurl.POLL_IN and not old & pycurl.POLL_IN:
            loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if new & pycurl.POLL_OUT and not old & pycurl.POLL_OUT:
            loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        if new:
            self._watched[fd] = new
        else:
            self._watched.pop(fd, None)

    def _on_timer(self, timeout_ms: int) -> None:
        # libcurl forbids socket_action inside its callbacks: it runs from the loop.
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout_ms >= 0 and not self._closed:
            self._timer = self._loop.call_later(timeout_ms / 1000, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, events: int) -> None:
        if self._closed:
            return
        self._multi.socket_action(fd, events)
        while True:
            queued, done, failed = self._multi.info_read()
            for curl in done:
                self._finish(curl, None)
            for curl, code, text in failed:
                self._finish(curl, _error(code, text))
            if not queued:
                break

    def _finish(self, curl: pycurl.Curl, error: OSError | None) -> None:
        easy = self._active.pop(curl, None)
        if easy is None:
            return
        self._multi.remove_handle(curl)
        future = easy.future
        outcome: Response | OSError = easy.answer() if error is None else error
        easy.clear()
        self._free.append(easy)
        if future is None or future.done():
            return
        if isinstance(outcome, Response):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)

    async def close(self) -> None:
        """See Wire.close."""
        if self._closed:
            return
        self._closed = True
        for curl, easy in list(self._active.items()):
            self._multi.remove_handle(curl)
            if easy.future is not None and not easy.future.done():
                easy.future.set_exception(WireError("the wire closed"))
            easy.future = None
            curl.close()
        self._active.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._multi.close()  # closes the connections (socket callbacks may still come)
        for fd in list(self._watched):
            self._on_socket(pycurl.POLL_REMOVE, fd, None, None)
        for easy in self._free:
            easy.curl.close()
        self._free.clear()


def _error(code: int, text: str) -> OSError:
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return TimeoutError(f"curl: {text}")
    return WireError(f"curl error {code}: {text}")


class AiohttpWire:
    """HTTP/1.1 over aiohttp's client, up to `connections` connections."""

    def __init__(self, base_url: str, *, connections: int, ca_file: str = "") -> None:
        self._base = base_url.rstrip("/")
        context = ssl.create_default_context(cafile=ca_file or None)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, ssl=context))

    async def request(self, method: str, target: str, headers: Mapping[str, str],
                      body: bytes, timeout_s: float) -> Response:
        """See Wire.request."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._session.request(method, _url(self._base, target), data=body,
                                             headers=headers, timeout=timeout) as resp:
                return Response(resp.status, resp.headers, await resp.read())
        except aiohttp.ClientError as exc:
            raise WireError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """See Wire.close."""
        await self._session.close()
