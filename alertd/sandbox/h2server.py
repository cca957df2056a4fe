"""The server side of an HTTP/2 connection (RFC 9113) for the sandbox's fakes, on asyncio.

A fake answers every push of a drill or a benchmark, so it must cost less per request than the
clients it serves; with the h2 library it cost as much as they did. This connection does what a
server of small requests needs, in few Python steps per frame:

- the client preface, SETTINGS (applied and acknowledged), PING, GOAWAY both ways;
- HEADERS with CONTINUATION, padding and priority (ignored), HPACK with its dynamic table;
- DATA with padding, and flow control both ways: the client's data is bounded by windows this
  side opens wide and tops up; responses wait for the client's windows and its frame size;
- RST_STREAM, a limit on concurrent streams (REFUSED_STREAM beyond it), trailers;
- protocol errors end the connection with GOAWAY and the RFC's code, stream errors the stream
  with RST_STREAM; unknown frame types are ignored.

A subclass answers requests: `on_request(stream_id, headers, body)` is called once per complete
request and calls `respond(...)` then or later (a reset stream's late answer is dropped).
"""

from __future__ import annotations

import asyncio
import struct

from alertd.sandbox.hpackcodec import Decoder, HpackError, encode_response

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

DEFAULT_WINDOW = 65_535
DEFAULT_FRAME_SIZE = 16_384
MAX_WINDOW = 2**31 - 1
# This side's windows: wide, so that requests never wait for a WINDOW_UPDATE; topped up when
# half is used.
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 1 << 24
MAX_BODY = 1 << 20  # a request body beyond this is refused (RST_STREAM ENHANCE_YOUR_CALM)
MAX_HEADER_BLOCK = 1 << 18  # HEADERS and CONTINUATIONs together (a CONTINUATION flood)

_HEAD = struct.Struct(">BHBBL")  # length (24 bits as 8 + 16), type, flags, stream id


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame's bytes."""
    n = len(payload)
    return _HEAD.pack(n >> 16, n & 0xFFFF, kind, flags, stream_id) + payload


class H2Failure(Exception):
    """A connection error: GOAWAY with this code, then close."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class _Stream:
    __slots__ = ("body", "ended", "headers", "outgoing", "recv_window", "send_window")

    def __init__(self, headers: list[tuple[bytes, bytes]], send_window: int) -> None:
        self.headers = headers
        self.body = bytearray()
        self.ended = False  # the client sent END_STREAM
        self.recv_window = STREAM_WINDOW
        self.send_window = send_window
        self.outgoing = b""  # response body not yet sent (waiting for a window)


class H2ServerConnection(asyncio.Protocol):
    """One client connection; subclasses implement on_request."""

    max_concurrent_streams = 1000
    max_header_list_size = 65_536

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._preface = False
        self._out = bytearray()
        self._receiving = False
        self._decoder = Decoder()
        self._streams: dict[int, _Stream] = {}
        self._blocked: set[int] = set()  # streams with a body waiting for a window
        self._last_stream = 0
        self._continuing: tuple[int, bytearray, int] | None = None  # stream, block, END_STREAM
        self._send_window = DEFAULT_WINDOW  # the client's connection window for our DATA
        self._initial_send_window = DEFAULT_WINDOW
        self._max_send_frame = DEFAULT_FRAME_SIZE
        self._recv_window = DEFAULT_WINDOW + (CONNECTION_WINDOW - DEFAULT_WINDOW)
        self._going_away = False
        self._handlers = {
            DATA: self._on_data, HEADERS: self._on_headers, PRIORITY: self._on_priority,
            RST_STREAM: self._on_rst_stream, SETTINGS: self._on_settings,
            PUSH_PROMISE: self._on_push_promise, PING: self._on_ping, GOAWAY: self._on_goaway,
            WINDOW_UPDATE: self._on_window_update, CONTINUATION: self._on_continuation,
        }

    # -- what subclasses implement --------------------------------------------------------

    def on_request(self, stream_id: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A complete request arrived; answer it with respond(), now or later."""
        self.respond(stream_id, 501, [], b"")

    def on_open(self) -> None:
        """The connection is up (TLS done)."""

    def on_close(self) -> None:
        """The connection is gone."""

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        settings = b"".join(struct.pack(">HL", k, v) for k, v in (
            (SETTINGS_MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),
            (SETTINGS_MAX_HEADER_LIST_SIZE, self.max_header_list_size),
            (SETTINGS_ENABLE_PUSH, 0),
        ))
        self._out += frame(SETTINGS, 0, 0, settings)
        self._out += frame(WINDOW_UPDATE, 0, 0,
                           struct.pack(">L", CONNECTION_WINDOW - DEFAULT_WINDOW))
        self.on_open()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._streams.clear()
        self._blocked.clear()
        self.on_close()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        self._receiving = True
        try:
            if not self._preface:
                if len(buffer) < len(PREFACE):
                    if not PREFACE.startswith(buffer):
                        raise H2Failure(PROTOCOL_ERROR, "not the HTTP/2 preface")
                    return
                if buffer[:len(PREFACE)] != PREFACE:
                    raise H2Failure(PROTOCOL_ERROR, "not the HTTP/2 preface")
                del buffer[:len(PREFACE)]
                self._preface = True
            self._frames(buffer)
        except H2Failure as e:
            self._goaway(e.code, str(e))
        finally:
            self._receiving = False
            self._flush()

    def _frames(self, buffer: bytearray) -> None:
        pos = 0
        size = len(buffer)
        handlers = self._handlers
        try:
            while size - pos >= 9 and self.transport is not None:
                high, low, kind, flags, stream_id = _HEAD.unpack_from(buffer, pos)
                length = high << 16 | low
                if length > DEFAULT_FRAME_SIZE:  # this side never raises SETTINGS_MAX_FRAME_SIZE
                    raise H2Failure(FRAME_SIZE_ERROR, "a frame above the maximum size")
                end = pos + 9 + length
                if end > size:
                    break
                payload = bytes(buffer[pos + 9:end])
                pos = end
                if self._continuing is not None and kind != CONTINUATION:
                    raise H2Failure(PROTOCOL_ERROR, "a frame inside a header block")
                handler = handlers.get(kind)
                if handler is not None:
                    handler(flags, stream_id & 0x7FFFFFFF, payload)
        finally:
            del buffer[:pos]
        if self._recv_window < CONNECTION_WINDOW // 2:
            self._out += frame(WINDOW_UPDATE, 0, 0,
                               struct.pack(">L", CONNECTION_WINDOW - self._recv_window))
            self._recv_window = CONNECTION_WINDOW

    # -- frames ---------------------------------------------------------------------------

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0 or not stream_id & 1:
            raise H2Failure(PROTOCOL_ERROR, "HEADERS on a stream a client cannot open")
        start, end = 0, len(payload)
        if flags & PADDED:
            if not payload:
                raise H2Failure(FRAME_SIZE_ERROR, "no pad length")
            start, end = 1, end - payload[0]
        if flags & PRIORITY_FLAG:
            start += 5
        if end < start:
            raise H2Failure(PROTOCOL_ERROR, "padding longer than the frame")
        fragment = payload[start:end]
        if flags & END_HEADERS:
            self._header_block(stream_id, fragment, flags & END_STREAM)
        else:
            self._continuing = (stream_id, bytearray(fragment), flags & END_STREAM)

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuing is None or stream_id != self._continuing[0]:
            raise H2Failure(PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
        block = self._continuing[1]
        block += payload
        if len(block) > MAX_HEADER_BLOCK:
            raise H2Failure(ENHANCE_YOUR_CALM, "a header block too large")
        if flags & END_HEADERS:
            end_stream = self._continuing[2]
            self._continuing = None
            self._header_block(stream_id, bytes(block), end_stream)

    def _header_block(self, stream_id: int, block: bytes, end_stream: int) -> None:
        try:  # decoded even for a stream about to be refused: the table must stay in step
            headers = self._decoder.decode(block)
        except HpackError as e:
            raise H2Failure(COMPRESSION_ERROR, str(e)) from e
        stream = self._streams.get(stream_id)
        if stream is not None:  # trailers
            if stream.ended or not end_stream:
                self._reset(stream_id, PROTOCOL_ERROR)
                return
            stream.headers += headers
            self._ended(stream_id, stream)
            return
        if stream_id <= self._last_stream:
            raise H2Failure(STREAM_CLOSED, "HEADERS on a closed stream")
        self._last_stream = stream_id
        if self._going_away:
            return  # after GOAWAY: not processed, the client may retry elsewhere
        if len(self._streams) >= self.max_concurrent_streams:
            self._out += frame(RST_STREAM, 0, stream_id, struct.pack(">L", REFUSED_STREAM))
            return
        stream = self._streams[stream_id] = _Stream(headers, self._initial_send_window)
        if end_stream:
            self._ended(stream_id, stream)

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2Failure(PROTOCOL_ERROR, "DATA on stream 0")
        length = len(payload)
        self._recv_window -= length
        if self._recv_window < 0:
            raise H2Failure(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        stream = self._streams.get(stream_id)
        if stream is None or stream.ended:
            if stream_id > self._last_stream:
                raise H2Failure(PROTOCOL_ERROR, "DATA on an idle stream")
            self._out += frame(RST_STREAM, 0, stream_id, struct.pack(">L", STREAM_CLOSED))
            return
        stream.recv_window -= length
        if stream.recv_window < 0:
            self._reset(stream_id, FLOW_CONTROL_ERROR)
            return
        start, end = 0, length
        if flags & PADDED:
            if not payload or payload[0] >= length:
                raise H2Failure(PROTOCOL_ERROR, "padding longer than the frame")
            start, end = 1, length - payload[0]
        stream.body += payload[start:end]
        if len(stream.body) > MAX_BODY:
            self._reset(stream_id, ENHANCE_YOUR_CALM)
            return
        if flags & END_STREAM:
            self._ended(stream_id, stream)
        elif stream.recv_window < STREAM_WINDOW // 2:
            self._out += frame(WINDOW_UPDATE, 0, stream_id,
                               struct.pack(">L", STREAM_WINDOW - stream.recv_window))
            stream.recv_window = STREAM_WINDOW

    def _on_priority(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2Failure(PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            self._reset(stream_id, FRAME_SIZE_ERROR)

    def _on_rst_stream(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise H2Failure(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise H2Failure(FRAME_SIZE_ERROR, "RST_STREAM is 4 octets")
        if stream_id > self._last_stream:
            raise H2Failure(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
        self._streams.pop(stream_id, None)
        self._blocked.discard(stream_id)

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise H2Failure(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise H2Failure(FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise H2Failure(FRAME_SIZE_ERROR, "SETTINGS is a multiple of 6 octets")
        for offset in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HL", payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2Failure(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                delta = value - self._initial_send_window
                self._initial_send_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise H2Failure(FLOW_CONTROL_ERROR, "a window above 2^31-1")
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= 16_777_215:
                    raise H2Failure(PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self._max_send_frame = value
            elif key == SETTINGS_ENABLE_PUSH and value > 1:
                raise H2Failure(PROTOCOL_ERROR, "ENABLE_PUSH is 0 or 1")
            # HEADER_TABLE_SIZE: the encoder keeps no table; the others limit the client's side
        self._out += frame(SETTINGS, ACK, 0)
        self._send_blocked()

    def _on_push_promise(self, flags: int, stream_id: int, payload: bytes) -> None:
        raise H2Failure(PROTOCOL_ERROR, "a client cannot push")

    def _on_ping(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise H2Failure(PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise H2Failure(FRAME_SIZE_ERROR, "PING is 8 octets")
        if not flags & ACK:
            self._out += frame(PING, ACK, 0, payload)

    def _on_goaway(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise H2Failure(PROTOCOL_ERROR, "GOAWAY on a stream")
        self._going_away = True  # no new streams; the open ones are still answered
        if not self._streams and self.transport is not None:
            self._flush()
            self.transport.close()

    def _on_window_update(self, flags: int, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2Failure(FRAME_SIZE_ERROR, "WINDOW_UPDATE is 4 octets")
        increment = struct.unpack(">L", payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise H2Failure(PROTOCOL_ERROR, "a zero window increment")
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise H2Failure(FLOW_CONTROL_ERROR, "a window above 2^31-1")
        else:
            stream = self._streams.get(stream_id)
            if stream is None:
                if stream_id > self._last_stream:
                    raise H2Failure(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
                return
            if increment == 0:
                self._reset(stream_id, PROTOCOL_ERROR)
                return
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                self._reset(stream_id, FLOW_CONTROL_ERROR)
                return
        self._send_blocked()

    # -- answering ------------------------------------------------------------------------

    def _ended(self, stream_id: int, stream: _Stream) -> None:
        stream.ended = True
        try:
            self.on_request(stream_id, stream.headers, bytes(stream.body))
        except Exception:  # a bug in a fake must not take the connection down
            self.respond(stream_id, 500, [], b"")

    def respond(self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]],
                body: bytes = b"") -> None:
        """Answer a request (dropped when the stream was reset or the connection is gone)."""
        stream = self._streams.get(stream_id)
        if stream is None or not stream.ended or self.transport is None:
            return
        block = encode_response(status, headers)
        limit = self._max_send_frame
        first, rest = block[:limit], block[limit:]
        flags = (0 if body else END_STREAM) | (0 if rest else END_HEADERS)
        self._out += frame(HEADERS, flags, stream_id, first)
        while rest:
            chunk, rest = rest[:limit], rest[limit:]
            self._out += frame(CONTINUATION, 0 if rest else END_HEADERS, stream_id, chunk)
        if body:
            stream.outgoing = body
            self._send_body(stream_id, stream)
        else:
            self._done(stream_id)
        if not self._receiving:
            self._flush()

    def _send_body(self, stream_id: int, stream: _Stream) -> None:
        while stream.outgoing:
            n = min(len(stream.outgoing), stream.send_window, self._send_window,
                    self._max_send_frame)
            if n <= 0:
                self._blocked.add(stream_id)
                return
            chunk, stream.outgoing = stream.outgoing[:n], stream.outgoing[n:]
            stream.send_window -= n
            self._send_window -= n
            self._out += frame(DATA, 0 if stream.outgoing else END_STREAM, stream_id, chunk)
        self._blocked.discard(stream_id)
        self._done(stream_id)

    def _send_blocked(self) -> None:
        for stream_id in list(self._blocked):
            stream = self._streams.get(stream_id)
            if stream is None:
                self._blocked.discard(stream_id)
            elif self._send_window > 0:
                self._send_body(stream_id, stream)

    def _done(self, stream_id: int) -> None:
        del self._streams[stream_id]
        if self._going_away and not self._streams and self.transport is not None:
            self._flush()
            self.transport.close()

    def _reset(self, stream_id: int, code: int) -> None:
        self._streams.pop(stream_id, None)
        self._blocked.discard(stream_id)
        self._out += frame(RST_STREAM, 0, stream_id, struct.pack(">L", code))

    def _goaway(self, code: int, reason: str) -> None:
        self._going_away = True
        self._out += frame(GOAWAY, 0, 0,
                           struct.pack(">LL", self._last_stream, code) + reason.encode()[:256])
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        """Say goodbye (GOAWAY NO_ERROR) and close."""
        if self.transport is not None:
            self._goaway(NO_ERROR, "")

    def _flush(self) -> None:
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(self._out))
        self._out.clear()
