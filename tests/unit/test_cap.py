"""Tests for feeds.cap: the real-world CAP samples, repairs, refusals and area geometry."""

from __future__ import annotations

import builtins
import io
import math
import os
import socket
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely

from feeds import cap
from feeds.errors import FeedError, InvalidMessage, MalformedXml, TooLarge, UnsafeXml
from geo import areas

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
NS12 = "urn:oasis:names:tc:emergency:cap:1.2"
VALID = ["01", "02", "03", "04", "06", "07", "08"]


def sample(prefix: str) -> bytes:
    """The bytes of the fixture whose name starts with ``prefix``."""
    (path,) = FIXTURES.glob(f"{prefix}_*.xml")
    return path.read_bytes()


def message(info: str = "", **header: str) -> bytes:
    """A minimal CAP 1.2 message; ``header`` overrides (or, with "", removes) header elements."""
    fields = {
        "identifier": "KEN-2025-0001",
        "sender": "bousai@pref.fukushima.lg.jp",
        "sent": "2025-07-01T09:00:00+09:00",
        "status": "Actual",
        "msgType": "Alert",
        "scope": "Public",
    }
    fields.update(header)
    body = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if v != "")
    return f'<alert xmlns="{NS12}">{body}{info}</alert>'.encode()


def area_message(*shapes: str) -> bytes:
    """A CAP 1.2 message with one info block whose one area holds the given shape elements."""
    return message(f"<info><event>test</event><area><areaDesc>a</areaDesc>{''.join(shapes)}"
                   "</area></info>")


# sample prefix: CAP version, key (sender, identifier), number of <info> blocks
SAMPLES = {
    "01": ("1.2", ("cap@ec.gc.ca", "2.49.0.1.124.6bddbc91.2012"), 2),
    "02": ("1.2", ("webmaster@rfs.nsw.gov.au", "tag:www.rfs.nsw.gov.au2011-10-06:40184"), 2),
    "03": ("1.1", ("w-nws.webmaster@noaa.gov",
                   "NOAA-NWS-ALERTS-MT20100830100700TFXFlashFloodWatchTFX20100830180000MT"), 1),
    "04": ("1.1", ("w-nws.webmaster@noaa.gov",
                   "NOAA-NWS-ALERTS-NV20110710035200FloodWarning20110812031500NV.LKNFLWLKN."
                   "b246748c7bbfa7c65ae9b960569510dd"), 1),
    "06": ("1.2", ("ims.gov.il", "2.49.0.0.376.0.250306145512.48636"), 2),
    "07": ("1.2", ("meteo@smg.gov.mo", "SMG-Weather_MS_2025_006_03"), 3),
    "08": ("1.2", ("web@mecom.ru", "2.49.0.1.643.0.20250301.222516.0086037.00.RU"), 1),
}


@pytest.mark.parametrize("prefix", VALID)
def test_every_valid_sample_parses(prefix: str) -> None:
    """Each real-world sample except the attack parses into an alert with its version, key
    (sender, identifier) and info blocks."""
    alert = cap.parse(sample(prefix))
    assert (alert.version, alert.key, len(alert.infos)) == SAMPLES[prefix]
    assert alert.sent.utcoffset() is not None


def test_sample_01_update_with_references_and_two_languages() -> None:
    """Sample 01: an Update naming two earlier messages, en-CA and fr-CA, polygons in lon,lat."""
    alert = cap.parse(sample("01"))
    assert alert.key == ("cap@ec.gc.ca", "2.49.0.1.124.6bddbc91.2012")
    assert alert.msg_type == "Update" and alert.status == "Actual" and alert.scope == "Public"
    assert alert.sent == datetime(2012, 5, 2, 23, 21, 4, tzinfo=UTC)
    assert alert.sent.utcoffset() == timedelta(0)
    assert [r.key for r in alert.references] == [
        ("cap@ec.gc.ca", "2.49.0.1.124.a3f342a4.2012"),
        ("cap@ec.gc.ca", "2.49.0.1.124.60f31a3a.2012"),
    ]
    assert alert.references[1].sent == "2012-05-02T21:55:21-00:00"
    assert [i.language for i in alert.infos] == ["en-CA", "fr-CA"]
    assert alert.note is None  # <note/> is empty: absent
    info = alert.infos[0]
    assert [len(a.polygons) for a in info.areas] == [1, 1]
    assert [len(a.geocodes) for a in info.areas] == [10, 3]
    ring = info.areas[0].polygons[0]
    assert ring[0] == (-82.9314, 42.3481) and ring[0] == ring[-1] and len(ring) == 17
    assert info.expires == datetime(2012, 5, 3, 0, 20, tzinfo=UTC)
    assert len(info.parameters) == 5 and info.response_types == ("AllClear",)
    assert alert.warnings == ()


def test_sample_02_prefixed_namespace_circle_and_same_language_twice() -> None:
    """Sample 02: the cap: prefix is matched by URI; two en-AU blocks; the circle is read."""
    alert = cap.parse(sample("02"))
    assert alert.identifier == "tag:www.rfs.nsw.gov.au2011-10-06:40184"
    assert alert.sender == "webmaster@rfs.nsw.gov.au"
    assert alert.sent.utcoffset() == timedelta(hours=10)
    assert [i.language for i in alert.infos] == ["en-AU", "en-AU"]
    info = alert.infos[0]
    assert info.categories == ("Fire", "Met") and info.response_types == ("Evacuate",)
    assert info.areas[0].circles == (cap.Circle(lat=-35.3888, lon=147.0598, radius_km=25.0),)
    assert info.areas[0].polygons == ()
    assert ("AllocatedResources", "") not in info.parameters
    assert [k for k, _ in info.parameters][:2] == ["FuelType", "Location"]


def test_sample_02_escaped_html_is_kept_as_text() -> None:
    """Escaped HTML in a description comes out as the literal text, neither parsed nor dropped."""
    description = cap.parse(sample("02")).infos[0].description
    assert description is not None
    assert "Not Applicable<br />LOCATION: 12 Cox Street" in description
    assert "&lt;" not in description


def test_sample_03_cap11_geocode_only_defaults_to_en_us() -> None:
    """Sample 03: CAP 1.1, no language (en-US), an area made only of FIPS6/UGC geocodes."""
    alert = cap.parse(sample("03"))
    assert alert.version == "1.1"
    assert alert.identifier.startswith("NOAA-NWS-ALERTS-MT20100830100700")
    assert alert.msg_type == "Alert" and alert.references == ()
    assert alert.note is not None and alert.note.startswith("Alert for Central")
    (info,) = alert.infos
    assert info.language == "en-US"
    (area,) = info.areas
    assert area.polygons == () and area.circles == ()
    assert area.geocodes == (("FIPS6", "030049"), ("UGC", "MTZ014"))
    assert cap.area_geometry(area) is None


def test_sample_04_sloppy_polygon_and_empty_enumerations() -> None:
    """Sample 04: empty references and enums are absent; + signs and trailing commas are read."""
    alert = cap.parse(sample("04"))
    assert alert.references == ()
    (info,) = alert.infos
    assert (info.urgency, info.severity, info.certainty) == (None, None, None)
    assert info.event_codes == ()  # SAME with an empty value
    (area,) = info.areas
    assert len(area.polygons) == 1  # the empty second <polygon> is ignored
    ring = area.polygons[0]
    assert len(ring) == 9 and ring[0] == (-117.61, 41.12) and ring[6] == (-118.09, 40.85)
    assert alert.warnings == ()


def test_sample_06_geocode_only_areas_in_english_and_hebrew() -> None:
    """Sample 06: en-GB and he-IL; every area's polygon is empty so only EMMA_ID codes remain."""
    alert = cap.parse(sample("06"))
    assert [i.language for i in alert.infos] == ["en-GB", "he-IL"]
    for info in alert.infos:
        assert [a.polygons for a in info.areas] == [(), (), ()]
        assert [a.geocodes[0][0] for a in info.areas] == ["EMMA_ID"] * 3
        assert info.onset is not None and info.effective is not None
        assert info.onset > info.effective
    assert alert.infos[1].headline == "שטפונות בזק"


def test_sample_07_self_reference_no_expires_multiline_polygon() -> None:
    """Sample 07: references its own key, has no expires, and its tabbed polygon is read."""
    alert = cap.parse(sample("07"))
    assert alert.msg_type == "Update"
    assert [r.key for r in alert.references] == [alert.key]
    assert alert.key == ("meteo@smg.gov.mo", "SMG-Weather_MS_2025_006_03")
    assert [i.language for i in alert.infos] == ["zh-mo", "pt-PT", "en-US"]
    for info in alert.infos:
        assert info.expires is None
        assert info.instruction is None  # <instruction></instruction>
        assert info.response_types == ("AllClear",) and info.urgency == "Past"
        ring = info.areas[0].polygons[0]
        assert len(ring) == 63 and ring[0] == (113.5709, 22.0766) and ring[4] == (113.6052, 22.2041)


def test_sample_08_antimeridian_area_covers_chukotka_not_the_globe() -> None:
    """Sample 08: six polygons on both sides of ±180 make Chukotka, not a band round the Earth."""
    (area,) = cap.parse(sample("08")).infos[0].areas
    assert len(area.polygons) == 6
    geometry = cap.area_geometry(area)
    assert geometry is not None and shapely.is_valid(geometry)
    assert 600_000 < areas.area_km2(geometry) < 800_000  # Chukotka is about 738,000 km²
    lon, lat = [170.0, -175.0, -179.99, 179.99], [67.0, 66.0, 71.2, 71.2]
    assert shapely.intersects_xy(geometry, lon, lat).all()
    assert not shapely.intersects_xy(geometry, 0.0, 65.0)


def test_polygon_crossing_the_antimeridian_is_split() -> None:
    """A ring stepping from +179.5 to -179.5 covers the thin strip across ±180, nothing else."""
    ring = "10,179.5 10,-179.5 11,-179.5 11,179.5 10,179.5"
    alert = cap.parse(area_message(f"<polygon>{ring}</polygon>"))
    geometry = cap.area_geometry(alert.infos[0].areas[0])
    assert geometry is not None
    assert shapely.intersects_xy(geometry, [179.9, -179.9], [10.5, 10.5]).all()
    assert not shapely.intersects_xy(geometry, 0.0, 10.5)
    assert math.isclose(shapely.area(geometry), 1.0, rel_tol=1e-9)


def test_longitudes_a_little_past_180_are_normalised_not_dropped() -> None:
    """A Chukotka-like ring drawn to 180.3°E (as global feeds do) is read as reaching
    179.7°W: kept with a warning, its strip covering both sides of the antimeridian."""
    ring = "66.0,179.2 66.0,180.3 67.0,180.3 67.0,179.2 66.0,179.2"
    alert = cap.parse(area_message(f"<polygon>{ring}</polygon>"))
    (area,) = alert.infos[0].areas
    assert area.polygons[0][1] == (-179.7, 66.0)
    assert alert.warnings == ("info 1 area 1 polygon 1: longitudes past ±180 were read as "
                              "across the antimeridian",)
    geometry = cap.area_geometry(area)
    assert geometry is not None and shapely.is_valid(geometry)
    assert shapely.intersects_xy(geometry, [179.5, -179.8], [66.5, 66.5]).all()
    assert not shapely.intersects_xy(geometry, [0.0, -179.6], [66.5, 66.5]).any()
    assert math.isclose(shapely.area(geometry), 1.1, rel_tol=1e-9)


def test_west_of_minus_180_is_normalised_too() -> None:
    """-180.4 is read as 179.6, and a ring lying wholly past -180 lands east of +179.5."""
    ring = "-16.5,-180.4 -16.5,-180.1 -16.0,-180.1 -16.0,-180.4 -16.5,-180.4"
    alert = cap.parse(area_message(f"<polygon>{ring}</polygon>"))
    geometry = cap.area_geometry(alert.infos[0].areas[0])
    assert geometry is not None
    assert shapely.intersects_xy(geometry, 179.75, -16.25)
    assert math.isclose(shapely.area(geometry), 0.15, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("polygon", "bad"),
    [
        ("37,140 38;141 38,140 37,140", "'38;141'"),
        ("37,140 38,nan 38,140 37,140", "'38,nan'"),
        ("37.70,140.40 37.70,140.55 37.80,140.55° 37.70,140.40", "'37.80,140.55°'"),
        ("37.70,140.40 37.70,140.55 37.80,140.55 37.80,140.40 37.70,140.40 x", "'x'"),
        ("37.7,140.4,0 37.7,140.5,0 37.8,140.5,0 37.7,140.4,0", "'37.7,140.4,0'"),
    ],
)
def test_polygon_with_stray_characters_is_refused_with_the_reason(polygon: str, bad: str) -> None:
    """A polygon that is not a list of lat,lon pairs fails the message, naming the bad text,
    even beside a good polygon: part of an evacuation area is never silently left out."""
    good = "<polygon>37,140 37,141 38,141 37,140</polygon>"
    with pytest.raises(InvalidMessage) as caught:
        cap.parse(area_message(good, f"<polygon>{polygon}</polygon>"))
    assert caught.value.reason == (
        f"info 1 area 1 polygon 2: {bad} is not a lat,lon pair; a polygon with stray "
        "characters is refused rather than read as part of the area")


def test_circle_is_built_on_the_sphere() -> None:
    """A 25 km circle at 60°N covers all points 25 km away, and is about π·25² km²."""
    alert = cap.parse(area_message("<circle>60.0,140.0 25</circle>"))
    geometry = cap.area_geometry(alert.infos[0].areas[0])
    assert geometry is not None
    assert math.isclose(areas.area_km2(geometry), math.pi * 25**2, rel_tol=0.01)
    for bearing in range(0, 360, 15):
        lon, lat = areas.destination(140.0, 60.0, float(bearing), 24_990.0)
        assert shapely.intersects_xy(geometry, float(lon), float(lat))
    # In degrees it is an ellipse: twice as wide in longitude as in latitude at 60°N.
    minx, miny, maxx, maxy = shapely.bounds(geometry)
    assert math.isclose((maxx - minx) / (maxy - miny), 2.0, rel_tol=0.01)


def test_circle_across_the_antimeridian_wraps() -> None:
    """A circle centred at 179.9°E covers points just west of -180 too, and keeps its size."""
    alert = cap.parse(area_message("<circle>65,179.9 30</circle>"))
    geometry = cap.area_geometry(alert.infos[0].areas[0])
    assert geometry is not None
    assert shapely.intersects_xy(geometry, [179.95, -179.8], [65.0, 65.0]).all()
    assert not shapely.intersects_xy(geometry, 0.0, 65.0)
    assert math.isclose(areas.area_km2(geometry), math.pi * 30**2, rel_tol=0.01)


def test_self_intersecting_polygon_is_repaired() -> None:
    """A bow-tie ring becomes a valid geometry covering both of its lobes."""
    alert = cap.parse(area_message("<polygon>37,140 38,141 38,140 37,141 37,140</polygon>"))
    geometry = cap.area_geometry(alert.infos[0].areas[0])
    assert geometry is not None and shapely.is_valid(geometry)
    assert shapely.intersects_xy(geometry, [140.5, 140.5], [37.1, 37.9]).all()


def test_open_ring_is_closed_with_a_warning() -> None:
    """An unclosed ring gets its first position appended, and the repair is reported."""
    alert = cap.parse(area_message("<polygon>37,140 37,141 38,141</polygon>"))
    (ring,) = alert.infos[0].areas[0].polygons
    assert ring == ((140.0, 37.0), (141.0, 37.0), (141.0, 38.0), (140.0, 37.0))
    assert alert.warnings == ("info 1 area 1 polygon 1: was not closed; closed it",)


@pytest.mark.parametrize(
    ("shape", "why"),
    [
        ("<polygon>37,140 38,141 37,140</polygon>", "4 are needed"),
        ("<polygon>37,140 38,141 138,141 37,140</polygon>", "not a lat,lon pair"),
        ("<polygon>37,140 38,182 38,140 37,140</polygon>", "not a lat,lon pair"),
        ("<circle>37,140</circle>", "is not 'lat,lon radius_km'"),
        ("<circle>37,140 0</circle>", "radius 0 km"),
        ("<circle>89.9,140 50</circle>", "reaches a pole"),
    ],
)
def test_unusable_shape_is_dropped_not_the_message(shape: str, why: str) -> None:
    """A bad polygon or circle is dropped with a warning while its neighbours and message stay."""
    good = "<polygon>37,140 37,141 38,141 37,140</polygon>"
    alert = cap.parse(area_message(good, shape))
    (area,) = alert.infos[0].areas
    assert len(area.polygons) + len(area.circles) == 1
    assert len(alert.warnings) == 1 and why in alert.warnings[0]
    assert cap.area_geometry(area) is not None


def test_lenient_enumerations() -> None:
    """Enums match case-insensitively, 'Very Likely' reads as Likely, unknown values are noted."""
    info = ("<info><category>met</category><category>Weather</category><event>x</event>"
            "<urgency>Soon</urgency><severity>SEVERE</severity><certainty>Very Likely</certainty>"
            "</info>")
    alert = cap.parse(message(info, status="actual", msgType="ALERT"))
    assert (alert.status, alert.msg_type) == ("Actual", "Alert")
    (parsed,) = alert.infos
    assert parsed.categories == ("Met",) and parsed.urgency is None
    assert (parsed.severity, parsed.certainty) == ("Severe", "Likely")
    assert len(alert.warnings) == 2 and "'Weather'" in alert.warnings[0]


def test_offsets_are_kept_and_z_means_utc() -> None:
    """Date-times keep their offset; 'Z' and '-00:00' are both UTC."""
    alert = cap.parse(message("<info><expires>2025-07-01T12:00:00Z</expires></info>"))
    assert alert.sent == datetime(2025, 7, 1, tzinfo=UTC)
    assert alert.sent.utcoffset() == timedelta(hours=9)
    assert alert.infos[0].expires == datetime(2025, 7, 1, 12, tzinfo=UTC)


def test_shift_jis_message_is_transcoded() -> None:
    """A message declared and encoded as Shift_JIS is read with its Japanese text intact."""
    text = ('<?xml version="1.0" encoding="Shift_JIS"?>'
            + message("<info><language>ja-JP</language><headline>福島市に避難指示</headline>"
                      "</info>").decode())
    alert = cap.parse(text.encode("shift_jis"))
    assert alert.infos[0].headline == "福島市に避難指示"


def test_cp932_characters_in_a_shift_jis_message_are_read() -> None:
    """Shift_JIS as Japanese systems write it (cp932: ①, ㈱) decodes, and so does Windows-31J."""
    for label in ("Shift_JIS", "Windows-31J"):
        text = (f'<?xml version="1.0" encoding="{label}"?>'
                + message("<info><headline>①避難指示 ㈱福島</headline></info>").decode())
        assert cap.parse(text.encode("cp932")).infos[0].headline == "①避難指示 ㈱福島"


def test_transcoding_does_not_bypass_the_doctype_refusal() -> None:
    """A Shift_JIS document with a DOCTYPE is refused just like a UTF-8 one."""
    text = ('<?xml version="1.0" encoding="Shift_JIS"?><!DOCTYPE alert [<!ENTITY a "避難">]>'
            + message("<info><headline>&a;</headline></info>").decode())
    with pytest.raises(UnsafeXml, match="DOCTYPE"):
        cap.parse(text.encode("shift_jis"))


def test_undecodable_declared_encoding_is_malformed() -> None:
    """Bytes that are not valid in the declared encoding, or an unknown encoding, are refused."""
    with pytest.raises(MalformedXml, match="cannot be decoded as 'EUC-JP'"):
        bad = message("<note>X</note>").replace(b"X", b"\xff\xff")
        cap.parse(b'<?xml version="1.0" encoding="EUC-JP"?>' + bad)
    with pytest.raises(MalformedXml, match="unknown encoding 'x-klingon'"):
        cap.parse(b'<?xml version="1.0" encoding="x-klingon"?>' + message())


# --- refusals ---------------------------------------------------------------------------------


def test_xxe_sample_is_refused_as_unsafe() -> None:
    """Sample 05 (DOCTYPE, external entities, XInclude) is refused because of its DOCTYPE."""
    with pytest.raises(UnsafeXml) as caught:
        cap.parse(sample("05"))
    assert caught.value.reason == "DOCTYPE is not allowed (found <!DOCTYPE alert ...>)"


def test_xxe_sample_opens_no_file_and_no_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusing sample 05 never opens a file, a URL or a socket."""
    calls: list[str] = []

    def spy(name: str) -> Callable[..., object]:
        def record(*args: object, **kwargs: object) -> object:
            calls.append(name)
            raise AssertionError(f"{name} called while parsing")
        return record

    data = sample("05")
    with monkeypatch.context() as patch:
        patch.setattr(builtins, "open", spy("open"))
        patch.setattr(io, "open", spy("io.open"))
        patch.setattr(os, "open", spy("os.open"))
        patch.setattr(urllib.request, "urlopen", spy("urlopen"))
        patch.setattr(socket.socket, "connect", spy("connect"))
        patch.setattr(socket, "create_connection", spy("create_connection"))
        with pytest.raises(UnsafeXml):
            cap.parse(data)
    assert calls == []


def test_external_entities_to_a_live_server_are_never_fetched(tmp_path: Path) -> None:
    """A document whose DTD and entities point at a listening server and a file fetches neither."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        doc = (f'<!DOCTYPE alert SYSTEM "{url}/a.dtd" [<!ENTITY x SYSTEM "{url}/x">'
               f'<!ENTITY s SYSTEM "file://{secret}">]>').encode() + message(
                   "<info><headline>&x;&s;</headline></info>")
        with pytest.raises(UnsafeXml) as caught:
            cap.parse(doc)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody ever connected
    assert "TOP-SECRET" not in caught.value.reason


def test_billion_laughs_is_refused() -> None:
    """An entity-expansion bomb is refused at its DOCTYPE, before any expansion."""
    entities = "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    )
    doc = f'<!DOCTYPE alert [<!ENTITY l0 "lol">{entities}]>'.encode() + message(
        "<info><headline>&l9;</headline></info>")
    with pytest.raises(UnsafeXml, match="DOCTYPE is not allowed"):
        cap.parse(doc)


def test_xinclude_is_refused() -> None:
    """A document declaring the XInclude namespace is refused even without a DTD."""
    include = ('<x xmlns:xi="http://www.w3.org/2001/XInclude">'
               '<xi:include href="file:///etc/passwd" parse="text"/></x>')
    with pytest.raises(UnsafeXml, match="XInclude is not allowed"):
        cap.parse(message(include))


def test_oversized_input_is_refused_before_parsing() -> None:
    """Input over max_bytes is TooLarge, with both sizes in the reason."""
    data = sample("01")
    with pytest.raises(TooLarge, match=f"{len(data)} bytes.*limit of 1000"):
        cap.parse(data, max_bytes=1000)
    assert cap.parse(data, max_bytes=len(data)).identifier


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        (b"", MalformedXml, "the document is empty"),
        (b" \n ", MalformedXml, "the document is empty"),
        (b"\x00\xff\x17garbage", MalformedXml,
         "not well-formed XML: not well-formed (invalid token): line 1, column 1"),
        (b"<alert><identifier>x</alert>", MalformedXml,
         "not well-formed XML: mismatched tag: line 1, column 22"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom"/>', InvalidMessage,
         "not a CAP 1.1/1.2 alert: the root element is <feed> in namespace"
         " 'http://www.w3.org/2005/Atom'"),
        (b"<alert><identifier>x</identifier></alert>", InvalidMessage,
         "not a CAP 1.1/1.2 alert: the root element is <alert> without a namespace"),
        (b'<alert xmlns="http://www.incident.com/cap/1.0"/>', InvalidMessage,
         "CAP 1.0 is not supported: send CAP 1.1 or 1.2"),
        (message(identifier=""), InvalidMessage,
         "required element <identifier> is missing or empty"),
        (message(sent=""), InvalidMessage, "required element <sent> is missing or empty"),
        (message(status="Real"), InvalidMessage,
         "<status> 'Real' is not one of Actual, Exercise, System, Test, Draft"),
        (message(msgType="Alarm"), InvalidMessage,
         "<msgType> 'Alarm' is not one of Alert, Update, Cancel, Ack, Error"),
        (message(scope="Everyone"), InvalidMessage,
         "<scope> 'Everyone' is not one of Public, Restricted, Private"),
        (message(identifier="a b"), InvalidMessage,
         "<identifier> 'a b' must not contain whitespace, commas, '<' or '&'"),
        (message(sender="x,y"), InvalidMessage,
         "<sender> 'x,y' must not contain whitespace, commas, '<' or '&'"),
        (message(sent="2025-07-01T09:00:00"), InvalidMessage,
         "<sent> '2025-07-01T09:00:00' is not a date-time with an offset, like"
         " 2025-04-13T05:52:12+09:00"),
        (message(sent="2025-13-01T09:00:00+09:00"), InvalidMessage,
         "<sent> '2025-13-01T09:00:00+09:00' is not a date-time with an offset, like"
         " 2025-04-13T05:52:12+09:00"),
        (message("<references>a,b,2025-07-01T00:00:00+09:00 a,b</references>"),
         InvalidMessage, "<references> entry 'a,b' is not a sender,identifier,sent triple"),
        (message("<references>a,,c</references>"), InvalidMessage,
         "<references> entry 'a,,c' is not a sender,identifier,sent triple"),
        (message("<identifier>again</identifier>"), InvalidMessage,
         "<identifier> appears 2 times; it must appear once"),
        (message("<info><expires>tomorrow</expires></info>"), InvalidMessage,
         "info 1: <expires> 'tomorrow' is not a date-time with an offset, like"
         " 2025-04-13T05:52:12+09:00"),
    ],
)
def test_refusals_carry_a_typed_error_and_reason(
    data: bytes, error: type[FeedError], reason: str
) -> None:
    """Each kind of bad input raises its own FeedError subclass with a reason saying why."""
    with pytest.raises(error) as caught:
        cap.parse(data)
    assert caught.value.reason == reason


def test_feed_error_default_reason_is_its_docstring() -> None:
    """A FeedError raised without a message uses its class docstring as the reason."""
    assert InvalidMessage().reason == "The message is not a valid alert."
