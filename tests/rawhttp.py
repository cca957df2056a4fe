"""HTTP/1.1 requests written byte for byte over a socket: what a client library refuses to send
(bytes beyond ASCII in headers, %00 in paths, bodies that lie about their encoding)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Answer:
    """A server's answer: status, headers (names lower-cased) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return bytes(out)


def parse(data: bytes) -> Answer:
    """An answer read until the server closed the connection (interim 1xx answers, such as
    100 Continue, skipped)."""
    while data.startswith(b"HTTP/1.1 1"):
        data = data.partition(b"\r\n\r\n")[2]
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete answer: {data[:200]!r}")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return Answer(int(status_line.split(" ")[1]), headers, body)


async def send(host: str, port: int, head: bytes, body: bytes = b"") -> Answer:
    """Send one request (its request line and headers as given, then the body) and read the
    answer; the connection is closed by the server (the head should say Connection: close)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + body)
        async with asyncio.timeout(TIMEOUT_S):
            data = await reader.read()
    finally:
        writer.close()
    return parse(data)


async def request(host: str, port: int, method: str, target: bytes,
                  headers: list[tuple[bytes, bytes]] | None = None,
                  body: bytes | None = None) -> Answer:
    """One request with Host, Connection: close and (with a body) Content-Length set."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: test",
             b"Connection: close"]
    if body is not None:
        lines.append(b"Content-Length: %d" % len(body))
    lines += [name + b": " + value for name, value in headers or []]
    return await send(host, port, b"\r\n".join(lines) + b"\r\n\r\n", body or b"")
