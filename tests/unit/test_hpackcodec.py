"""The sandbox's HPACK decoder and response encoder against the hpack package (RFC 7541)."""

from __future__ import annotations

import random

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from alertd.sandbox.hpackcodec import Decoder, HpackError, encode_response, huffman_decode

HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def _random_value(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # any octet, long codes included
        return bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
    if kind == 1:  # a device token
        return rng.randbytes(32).hex().encode()
    if kind == 2:
        return b"/3/device/" + rng.randbytes(rng.randrange(1, 40)).hex().encode()
    return rng.choice([b"POST", b"https", b"10", b"alert", b"", b"application/json"])


def test_huffman_round_trips_every_octet_and_length() -> None:
    rng = random.Random(7)
    for n in range(0, 200):
        data = bytes(rng.randrange(256) for _ in range(n))
        assert huffman_decode(HUFFMAN.encode(data)) == data
    every = bytes(range(256)) * 3
    assert huffman_decode(HUFFMAN.encode(every)) == every


@pytest.mark.parametrize("raw, why", [
    (b"\xff\xff\xff\xff", "EOS or more than 7 bits of padding"),
    (b"\x00\x00", "padding of zeros"),
    (HUFFMAN.encode(b"abc") + b"\xff", "a whole octet of padding"),
])
def test_wrong_huffman_strings_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(HpackError):
        huffman_decode(raw)


def test_decoder_follows_the_encoders_dynamic_table_across_blocks() -> None:
    rng = random.Random(11)
    encoder = hpack.Encoder()
    decoder = Decoder()
    for i in range(600):
        if i % 97 == 50:  # the encoder shrinks, then grows its table: size updates
            encoder.header_table_size = rng.choice([0, 256, 4096])
        fields = [(b":method", b"POST"), (b":path", _random_value(rng))]
        fields += [(f"x-{rng.randrange(30)}".encode(), _random_value(rng))
                   for _ in range(rng.randrange(6))]
        block = encoder.encode(fields, huffman=rng.random() < 0.7)
        assert decoder.decode(block) == fields


def test_never_indexed_and_sensitive_fields_decode() -> None:
    encoder = hpack.Encoder()
    fields = [hpack.NeverIndexedHeaderTuple(b"authorization", b"bearer abc"),
              (b"apns-topic", b"jp.example")]
    assert Decoder().decode(encoder.encode(fields)) == [(b"authorization", b"bearer abc"),
                                                         (b"apns-topic", b"jp.example")]


@pytest.mark.parametrize("block", [
    b"\x80",  # index 0
    b"\xff\x00",  # index 127 + 0: past the static table, empty dynamic table
    b"\x40\x85ab",  # a string longer than the block
    b"\x3f\xe2\x1f",  # a table size update to 4097, above the 4096 allowed
    b"\x82\x20",  # a size update after a field
    b"\xff\xff\xff\xff\xff\xff\x01",  # an integer past 2^32
    b"\x41",  # a block that ends inside a field
])
def test_broken_blocks_are_refused(block: bytes) -> None:
    with pytest.raises(HpackError):
        Decoder().decode(block)


def test_a_header_list_beyond_the_limit_is_refused() -> None:
    block = hpack.Encoder().encode([(b"x-big", b"v" * 2000)])
    with pytest.raises(HpackError, match="too large"):
        Decoder().decode(block, max_list_size=1000)


@pytest.mark.parametrize("status", [200, 204, 400, 403, 404, 410, 413, 429, 500, 503])
def test_responses_decode_with_the_reference_decoder(status: int) -> None:
    headers = [(b"apns-id", b"0C1E8A1B-0000-4000-8000-000000000000"),
               (b"content-type", b"application/json"), (b"x-long", b"y" * 300)]
    decoded = hpack.Decoder().decode(encode_response(status, headers), raw=True)
    assert decoded == [(b":status", str(status).encode()), *headers]
