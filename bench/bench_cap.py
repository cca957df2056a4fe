"""Benchmark feeds.cap.parse against plain xml.etree.ElementTree.fromstring on the same bytes.

The valid CAP fixtures (tests/fixtures/cap, all but the XXE sample) are parsed in turn, cycled
up to ``--messages`` parses, several rounds; the medians are compared. The baseline only builds
the element tree, without screening or reading CAP, so the ratio (ours / raw) is the price of
safety plus turning the tree into domain values. A second figure adds ``area_geometry`` for
every area, the shapely work the pipeline does next. Two more shapes, each against
``ET.fromstring`` of its own bytes in the same run: EDXL-DE 2.0 distributions (one or two
messages each; ``edxl.unwrap`` + ``cap.parse`` of every message) and signed messages
(``signatures.verified`` with signxml against one trust anchor + ``cap.parse``), built with the
tests' generators (tests/capgen.py, tests/capsign.py). Not part of the test suite:

    .venv/bin/python bench/bench_cap.py [--messages 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from feeds import cap, edxl, signatures

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "cap"
sys.path.insert(0, str(ROOT))
from tests import capgen, capsign  # noqa: E402  (the tests' message generators)

LIMIT = 5_000_000


def samples() -> list[bytes]:
    """The bytes of every valid CAP fixture (the XXE sample is refused, so it is left out)."""
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*.xml")) if "_xxe_" not in p.name]


def with_geometry(data: bytes) -> object:
    """Parse a message and build the geometry of each of its areas."""
    alert = cap.parse(data)
    return [cap.area_geometry(a) for info in alert.infos for a in info.areas]


def distributions(count: int = 20) -> list[bytes]:
    """EDXL-DE 2.0 distributions of generated Fukushima alerts, one or two messages each."""
    return [capsign.edxl(*(capgen.message(f"d{i}-{j}") for j in range(1 + i % 2)),
                         distribution_id=f"d{i}") for i in range(count)]


def unwrapped(data: bytes) -> object:
    """Unwrap a distribution and parse each of its messages."""
    found = edxl.unwrap(data, max_bytes=LIMIT)
    assert found is not None
    return [cap.parse(a) for a in found.alerts]


def signed(count: int = 20) -> list[bytes]:
    """Generated Fukushima alerts with enveloped XML signatures by one key."""
    return [capsign.sign(capgen.message(f"s{i}")) for i in range(count)]


def verified(data: bytes) -> object:
    """Verify a signed message against the trust anchor, then parse what was signed."""
    return cap.parse(signatures.verified(data, ANCHORS, max_bytes=LIMIT))


ANCHORS = [capsign.signer().cert_pem]


def timed(parse: Callable[[bytes], object], docs: list[bytes], messages: int) -> float:
    """Seconds to run ``parse`` over ``messages`` documents, cycling through ``docs``."""
    count = len(docs)
    start = time.perf_counter()
    for i in range(messages):
        parse(docs[i % count])
    return time.perf_counter() - start


def median_time(
    parse: Callable[[bytes], object], docs: list[bytes], messages: int, rounds: int
) -> float:
    """The median of ``rounds`` timings, after one untimed warm-up pass over the documents."""
    for doc in docs:
        parse(doc)
    return statistics.median(timed(parse, docs, messages) for _ in range(rounds))


def main() -> None:
    """Time both parsers on the fixtures and print throughput and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    docs = samples()
    size = sum(len(d) for d in docs) / len(docs)
    raw_s = median_time(ET.fromstring, docs, args.messages, args.rounds)
    ours_s = median_time(cap.parse, docs, args.messages, args.rounds)
    geo_messages = max(args.messages // 10, len(docs))
    geo_s = median_time(with_geometry, docs, geo_messages, args.rounds) * (
        args.messages / geo_messages
    )
    print(f"samples               {len(docs)} CAP messages, {size:,.0f} bytes on average")
    print(f"parses per round      {args.messages:,} (median of {args.rounds} rounds)")
    print(f"baseline ET.fromstring {args.messages / raw_s:12,.0f} msgs/s")
    print(f"cap.parse             {args.messages / ours_s:12,.0f} msgs/s")
    print(f"  ratio ours/raw time {ours_s / raw_s:12.2f} x")
    print(f"cap.parse + geometry  {args.messages / geo_s:12,.0f} msgs/s")
    print(f"  ratio ours/raw time {geo_s / raw_s:12.2f} x")
    for label, shaped, ours in (("EDXL-DE 2.0 unwrapped", distributions(), unwrapped),
                                ("signed, verified", signed(), verified)):
        count = max(args.messages // 10, len(shaped))
        base_s = median_time(ET.fromstring, shaped, count, args.rounds)
        shape_s = median_time(ours, shaped, count, args.rounds)
        mean = sum(len(d) for d in shaped) / len(shaped)
        print(f"{label:21} {count / shape_s:12,.0f} docs/s ({len(shaped)} documents, "
              f"{mean:,.0f} bytes on average)")
        print(f"  baseline ET.fromstring {count / base_s:9,.0f} docs/s")
        print(f"  ratio ours/raw time {shape_s / base_s:12.2f} x")


if __name__ == "__main__":
    main()
