"""Benchmark feeds.cap.parse against plain xml.etree.ElementTree.fromstring on the same bytes.

The valid CAP fixtures (tests/fixtures/cap, all but the XXE sample) are parsed in turn, cycled
up to ``--messages`` parses, several rounds; the medians are compared. The baseline only builds
the element tree, without screening or reading CAP, so the ratio (ours / raw) is the price of
safety plus turning the tree into domain values. A second figure adds ``area_geometry`` for
every area, the shapely work the pipeline does next. Not part of the test suite:

    .venv/bin/python bench/bench_cap.py [--messages 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from feeds import cap

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cap"


def samples() -> list[bytes]:
    """The bytes of every valid CAP fixture (the XXE sample is refused, so it is left out)."""
    return [p.read_bytes() for p in sorted(FIXTURES.glob("*.xml")) if "_xxe_" not in p.name]


def with_geometry(data: bytes) -> object:
    """Parse a message and build the geometry of each of its areas."""
    alert = cap.parse(data)
    return [cap.area_geometry(a) for info in alert.infos for a in info.areas]


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


if __name__ == "__main__":
    main()
