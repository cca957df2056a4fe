"""Builds CAP 1.2 messages for tests: evacuation orders for places in Fukushima."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

SENDER = "bousai@pref.fukushima.lg.jp"
# Around central Fukushima City, as CAP wants it: "lat,lon" pairs, closed.
SQUARE = "37.70,140.40 37.70,140.55 37.80,140.55 37.80,140.40 37.70,140.40"


def message(identifier: str, *, msg_type: str = "Alert", status: str = "Actual",
            references: tuple[str, ...] = (), level: int | str | None = 4,
            response: str = "Evacuate", polygon: str | None = SQUARE,
            geocode: tuple[str, str] | None = None, event: str = "洪水",
            sent: datetime | None = None, expires: datetime | None = None,
            sender: str = SENDER, circle: str | None = None,
            geocodes: tuple[tuple[str, str], ...] = (), ref_sender: str | None = None,
            event_code: tuple[str, str] | None = None) -> bytes:
    """A CAP 1.2 alert with a Japanese and an English info block.

    ``references`` name identifiers of ``ref_sender`` (default: the sender itself); ``circle``
    is CAP's ``lat,lon radius_km``; ``level`` is the 警戒レベル parameter's value, as given."""
    sent = sent or datetime.now(UTC).replace(microsecond=0)
    expires = expires or sent + timedelta(hours=6)
    refs = " ".join(f"{ref_sender or sender},{r},{sent.isoformat()}" for r in references)
    area = "<area><areaDesc>福島市中心部</areaDesc>"
    if polygon is not None:
        area += f"<polygon>{polygon}</polygon>"
    if circle is not None:
        area += f"<circle>{circle}</circle>"
    for name, value in ((geocode,) if geocode is not None else ()) + geocodes:
        area += f"<geocode><valueName>{name}</valueName><value>{value}</value></geocode>"
    area += "</area>"
    level_param = (f"<parameter><valueName>警戒レベル</valueName><value>{escape(str(level))}"
                   "</value></parameter>" if level is not None else "")
    code = (f"<eventCode><valueName>{escape(event_code[0])}</valueName><value>"
            f"{escape(event_code[1])}</value></eventCode>" if event_code is not None else "")

    def info(lang: str, headline: str, instruction: str) -> str:
        return (
            f"<info><language>{lang}</language><category>Met</category>"
            f"<event>{escape(event)}</event><responseType>{response}</responseType>"
            "<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>"
            f"{code}"
            f"<expires>{expires.isoformat()}</expires>"
            f"<headline>{escape(headline)}</headline><instruction>{escape(instruction)}</instruction>"
            f"{level_param}{area}</info>"
        )

    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{identifier}</identifier><sender>{sender}</sender>"
        f"<sent>{sent.isoformat()}</sent><status>{status}</status>"
        f"<msgType>{msg_type}</msgType><scope>Public</scope>"
        + (f"<references>{refs}</references>" if refs else "")
        + info("ja-JP", "阿武隈川が氾濫のおそれ", "高台へ避難してください")
        + info("en-US", "The Abukuma River may flood", "Move to high ground")
        + "</alert>"
    ).encode()
