"""Opaque sync cursors: a position in the server's change order, sealed with an HMAC so that a
damaged, forged or foreign cursor is told apart (`CursorUnreadable`; the API answers 410 and
the phone syncs again from the start).

A position is a short tuple of non-negative integers whose meaning the sync layer chooses (a
global change sequence number, or one high-water mark per stream). The cursor is the unpadded
base64url form of::

    format (1 byte, 0x01) | each number as uint64 big-endian | tag (16 bytes)

where tag = HMAC-SHA256(key, format | numbers | len(context) | context)[:16]. The key is a secret
shared by every node and kept across restarts; the context binds the cursor to its holder (the
device id), so one device's cursor is unreadable for another. A new format byte lets a later
server tell its own cursors from old ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from typing import Final

from sheets.errors import CursorUnreadable

FORMAT: Final = 1
TAG_BYTES: Final = 16
MAX_NUMBERS: Final = 8
MAX_NUMBER: Final = 2**63 - 1
MIN_KEY_BYTES: Final = 16
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+\Z")
_MAX_CHARS: Final = (1 + 8 * MAX_NUMBERS + TAG_BYTES) * 4 // 3 + 4

Position = tuple[int, ...]


def encode(position: Position, key: bytes, context: bytes = b"") -> str:
    """The cursor for this position, readable only with the same key and context."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the cursor key must have at least {MIN_KEY_BYTES} bytes")
    if not 1 <= len(position) <= MAX_NUMBERS or not all(
            isinstance(n, int) and 0 <= n <= MAX_NUMBER for n in position):
        raise ValueError(f"a position is 1 to {MAX_NUMBERS} integers in 0..2**63-1")
    body = bytes([FORMAT]) + struct.pack(f">{len(position)}Q", *position)
    raw = body + _tag(key, body, context)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(cursor: str, key: bytes, context: bytes = b"") -> Position:
    """The position in a cursor from `encode`, or `CursorUnreadable`."""
    if len(cursor) > _MAX_CHARS or not _ALPHABET.match(cursor):
        raise CursorUnreadable
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CursorUnreadable from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != cursor:
        raise CursorUnreadable  # stray bits in the last character: not a cursor we wrote
    count, extra = divmod(len(raw) - 1 - TAG_BYTES, 8)
    if raw[:1] != bytes([FORMAT]) or extra or not 1 <= count <= MAX_NUMBERS:
        raise CursorUnreadable
    body, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(key, body, context)):
        raise CursorUnreadable
    position = struct.unpack(f">{count}Q", body[1:])
    if any(n > MAX_NUMBER for n in position):
        raise CursorUnreadable
    return tuple(position)


def _tag(key: bytes, body: bytes, context: bytes) -> bytes:
    message = body + struct.pack(">I", len(context)) + context
    return hmac.new(key, message, hashlib.sha256).digest()[:TAG_BYTES]
