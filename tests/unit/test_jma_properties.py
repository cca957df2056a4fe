"""Property tests for feeds.jma: any input is a report or a FeedError, never anything else."""

from __future__ import annotations

import re
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import errors, jma

SETTINGS = settings(max_examples=200, deadline=None)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jma"
SAMPLES = tuple(p.read_bytes() for p in sorted(FIXTURES.glob("*.xml")))
# Every leaf element (text only) of the samples: a place to put arbitrary text.
_LEAF = re.compile(rb"<([A-Za-z]+)>([^<]*)</\1>")


def _parse_or_feed_error(data: bytes) -> jma.JmaReport | None:
    try:
        report = jma.parse(data)
    except errors.FeedError as exc:
        assert exc.reason
        return None
    assert report.report_datetime.tzinfo is not None
    assert all(w.area_code.isascii() and w.area_code.isdigit() for w in report.warnings)
    return report


@SETTINGS
@given(st.binary(max_size=4_000))
def test_arbitrary_bytes(data: bytes) -> None:
    """Arbitrary bytes either parse or raise a FeedError with a reason."""
    _parse_or_feed_error(data)


@SETTINGS
@given(st.sampled_from(SAMPLES), st.data())
def test_byte_mutations(sample: bytes, data: st.DataObject) -> None:
    """Samples with bytes deleted, replaced or inserted parse or raise a FeedError."""
    start = data.draw(st.integers(0, len(sample)))
    end = data.draw(st.integers(start, min(len(sample), start + 64)))
    insert = data.draw(st.binary(max_size=16))
    _parse_or_feed_error(sample[:start] + insert + sample[end:])


@SETTINGS
@given(st.sampled_from(SAMPLES), st.data())
def test_text_mutations(sample: bytes, data: st.DataObject) -> None:
    """Any leaf's text replaced by arbitrary (escaped) text gives a report or a FeedError."""
    leaves = list(_LEAF.finditer(sample))
    leaf = data.draw(st.sampled_from(leaves))
    text = data.draw(st.text(max_size=40))
    value = escape(text).encode("utf-8", errors="surrogatepass")
    mutated = sample[:leaf.start(2)] + value + sample[leaf.end(2):]
    _parse_or_feed_error(mutated)


@SETTINGS
@given(st.sampled_from(SAMPLES), st.data())
def test_element_removal(sample: bytes, data: st.DataObject) -> None:
    """Dropping any leaf element gives a report or a FeedError, never a crash."""
    leaf = data.draw(st.sampled_from(list(_LEAF.finditer(sample))))
    _parse_or_feed_error(sample[:leaf.start()] + sample[leaf.end():])


@SETTINGS
@given(st.sampled_from(SAMPLES), st.sampled_from(["取消", "訂正", "遅延"]))
def test_info_type_is_carried(sample: bytes, info_type: str) -> None:
    """Whatever known InfoType a report carries comes out unchanged, its warnings intact."""
    original = jma.parse(sample)
    mutated = re.sub(rb"<InfoType>[^<]*</InfoType>", f"<InfoType>{info_type}</InfoType>".encode(),
                     sample)
    report = jma.parse(mutated)
    assert report.info_type == info_type
    assert report.warnings == original.warnings
