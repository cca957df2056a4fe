"""Tests for feeds.jma: JMA disaster XML reports, their warnings, and what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from feeds import errors, jma
from feeds.jma import JmaAreaWarning, JmaReport

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jma"
HEAVY_RAIN = FIXTURES / "10_jmaxml_VPWW55_R06_heavyrain_level_warning.xml"
LANDSLIDE = FIXTURES / "11_jmaxml_VXWW50_landslide_alert_lifted.xml"
TSUNAMI_CANCEL = FIXTURES / "12_jmaxml_VTSE41_tsunami_torikeshi_cancel.xml"
JST = timezone(timedelta(hours=9))
MUNICIPAL = "気象警報・注意報（市町村等）"


def _area(report: JmaReport, code: str, warning_type: str | None = None) -> JmaAreaWarning:
    (found,) = [w for w in report.warnings
                if w.area_code == code and warning_type in (None, w.warning_type)]
    return found


def _minimal(*, body: str = "", info_type: str = "発表", status: str = "通常",
             report_dt: str = "2024-07-01T10:00:00+09:00", head_extra: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/">
<Control><Title>気象警報・注意報（Ｈ２７）</Title><DateTime>2024-07-01T01:00:00Z</DateTime>
<Status>{status}</Status><EditorialOffice>福島地方気象台</EditorialOffice>
<PublishingOffice>福島地方気象台</PublishingOffice></Control>
<Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">
<Title>福島県気象警報・注意報</Title><ReportDateTime>{report_dt}</ReportDateTime>
<TargetDateTime>2024-07-01T10:00:00+09:00</TargetDateTime><EventID/>
<InfoType>{info_type}</InfoType><Serial/><InfoKind>気象警報・注意報</InfoKind>{head_extra}
<Headline><Text>中通りでは大雨に警戒して下さい。</Text></Headline></Head>
{body}
</Report>""".encode()


def _body(items: str, warning_type: str = MUNICIPAL) -> str:
    return ('<Body xmlns="http://xml.kishou.go.jp/jmaxml1/body/meteorology1/">'
            f'<Warning type="{warning_type}">{items}</Warning></Body>')


def test_heavy_rain_control_and_head() -> None:
    """Sample 10's Control and Head come out with aware times and the headline text."""
    report = jma.parse(HEAVY_RAIN.read_bytes())
    assert report.title == "島根県大雨警報・注意報"
    assert report.control_title == "気象警報・注意報（Ｒ０６）（大雨）"
    assert report.control_status == "通常" and not report.is_exercise
    assert report.info_type == "発表"
    assert report.info_kind == "気象警報・注意報"
    assert report.report_datetime == datetime(2024, 11, 2, 11, 19, tzinfo=JST)
    assert report.report_datetime.utcoffset() == timedelta(hours=9)
    assert report.target_datetime == datetime(2024, 11, 2, 11, 19, tzinfo=JST)
    assert report.sent == datetime(2024, 11, 2, 2, 19, 27, tzinfo=UTC)
    assert report.event_id is None and report.serial is None
    assert report.publishing_office == "松江地方気象台"
    assert report.headline == "東部、西部では、低い土地の浸水や河川の増水に警戒して下さい。"


def test_heavy_rain_warnings_codes_and_types() -> None:
    """Sample 10 lists 29 area warnings over four types, with 6- and 7-digit codes kept as is."""
    report = jma.parse(HEAVY_RAIN.read_bytes())
    assert len(report.warnings) == 29
    assert {len(w.area_code) for w in report.warnings} == {6, 7}
    assert len({w.warning_type for w in report.warnings}) == 4
    assert _area(report, "320000").area_name == "島根県"
    municipal = [w for w in report.warnings if w.warning_type == MUNICIPAL]
    assert len(municipal) == 19
    assert all(len(w.area_code) == 7 for w in municipal)


def test_heavy_rain_kind_statuses_and_levels() -> None:
    """Kinds keep name, code, status (継続/解除/なし) and the 警戒レベル３相当 as level 3."""
    report = jma.parse(HEAVY_RAIN.read_bytes())
    (matsue,) = _area(report, "3220100").kinds
    assert (matsue.name, matsue.code, matsue.status) == ("レベル３大雨警報", "03", "継続")
    assert matsue.level_equivalent == 3
    (okuizumo,) = _area(report, "3234300").kinds
    assert okuizumo.status == "継続" and okuizumo.level_equivalent == 2
    (okinoshima,) = _area(report, "3252800").kinds
    assert (okinoshima.name, okinoshima.status) == ("レベル２大雨注意報", "解除")
    assert okinoshima.level_equivalent is None
    (ama,) = _area(report, "3252500").kinds
    assert (ama.name, ama.code, ama.status) == ("", "", "発表警報・注意報はなし")
    statuses = {k.status for w in report.warnings for k in w.kinds}
    assert statuses == {"継続", "解除", "発表警報・注意報はなし"}
    prefecture = _area(report, "320000").kinds[0]
    assert prefecture.level_equivalent is None


def test_issued_status_is_kept() -> None:
    """A Kind with Status 発表 comes out as 発表 (sample 10 mutated in memory)."""
    data = HEAVY_RAIN.read_bytes().replace("<Status>継続</Status>".encode(),
                                          "<Status>発表</Status>".encode(), 1)
    report = jma.parse(data)
    assert report.warnings[0].kinds[0].status == "発表"
    assert report.warnings[0].area_code == "320000"


def test_landslide_lifted_for_fukushima_town_in_hokkaido() -> None:
    """Sample 11 lifts 土砂災害警戒情報 for code 0133200 (福島町, Hokkaido), code kept exactly."""
    report = jma.parse(LANDSLIDE.read_bytes())
    assert report.title == "渡島・檜山地方土砂災害警戒情報"
    assert report.event_id == "渡島・檜山地方土砂災害警戒情報" and report.serial == "3"
    assert report.publishing_office == "北海道渡島総合振興局 函館地方気象台"
    assert report.headline.startswith("《全警戒解除》")
    fukushima_town = _area(report, "0133200")
    assert fukushima_town.area_name == "福島町"
    assert fukushima_town.warning_type == "土砂災害警戒情報"
    (kind,) = fukushima_town.kinds
    assert (kind.name, kind.code, kind.status) == ("解除", "1", "解除")
    lifted = sorted(w.area_code for w in report.warnings if w.kinds[0].status == "解除")
    assert lifted == ["0133100", "0133200", "0133300"]
    assert len(report.warnings) == 19
    assert not any(w.area_code.startswith("07") for w in report.warnings)


def test_tsunami_retraction() -> None:
    """Sample 12 (a seismology body) parses its Control/Head: InfoType 取消, no warnings."""
    report = jma.parse(TSUNAMI_CANCEL.read_bytes())
    assert report.info_type == "取消"
    assert report.title == "津波注意報・津波予報"
    assert report.event_id == "20210805103531"
    assert report.headline == "津波注意報を取り消します。"
    assert report.warnings == ()
    assert report.report_datetime == datetime(2021, 8, 5, 12, 56, tzinfo=JST)


def test_exercise_reports_are_flagged() -> None:
    """A 訓練 report parses and says it is an exercise."""
    report = jma.parse(_minimal(status="訓練"))
    assert report.control_status == "訓練" and report.is_exercise


def test_nested_areas_and_several_kinds() -> None:
    """An Item with several Kinds and an Areas list gives each area all the kinds."""
    items = """<Item><Kind><Name>大雨警報</Name><Code>03</Code><Status>発表</Status>
    <Property><Type>土砂災害危険度</Type><Text>警戒レベル3相当</Text></Property>
    <Property><Type>大雨浸水危険度</Type><Text>警戒レベル４相当</Text></Property></Kind>
    <Kind><Name>洪水注意報</Name><Code>18</Code><Status>継続</Status></Kind>
    <Areas><Area><Name>福島市</Name><Code>0720100</Code></Area>
    <Area><Name>郡山市東部</Name><Code>0720301</Code></Area></Areas></Item>"""
    report = jma.parse(_minimal(body=_body(items)))
    assert [w.area_code for w in report.warnings] == ["0720100", "0720301"]
    kinds = report.warnings[1].kinds
    assert [(k.name, k.status, k.level_equivalent) for k in kinds] == [
        ("大雨警報", "発表", 4), ("洪水注意報", "継続", None)]


def test_area_without_code_is_unresolvable() -> None:
    """An area given only by name is refused: areas are never matched by name."""
    items = "<Item><Kind><Status>発表</Status></Kind><Area><Name>福島市</Name></Area></Item>"
    with pytest.raises(errors.UnresolvableArea, match="福島市"):
        jma.parse(_minimal(body=_body(items)))


@pytest.mark.parametrize(("data", "error", "reason"), [
    (b'<?xml version="1.0"?><!DOCTYPE Report [<!ENTITY x "y">]>'
     b'<Report xmlns="http://xml.kishou.go.jp/jmaxml1/">&x;</Report>', errors.UnsafeXml,
      "DOCTYPE is not allowed (found <!DOCTYPE Report ...>)"),
    (b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>', errors.UnsafeXml,
     "DOCTYPE is not allowed (found <!DOCTYPE r ...>)"),
    (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>', errors.InvalidMessage,
     "root element is '{urn:oasis:names:tc:emergency:cap:1.2}alert', expected Report in"
     " namespace http://xml.kishou.go.jp/jmaxml1/"),
    (b'<Report xmlns="urn:example"/>', errors.InvalidMessage,
     "root element is '{urn:example}Report', expected Report in namespace"
     " http://xml.kishou.go.jp/jmaxml1/"),
    (b"\x00\xff garbage <<<", errors.MalformedXml,
     "not well-formed XML: not well-formed (invalid token): line 1, column 1"),
    (b"<Report", errors.MalformedXml, "not well-formed XML: unclosed token: line 1, column 0"),
    (b"", errors.MalformedXml, "the document is empty"),
    (b'<Report xmlns="http://xml.kishou.go.jp/jmaxml1/"><Control/></Report>',
     errors.InvalidMessage, "JMA report lacks its Control or Head (informationBasis1)"),
])
def test_refusals(data: bytes, error: type[errors.FeedError], reason: str) -> None:
    """DTDs, foreign roots, garbage and truncated documents are refused with a reason."""
    with pytest.raises(error) as caught:
        jma.parse(data)
    assert caught.value.reason == reason


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"info_type": "予告"}, "InfoType"),
    ({"info_type": ""}, "InfoType"),
    ({"status": "本番"}, "Control/Status"),
    ({"report_dt": "2024-07-01T10:00:00"}, "offset"),
    ({"report_dt": "yesterday"}, "ISO 8601"),
])
def test_invalid_head_or_control(kwargs: dict[str, str], fragment: str) -> None:
    """Unknown InfoType or Control/Status values and naive or unreadable times are refused."""
    with pytest.raises(errors.InvalidMessage, match=fragment):
        jma.parse(_minimal(**kwargs))


def test_size_limit() -> None:
    """A report larger than max_bytes is refused before parsing."""
    data = HEAVY_RAIN.read_bytes()
    with pytest.raises(errors.TooLarge):
        jma.parse(data, max_bytes=len(data) - 1)
    assert jma.parse(data, max_bytes=len(data)).warnings


def test_levels_keep_what_they_are_about() -> None:
    """Each 警戒レベル a Kind states comes with the type of the Property it is stated in."""
    items = """<Item><Kind><Name>大雨警報</Name><Code>03</Code><Status>発表</Status>
    <Property><Type>土砂災害危険度</Type><Text>警戒レベル3相当</Text></Property>
    <Property><Type>大雨浸水危険度</Type><Text>警戒レベル４相当</Text></Property></Kind>
    <Area><Name>福島市</Name><Code>0720100</Code></Area></Item>"""
    (kind,) = jma.parse(_minimal(body=_body(items))).warnings[0].kinds
    assert kind.levels == (jma.JmaLevel("土砂災害危険度", 3), jma.JmaLevel("大雨浸水危険度", 4))


def test_sample_levels_by_significancy_type_and_name() -> None:
    """Sample 10's 松江市 states 警戒レベル３相当 as 大雨浸水危険度 and is named レベル３; its
    LastKind (what it was before) adds nothing; a lifted 注意報 keeps only its name's level."""
    report = jma.parse(HEAVY_RAIN.read_bytes())
    (matsue,) = _area(report, "3220100").kinds
    assert matsue.levels == (jma.JmaLevel("大雨浸水危険度", 3), jma.JmaLevel("", 3))
    (okinoshima,) = _area(report, "3252800").kinds
    assert okinoshima.levels == (jma.JmaLevel("", 2),)
    (ama,) = _area(report, "3252500").kinds
    assert ama.levels == ()


def test_untyped_level_in_a_kind_name() -> None:
    """A level written in the Kind's own text, outside any Property, has no type."""
    items = """<Item><Kind><Name>土砂災害警戒情報（警戒レベル４相当）</Name><Code>3</Code>
    <Status>発表</Status></Kind><Area><Name>福島市</Name><Code>0720100</Code></Area></Item>"""
    (kind,) = jma.parse(_minimal(body=_body(items, "土砂災害警戒情報"))).warnings[0].kinds
    assert kind.levels == (jma.JmaLevel("", 4),)
