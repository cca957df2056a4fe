"""sheets.cursor: sync cursors round-trip, and a damaged, forged or foreign one is unreadable."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheets import cursor
from sheets.errors import CursorUnreadable

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
DEVICE = b"\x0b\x9a\x3c\x4e\x5d\x6f\x4a\x1b\x8c\x2d\x3e\x4f\x5a\x6b\x7c\x8d"
POSITIONS = st.lists(st.integers(0, cursor.MAX_NUMBER), min_size=1,
                     max_size=cursor.MAX_NUMBERS).map(tuple)


@settings(max_examples=300, deadline=None)
@given(POSITIONS, st.binary(max_size=40))
def test_round_trip(position: tuple[int, ...], context: bytes) -> None:
    """Any position decodes to itself with the same key and context, from URL-safe text."""
    text = cursor.encode(position, KEY, context)
    assert cursor.decode(text, KEY, context) == position
    assert text.isascii() and "=" not in text and "+" not in text and "/" not in text


def test_known_encoding() -> None:
    """Format 1 is the format byte, uint64 big-endian numbers and a 16-byte HMAC-SHA256 tag
    over them, the context's length and the context, in unpadded base64url."""
    body = b"\x01" + (42).to_bytes(8, "big") + (7).to_bytes(8, "big")
    tag = hmac.new(KEY, body + len(DEVICE).to_bytes(4, "big") + DEVICE,
                   hashlib.sha256).digest()[:16]
    expected = base64.urlsafe_b64encode(body + tag).rstrip(b"=").decode()
    assert cursor.encode((42, 7), KEY, DEVICE) == expected
    assert len(expected) == 44


@settings(max_examples=300, deadline=None)
@given(POSITIONS, st.data())
def test_any_changed_character_is_unreadable(position: tuple[int, ...],
                                             data: st.DataObject) -> None:
    """Replacing any one character of a cursor makes it unreadable."""
    text = cursor.encode(position, KEY, DEVICE)
    at = data.draw(st.integers(0, len(text) - 1))
    other = data.draw(st.sampled_from(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.!é\x00"))
    if other == text[at]:
        return
    with pytest.raises(CursorUnreadable):
        cursor.decode(text[:at] + other + text[at + 1:], KEY, DEVICE)


def test_forged_foreign_and_truncated_cursors_are_unreadable() -> None:
    """Another key, another device, a cut, an extension, another format byte, a tag-less body,
    empty or oversized text, and stray bits in the last character are all unreadable."""
    text = cursor.encode((5,), KEY, DEVICE)
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    b64 = (lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())  # noqa: E731
    bad = [
        cursor.encode((5,), OTHER_KEY, DEVICE),
        cursor.encode((5,), KEY, b"another device"),
        text[:-1], text[:-4], text + "A", text + "AAAA",
        b64(b"\x02" + raw[1:]),
        b64(raw[:9]),
        b64(raw + b"\x00" * 8),
        "", "A" * 1000, "not a cursor", "%00",
    ]
    last = text[-1]
    bad.append(text[:-1] + {"A": "B", "Q": "R", "g": "h", "w": "x"}.get(last, "A"))
    for forged in bad:
        if forged == text:
            continue
        with pytest.raises(CursorUnreadable):
            cursor.decode(forged, KEY, DEVICE)


def test_a_number_past_the_bigint_range_is_unreadable_even_when_signed() -> None:
    """A well-signed cursor (leaked key) holding 2**64-1 is refused: it cannot be a position."""
    body = b"\x01" + (2**64 - 1).to_bytes(8, "big")
    tag = hmac.new(KEY, body + b"\x00\x00\x00\x00", hashlib.sha256).digest()[:16]
    with pytest.raises(CursorUnreadable):
        cursor.decode(base64.urlsafe_b64encode(body + tag).rstrip(b"=").decode(), KEY)


@pytest.mark.parametrize(("position", "key"), [
    ((), KEY), ((-1,), KEY), ((2**63,), KEY), (tuple(range(9)), KEY), ((1,), b"short"),
])
def test_encoding_refuses_what_is_not_a_position(position: tuple[int, ...], key: bytes) -> None:
    """Encoding refuses an empty, negative, oversized or too long position, or a short key."""
    with pytest.raises(ValueError):
        cursor.encode(position, key)
