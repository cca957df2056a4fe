"""HPACK (RFC 7541) for the sandbox's HTTP/2 server: a decoder for request header blocks and
an encoder for responses, in as few Python steps per header as the format allows.

The decoder keeps the dynamic table the client's encoder builds (names and values repeated in
every push, like the topic and the provider token, then cost one byte each) and reads Huffman
strings through a table of 16-bit windows that yields up to three symbols a lookup (a device
token's characters have 5- or 6-bit codes). The encoder never indexes: a response is a few
literal headers, and a client may then set any table size.

The static table and the Huffman code are the RFC's, as the hpack package spells them.
"""

from __future__ import annotations

from collections import deque

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

STATIC: tuple[tuple[bytes, bytes], ...] = HeaderTable.STATIC_TABLE
DEFAULT_TABLE_SIZE = 4096
ENTRY_OVERHEAD = 32  # RFC 7541 4.1: an entry's size is its name and value plus 32
_EOS = 256
_WINDOW = 16


class HpackError(Exception):
    """A header block that cannot be decoded (a COMPRESSION_ERROR of the connection)."""


def _tables() -> tuple[list[tuple[int, int] | None], list[tuple[bytes, int] | None],
                       dict[tuple[int, int], int]]:
    """The first symbol of every 16-bit window, the symbols a window holds whole, and the
    codes longer than a window."""
    first: list[tuple[int, int] | None] = [None] * (1 << _WINDOW)
    long_codes: dict[tuple[int, int], int] = {}
    for symbol, (code, length) in enumerate(zip(REQUEST_CODES, REQUEST_CODES_LENGTH,
                                                strict=True)):
        if length > _WINDOW:
            long_codes[(length, code)] = symbol
            continue
        start = code << (_WINDOW - length)
        first[start:start + (1 << (_WINDOW - length))] = (
            [(symbol, length)] * (1 << (_WINDOW - length)))
    mask = (1 << _WINDOW) - 1
    many: list[tuple[bytes, int] | None] = [None] * (1 << _WINDOW)
    for window in range(1 << _WINDOW):
        out = bytearray()
        used = 0
        while used < _WINDOW:
            entry = first[(window << used) & mask]
            if entry is None or entry[1] > _WINDOW - used or entry[0] == _EOS:
                break
            out.append(entry[0])
            used += entry[1]
        if used:
            many[window] = (bytes(out), used)
    return first, many, long_codes


_FIRST, _MANY, _LONG = _tables()


def huffman_decode(data: bytes) -> bytes:
    """The string these Huffman-coded bytes hold; HpackError for a wrong code or padding."""
    nbits = len(data) * 8
    # 32 one-bits after the data: a window near the end always has 16 bits to read.
    value = (int.from_bytes(data, "big") << 32) | 0xFFFFFFFF
    top = nbits + 32 - _WINDOW
    out = bytearray()
    used = 0
    many = _MANY
    while nbits - used >= _WINDOW:
        entry = many[(value >> (top - used)) & 0xFFFF]
        if entry is not None:
            out += entry[0]
            used += entry[1]
        else:
            used += _long_symbol(value, top + _WINDOW - used, nbits - used, out)
    while used < nbits:
        left = nbits - used
        window = (value >> (top - used)) & 0xFFFF
        if left < 8 and window >> (_WINDOW - left) == (1 << left) - 1:
            break  # the padding: the most significant bits of EOS, fewer than 8
        single = _FIRST[window]
        if single is None:
            used += _long_symbol(value, top + _WINDOW - used, left, out)
            continue
        if single[1] > left:
            raise HpackError("a Huffman string ends inside a code")
        out.append(single[0])
        used += single[1]
    return bytes(out)


def _long_symbol(value: int, shift: int, left: int, out: bytearray) -> int:
    """Decode one symbol of a code longer than a window at this position; its length."""
    for length in range(_WINDOW + 1, min(30, left) + 1):
        symbol = _LONG.get((length, (value >> (shift - length)) & ((1 << length) - 1)))
        if symbol is not None:
            if symbol == _EOS:
                raise HpackError("EOS inside a Huffman string")
            out.append(symbol)
            return length
    raise HpackError("no Huffman code matches (or more than 7 bits of padding)")


def _integer(data: bytes, i: int, prefix: int) -> tuple[int, int]:
    """An integer with an N-bit prefix at data[i]; (value, next position)."""
    mask = (1 << prefix) - 1
    value = data[i] & mask
    i += 1
    if value < mask:
        return value, i
    shift = 0
    while True:
        if i >= len(data):
            raise HpackError("a header block ends inside an integer")
        byte = data[i]
        i += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 28:
            raise HpackError("an integer longer than 2^32")


def _string(data: bytes, i: int) -> tuple[bytes, int]:
    huffman = data[i] & 0x80
    length, i = _integer(data, i, 7)
    end = i + length
    if end > len(data):
        raise HpackError("a header block ends inside a string")
    raw = data[i:end]
    return (huffman_decode(raw) if huffman else raw), end


class Decoder:
    """One connection's request header decoder and its dynamic table."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        self._table: deque[tuple[bytes, bytes]] = deque()  # newest first
        self._size = 0
        self._limit = max_table_size  # what this server's SETTINGS allow
        self._max = max_table_size  # what the client's last size update chose

    def decode(self, block: bytes, max_list_size: int = 1 << 20) -> list[tuple[bytes, bytes]]:
        """The header list of one whole header block (HEADERS and its CONTINUATIONs)."""
        out: list[tuple[bytes, bytes]] = []
        i = 0
        n = len(block)
        listed = 0
        try:
            while i < n:
                byte = block[i]
                if byte & 0x80:  # indexed field
                    index, i = _integer(block, i, 7)
                    field = self._entry(index)
                elif byte & 0x40:  # literal with incremental indexing
                    index, i = _integer(block, i, 6)
                    name, i = (self._entry(index)[0], i) if index else _string(block, i)
                    value, i = _string(block, i)
                    field = (name, value)
                    self._add(field)
                elif byte & 0x20:  # dynamic table size update
                    if out:
                        raise HpackError("a table size update after a header field")
                    size, i = _integer(block, i, 5)
                    if size > self._limit:
                        raise HpackError("a table size update above the settings' limit")
                    self._max = size
                    self._evict(0)
                    continue
                else:  # literal without indexing (0000) or never indexed (0001)
                    index, i = _integer(block, i, 4)
                    name, i = (self._entry(index)[0], i) if index else _string(block, i)
                    value, i = _string(block, i)
                    field = (name, value)
                listed += len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
                if listed > max_list_size:
                    raise HpackError("the header list is too large")
                out.append(field)
        except IndexError as e:
            raise HpackError("a header block ends inside a field") from e
        return out

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= len(STATIC):
            return STATIC[index - 1]
        dynamic = index - len(STATIC) - 1
        if index == 0 or dynamic >= len(self._table):
            raise HpackError(f"header index {index} is not in the table")
        return self._table[dynamic]

    def _add(self, field: tuple[bytes, bytes]) -> None:
        size = len(field[0]) + len(field[1]) + ENTRY_OVERHEAD
        if size > self._max:
            self._table.clear()
            self._size = 0
            return
        self._evict(size)
        self._table.appendleft(field)
        self._size += size

    def _evict(self, room: int) -> None:
        while self._table and self._size + room > self._max:
            name, value = self._table.pop()
            self._size -= len(name) + len(value) + ENTRY_OVERHEAD


def _encode_integer(value: int, prefix: int, first: int) -> bytes:
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes((first | value,))
    out = bytearray((first | mask,))
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_STATUS_INDEXED = {b"200": 8, b"204": 9, b"206": 10, b"304": 11, b"400": 12, b"404": 13,
                   b"500": 14}


def encode_response(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A response header block: :status first, then literal fields never added to a table."""
    code = str(status).encode()
    index = _STATUS_INDEXED.get(code)
    # :status is entry 8 of the static table: indexed when the code has an entry of its own
    out = bytearray(_encode_integer(index, 7, 0x80) if index else
                    b"\x08" + _encode_integer(len(code), 7, 0) + code)
    for name, value in headers:
        out += b"\x00" + _encode_integer(len(name), 7, 0) + name.lower()
        out += _encode_integer(len(value), 7, 0) + value
    return bytes(out)
