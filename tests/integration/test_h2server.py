"""The sandbox's HTTP/2 server connection over a real TCP socket: the h2 package as the client,
and hand-made frames for what no well-behaved client sends."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest

from alertd.sandbox import h2server
from alertd.sandbox.h2server import H2ServerConnection, frame
from tests.waiting import DEADLINE


class Echo(H2ServerConnection):
    """Answers with the request's path and body; `x-size: N` asks for an N-octet body, and
    `x-late: 1` for an answer on the next loop turn."""

    max_concurrent_streams = 20

    def on_request(self, stream_id: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        fields = dict(headers)
        size = int(fields.get(b"x-size", b"-1"))
        answer = b"z" * size if size >= 0 else body
        reply = [(b"x-path", fields.get(b":path", b"")),
                 (b"x-trailer", fields.get(b"x-trailer", b""))]
        if fields.get(b"x-late"):
            asyncio.get_running_loop().call_soon(self.respond, stream_id, 200, reply, answer)
        else:
            self.respond(stream_id, 200, reply, answer)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@dataclass
class Client:
    """An h2 client connection with what it received so far."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: h2.connection.H2Connection
    responses: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    bodies: dict[int, bytearray] = field(default_factory=dict)
    ended: set[int] = field(default_factory=set)
    resets: dict[int, int] = field(default_factory=dict)
    events: list[h2.events.Event] = field(default_factory=list)
    ack_data: bool = True

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def until(self, done: object) -> None:
        """Read and handle frames until done() is true (or the server closes)."""
        async with asyncio.timeout(DEADLINE):
            while not done():  # type: ignore[operator]
                data = await self.reader.read(65536)
                if not data:
                    return
                for event in self.conn.receive_data(data):
                    self.events.append(event)
                    self._handle(event)
                self.flush()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.responses[event.stream_id] = dict(event.headers or ())
        elif isinstance(event, h2.events.DataReceived):
            self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data or b"")
            if self.ack_data:
                self.conn.acknowledge_received_data(event.flow_controlled_length or 0,
                                                    event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.ended.add(event.stream_id)  # type: ignore[arg-type]
        elif isinstance(event, h2.events.StreamReset):
            self.resets[event.stream_id] = event.error_code  # type: ignore[index,assignment]

    def request(self, path: str, body: bytes = b"", extra: list[tuple[str, str]] | None = None,
                end: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", "t"),
                   (":path", path), *(extra or [])]
        self.conn.send_headers(stream_id, headers, end_stream=end and not body)
        if body:
            self.send_body(stream_id, body, end)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end: bool = True) -> None:
        size = self.conn.max_outbound_frame_size
        for i in range(0, len(body), size):
            last = i + size >= len(body)
            self.conn.send_data(stream_id, body[i:i + size], end_stream=end and last)

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        found = [e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)]
        return found[0] if found else None


async def connect(port: int, **settings: int) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if settings:
        conn.update_settings({getattr(h2.settings.SettingCodes, k): v for k, v in settings.items()})
    client = Client(reader, writer, conn)
    client.flush()
    # the server's preface opens the connection window wide before anything is sent
    await client.until(lambda: conn.outbound_flow_control_window > h2server.DEFAULT_WINDOW)
    return client


async def raw(port: int, data: bytes) -> bytes:
    """Send bytes after the preface; what came back until the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(h2server.PREFACE + frame(h2server.SETTINGS, 0, 0) + data)
    got = bytearray()
    async with asyncio.timeout(DEADLINE):
        while chunk := await reader.read(65536):
            got += chunk
    writer.close()
    return bytes(got)


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        kind, flags, stream = data[3], data[4], int.from_bytes(data[5:9], "big")
        out.append((kind, flags, stream, data[9:9 + length]))
        data = data[9 + length:]
    return out


def goaway_code(data: bytes) -> int:
    [payload] = [p for kind, _, _, p in frames_of(data) if kind == h2server.GOAWAY]
    return int(struct.unpack(">LL", payload[:8])[1])


async def test_many_streams_with_bodies_beyond_the_default_window(port: int) -> None:
    client = await connect(port)
    bodies = {client.request(f"/p/{i}", bytes([i]) * (70_000 + i)): i for i in range(12)}
    client.flush()
    await client.until(lambda: client.ended >= set(bodies))
    for stream_id, i in bodies.items():
        assert client.responses[stream_id][b":status"] == b"200"
        assert client.responses[stream_id][b"x-path"] == f"/p/{i}".encode()
        assert client.bodies[stream_id] == bytes([i]) * (70_000 + i)


async def test_a_response_waits_for_the_clients_window(port: int) -> None:
    client = await connect(port, INITIAL_WINDOW_SIZE=1000)
    client.ack_data = False
    stream_id = client.request("/big", extra=[("x-size", "5000")])
    client.flush()
    await client.until(lambda: len(client.bodies.get(stream_id, b"")) >= 1000)
    client.conn.ping(b"12345678")  # answered after anything the window would have let through
    client.flush()
    await client.until(lambda: any(isinstance(e, h2.events.PingAckReceived)
                                   for e in client.events))
    assert len(client.bodies[stream_id]) == 1000  # no more than the window let through
    assert stream_id not in client.ended
    client.conn.acknowledge_received_data(1000, stream_id)
    client.conn.increment_flow_control_window(10_000, stream_id)
    client.flush()
    await client.until(lambda: stream_id in client.ended)
    assert client.bodies[stream_id] == b"z" * 5000


async def test_a_header_block_in_continuation_frames_and_trailers(port: int) -> None:
    client = await connect(port)
    big = "v" * 40_000  # more than two frames of 16,384
    stream_id = client.request("/cont", b"body", extra=[("x-big", big)], end=False)
    client.conn.send_headers(stream_id, [("x-trailer", "yes")], end_stream=True)
    client.flush()
    await client.until(lambda: stream_id in client.ended)
    assert client.responses[stream_id][b"x-trailer"] == b"yes"
    assert client.bodies[stream_id] == b"body"


async def test_a_ping_is_answered_and_late_answers_arrive(port: int) -> None:
    client = await connect(port)
    client.conn.ping(b"abcdefgh")
    ids = [client.request(f"/late/{i}", extra=[("x-late", "1")]) for i in range(5)]
    client.flush()
    await client.until(lambda: client.ended >= set(ids))
    acks = [e for e in client.events if isinstance(e, h2.events.PingAckReceived)]
    assert acks and acks[0].ping_data == b"abcdefgh"


async def test_a_reset_stream_drops_its_late_answer_and_others_go_on(port: int) -> None:
    client = await connect(port)
    gone = client.request("/gone", extra=[("x-late", "1")])
    client.conn.reset_stream(gone)
    kept = client.request("/kept", extra=[("x-late", "1")])
    client.flush()
    await client.until(lambda: kept in client.ended)
    assert gone not in client.responses
    assert client.goaway() is None


async def test_streams_beyond_the_limit_are_refused(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    encoder = hpack.Encoder()
    held = [1 + 2 * i for i in range(Echo.max_concurrent_streams)]
    extra = held[-1] + 2
    opened = b"".join(frame(h2server.HEADERS, h2server.END_HEADERS, sid,
                            encoder.encode([(":method", "POST"), (":path", f"/{sid}")]))
                      for sid in held)
    writer.write(h2server.PREFACE + frame(h2server.SETTINGS, 0, 0) + opened
                 + frame(h2server.HEADERS, h2server.END_HEADERS | h2server.END_STREAM, extra,
                         encoder.encode([(":method", "POST"), (":path", "/extra")])))
    got = bytearray()

    async def read_until(done: object) -> list[tuple[int, int, int, bytes]]:
        async with asyncio.timeout(DEADLINE):
            while not done(frames_of(bytes(got))):  # type: ignore[operator]
                got.extend(await reader.read(65536))
        return frames_of(bytes(got))

    seen = await read_until(lambda fs: any(k == h2server.RST_STREAM for k, *_ in fs))
    assert [(stream, payload) for kind, _, stream, payload in seen
            if kind == h2server.RST_STREAM] == [(extra, struct.pack(">L",
                                                                    h2server.REFUSED_STREAM))]
    writer.write(b"".join(frame(h2server.DATA, h2server.END_STREAM, sid) for sid in held))
    seen = await read_until(lambda fs: sum(k == h2server.HEADERS for k, *_ in fs) >= len(held))
    assert sorted(stream for kind, _, stream, _ in seen if kind == h2server.HEADERS) == held
    writer.close()


HEADERS_BLOCK = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"),
                                        (":authority", "t"), (":path", "/x")])


async def test_goaway_from_the_client_lets_open_streams_finish(port: int) -> None:
    late = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"),
                                   (":authority", "t"), (":path", "/x"), ("x-late", "1")])
    got = await raw(port, frame(h2server.HEADERS, h2server.END_HEADERS | h2server.END_STREAM,
                                1, late)
                    + frame(h2server.GOAWAY, 0, 0, struct.pack(">LL", 0, 0)))
    answers = [(flags, stream) for kind, flags, stream, _ in frames_of(got)
               if kind == h2server.HEADERS]
    assert answers == [(h2server.END_HEADERS | h2server.END_STREAM, 1)]


@pytest.mark.parametrize("data, code", [
    (frame(h2server.HEADERS, h2server.END_HEADERS | h2server.END_STREAM, 2, HEADERS_BLOCK),
     h2server.PROTOCOL_ERROR),  # an even stream id
    (frame(h2server.HEADERS, h2server.END_HEADERS | h2server.END_STREAM, 5, HEADERS_BLOCK)
     + frame(h2server.HEADERS, h2server.END_HEADERS | h2server.END_STREAM, 3, HEADERS_BLOCK),
     h2server.STREAM_CLOSED),  # a stream id going back
    (frame(h2server.HEADERS, 0, 1, HEADERS_BLOCK[:3]) + frame(h2server.PING, 0, 0, b"x" * 8),
     h2server.PROTOCOL_ERROR),  # a frame inside a header block
    (frame(h2server.HEADERS, h2server.END_HEADERS, 1, b"\x80"), h2server.COMPRESSION_ERROR),
    (frame(h2server.DATA, 0, 7, b"data"), h2server.PROTOCOL_ERROR),  # DATA on an idle stream
    (frame(h2server.PING, 0, 0, b"short"), h2server.FRAME_SIZE_ERROR),
    (frame(h2server.SETTINGS, 0, 0, b"\x00\x04\x80\x00\x00\x00"),
     h2server.FLOW_CONTROL_ERROR),  # INITIAL_WINDOW_SIZE 2^31
    (frame(h2server.WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00"), h2server.PROTOCOL_ERROR),
    (frame(h2server.WINDOW_UPDATE, 0, 0, b"\x7f\xff\xff\xff"), h2server.FLOW_CONTROL_ERROR),
    (b"\x00\x40\x01" + bytes([h2server.DATA, 0]) + b"\x00\x00\x00\x01",
     h2server.FRAME_SIZE_ERROR),  # a frame of 16,385 octets
    (frame(h2server.PUSH_PROMISE, h2server.END_HEADERS, 1, b"\x00\x00\x00\x02"),
     h2server.PROTOCOL_ERROR),
])
async def test_protocol_errors_end_the_connection_with_goaway(port: int, data: bytes,
                                                              code: int) -> None:
    assert goaway_code(await raw(port, data)) == code


async def test_a_wrong_preface_closes_the_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(DEADLINE):
        got = await reader.read()
    assert goaway_code(got) == h2server.PROTOCOL_ERROR
