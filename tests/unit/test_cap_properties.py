"""Property tests for feeds.cap: whatever the bytes, the parser returns an alert or a FeedError."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds import cap
from feeds.errors import FeedError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
SAMPLES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.xml"))]
NS12 = "urn:oasis:names:tc:emergency:cap:1.2"
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

HEADER = [
    ("identifier", "id-1"), ("sender", "s@example.org"), ("sent", "2025-07-01T09:00:00+09:00"),
    ("status", "Actual"), ("msgType", "Alert"), ("scope", "Public"),
]
CAP_NAMES = [
    "identifier", "sender", "sent", "status", "msgType", "scope", "references", "note",
    "info", "language", "category", "event", "responseType", "urgency", "severity",
    "certainty", "eventCode", "valueName", "value", "effective", "onset", "expires",
    "headline", "description", "instruction", "parameter", "area", "areaDesc", "polygon",
    "circle", "geocode",
]
DATES = st.from_regex(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([+-][0-9]{2}:[0-9]{2}|Z)?",
    fullmatch=True,
)
TEXTS = st.one_of(
    DATES,
    st.sampled_from([
        "", "Actual", "Alert", "Update", "Public", "Evacuate", "Past", "Very Likely",
        "2025-07-01T09:00:00+09:00", "2025-07-01T09:00:00-00:00", "2025-02-30T25:00:00+99:99",
        "a,b,2025-07-01T09:00:00+09:00", "a,b", "37,140 38,141 38,140 37,140",
        "37,140 38,141", "+41.12,-117.61, 41,-117", "10,179.5 10,-179.5 11,-179.5 11,179.5",
        "65,179.9 30", "-35.3888,147.0598 25.0", "89.99,0 1999", "1e400,5 1,1 2,2 1,1",
        "JMA", "0720100", "072010",
    ]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=40),
    st.lists(
        st.tuples(st.floats(-100, 100), st.floats(-200, 200)), min_size=0, max_size=8
    ).map(lambda ps: " ".join(f"{a},{b}" for a, b in ps)),
)


def check(data: bytes) -> None:
    """Parse ``data``: only a FeedError may escape, and every area's geometry must build."""
    try:
        alert = cap.parse(data)
    except FeedError as exc:
        assert exc.reason
        return
    assert isinstance(alert, cap.CapAlert)
    for info in alert.infos:
        for area in info.areas:
            geometry = cap.area_geometry(area)
            if geometry is not None:
                assert shapely.is_valid(geometry) and not shapely.is_empty(geometry)
                minx, miny, maxx, maxy = shapely.bounds(geometry)
                assert -180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0


def element(name: str, content: str) -> str:
    """One CAP element (its namespace is the root's default one)."""
    return f"<{name}>{content}</{name}>"


SAFE_TEXTS = TEXTS.map(escape)
PAIRS = st.builds(
    lambda name, key, value: element(name, element("valueName", key) + element("value", value)),
    st.sampled_from(["eventCode", "parameter", "geocode"]), SAFE_TEXTS, SAFE_TEXTS,
)
POINTS = st.tuples(st.floats(-90, 90), st.floats(-180, 180)).map(lambda p: f"{p[0]:.4f},{p[1]:.4f}")
RINGS = st.lists(POINTS, min_size=1, max_size=10).map(lambda ps: " ".join([*ps, ps[0]]))
CIRCLES = st.builds(lambda p, r: f"{p} {r:.3f}", POINTS, st.floats(-1, 2500))
AREAS = st.lists(
    st.one_of(
        st.builds(element, st.sampled_from(["polygon", "circle", "areaDesc"]), SAFE_TEXTS),
        st.builds(element, st.just("polygon"), RINGS),
        st.builds(element, st.just("circle"), CIRCLES),
        PAIRS,
    ),
    max_size=5,
).map(lambda parts: element("area", "".join(parts)))
INFOS = st.lists(
    st.one_of(AREAS, PAIRS, st.builds(element, st.sampled_from(CAP_NAMES), SAFE_TEXTS)),
    max_size=8,
).map(lambda parts: element("info", "".join(parts)))


@st.composite
def cap_like(draw: st.DrawFn) -> bytes:
    """A CAP-shaped document: a mostly valid header, then random info, area and shape content."""
    header = []
    for name, value in HEADER:
        # Mostly valid, so that parsing gets past the header into the info blocks.
        roll = draw(st.integers(0, 19))
        if roll < 16:
            header.append(element(name, value))
        elif roll < 19:
            header.append(element(name, escape(draw(DATES if name == "sent" else TEXTS))))
    extra = draw(st.lists(st.one_of(INFOS, st.builds(element, st.sampled_from(
        ["references", "note", "info"]), SAFE_TEXTS)), max_size=3))
    prefix = draw(st.sampled_from(["", "cap:"]))
    body = "".join(header + extra)
    if prefix:
        body = body.replace("<", "<cap:").replace("<cap:/", "</cap:")
    declare = f'xmlns{":cap" if prefix else ""}="{NS12}"'
    return f"<{prefix}alert {declare}>{body}</{prefix}alert>".encode()


@SETTINGS
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_only_raise_feed_errors(data: bytes) -> None:
    """Random bytes either parse into a CapAlert or raise a FeedError subclass, nothing else."""
    check(data)


@SETTINGS
@given(st.lists(st.sampled_from([
    "<alert>", "</alert>", f'<alert xmlns="{NS12}">', "<info>", "</info>", "<polygon>",
    "</polygon>", "<identifier>", "</identifier>", "<!DOCTYPE alert>", "<![CDATA[", "]]>",
    "&amp;", "&lt;", "&x;", "<!-- -->", "<?pi x?>", "x", "37,140", " ", "\n", "\x00", "é",
    '<?xml version="1.0" encoding="Shift_JIS"?>', '<?xml version="1.0"?>', "<a:b>",
]), max_size=30).map(lambda parts: "".join(parts).encode("utf-8")))
def test_xml_ish_text_only_raises_feed_errors(data: bytes) -> None:
    """Fragments of XML syntax glued at random never escape as anything but a FeedError."""
    check(data)


@SETTINGS
@given(cap_like())
def test_cap_shaped_documents_only_raise_feed_errors(data: bytes) -> None:
    """Well-formed CAP-shaped documents with random content parse or raise a FeedError."""
    check(data)


@SETTINGS
@given(
    st.sampled_from(SAMPLES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    st.integers(0, 10_000),
)
def test_mutated_samples_only_raise_feed_errors(
    data: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    """Samples with random bytes replaced and then truncated parse or raise a FeedError."""
    mutated = bytearray(data)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    check(bytes(mutated[: max(cut, len(mutated) // 2)]))


@SETTINGS
@given(
    st.lists(
        st.tuples(st.floats(-90, 90), st.floats(-180, 180)), min_size=3, max_size=12
    ),
    st.sampled_from(["", "+"]),
    st.sampled_from([" ", "\n\t\t", ", "]),
)
def test_random_rings_build_valid_geometry_or_none(
    points: list[tuple[float, float]], sign: str, separator: str
) -> None:
    """Any in-range ring, however tangled or wrapped, gives valid lon/lat geometry or None."""
    text = separator.join(f"{sign}{lat:.6f},{sign}{lon:.6f}" for lat, lon in points)
    check(cap_polygon(text))


def cap_polygon(text: str) -> bytes:
    """A minimal valid CAP message whose one area has the polygon ``text``."""
    return (
        f'<alert xmlns="{NS12}"><identifier>p</identifier><sender>s</sender>'
        "<sent>2025-07-01T09:00:00+09:00</sent><status>Actual</status><msgType>Alert</msgType>"
        f"<scope>Public</scope><info><area><areaDesc>a</areaDesc><polygon>{text}</polygon>"
        "</area></info></alert>"
    ).encode()
