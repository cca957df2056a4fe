"""Every route of the app, fuzzed over a real socket on a real PostgreSQL: structured garbage
in (bodies shaped after each route's fields with hostile values, hostile path parameters,
query strings and headers), never a 5xx out, every refusal a JSON reason, nothing logged as
the server's error.

The routes are read from the app's router, so a new route is fuzzed without being listed here;
listing its body fields in SHAPES (and the valid values of new fields in VALID) makes its
bodies structured rather than generic. ALERTD_FUZZ_EXAMPLES raises the number of examples
(each example sends one request to every route) for a longer local run, ALERTD_FUZZ_RANDOM=1
draws new ones each run; CI runs the fixed, derandomized default. Run with -s to see the
answers counted by status and by route.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from alertd import orders, shelters, staff
from alertd.api import routes
from alertd.context import Context
from tests import capgen, rawhttp

EXAMPLES = int(os.environ.get("ALERTD_FUZZ_EXAMPLES", "15"))
RANDOM = os.environ.get("ALERTD_FUZZ_RANDOM") == "1"
MAX_BODY = 20000
MAX_TARGET = 8000
SQUARE = {"type": "Polygon", "coordinates": [[
    [140.40, 37.70], [140.55, 37.70], [140.55, 37.80], [140.40, 37.80], [140.40, 37.70]]]}
# Warnings a fuzzed request may cause: a posted CAP document that is refused is quarantined,
# and the quarantine is announced to the operators.
ALLOWED_WARNINGS = {"feed_item_quarantined"}


class Raw(str):
    """JSON text written as is: what json.dumps cannot write (NaN literals, 5,000 digits)."""


def to_json(value: Any) -> str:
    """JSON text of a value that may hold Raw pieces (strings with \\u escapes, surrogates
    included)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
HOSTILE_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(alphabet=st.one_of(st.characters(), SURROGATE), min_size=1, max_size=8),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udc80", "ja\n", "22:00\n", " ", "",
                     "\u202e", "%00", "../..", "null", "1e309", "x" * 5000, "避難" * 300]),
)
HOSTILE_NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([Raw("1e309"), Raw("-1e309"), Raw("NaN"), Raw("-Infinity"),
                     Raw("9" * 5000), Raw("-" + "4" * 4400), Raw("1" * 25), Raw("4.0"),
                     Raw("1e-400"), Raw("-0"), Raw("0." + "0" * 3000 + "1")]),
)
NESTED = st.recursive(
    st.one_of(st.none(), st.booleans(), HOSTILE_NUMBER, HOSTILE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(HOSTILE_TEXT, inner, max_size=4)),
    max_leaves=8)
DEEP = st.integers(min_value=33, max_value=3000).map(lambda n: Raw("[" * n + "]" * n))
HOSTILE = st.one_of(HOSTILE_TEXT, HOSTILE_NUMBER, NESTED, DEEP)
TIMES = st.one_of(st.from_regex(r"([01]\d|2[0-3]):[0-5]\d", fullmatch=True),
                  st.sampled_from(["24:00", "7:00", "22:00:00"]))
TEXTS = st.dictionaries(st.sampled_from(["ja", "en", "ja-JP", "zh-Hant"]),
                        st.text(min_size=1, max_size=40), min_size=1, max_size=3)


def _area() -> st.SearchStrategy[Any]:
    lat, lon = st.floats(37.0, 38.0), st.floats(139.5, 141.0)
    circle = st.fixed_dictionaries({"circle": st.fixed_dictionaries(
        {"lat": lat, "lon": lon, "radius_m": st.one_of(st.floats(1, 50_000), HOSTILE)})})
    codes = st.fixed_dictionaries({"area_codes": st.lists(
        st.sampled_from(["072010", "0720301", "072028", "999999"]), max_size=3)})
    ring = st.lists(st.tuples(lon, lat).map(list), min_size=3, max_size=8).map(
        lambda pts: [*pts, pts[0]])
    polygon = st.fixed_dictionaries({"type": st.just("Polygon"),
                                     "coordinates": st.lists(ring, min_size=1, max_size=2)})
    return st.one_of(st.just(SQUARE), circle, codes, polygon)


# Valid values of the fields the routes take (a field missing here gets hostile values only).
VALID: dict[str, st.SearchStrategy[Any]] = {
    "platform": st.sampled_from(["ios", "android"]),
    "push_token": st.from_regex(r"[!-~]{1,40}", fullmatch=True),
    "locale": st.sampled_from(["ja", "en", "ja-JP", "zh-Hant"]),
    "tips": st.booleans(),
    "drill": st.booleans(),
    "quiet_hours": st.one_of(st.none(), st.fixed_dictionaries({"start": TIMES, "end": TIMES})),
    "lat": st.floats(36.5, 38.5),
    "lon": st.floats(139.0, 141.5),
    "accuracy_m": st.floats(0, 1000),
    "label": st.text(min_size=1, max_size=30),
    "area_code": st.sampled_from(["072010", "0720301", "999999"]),
    "level": st.sampled_from(orders.LEVELS),
    "hazard": st.sampled_from(orders.HAZARDS),
    "area": _area(),
    "headline": TEXTS,
    "instruction": TEXTS,
    "expires_at": st.integers(1, 20).map(
        lambda h: (datetime.now(UTC) + timedelta(hours=h)).isoformat()),
    "status": st.sampled_from(shelters.STATUSES),
    "crowding": st.sampled_from(shelters.CROWDING),
    "evacuees": st.integers(-1, 2_000_000),
}
ORDER_FIELDS = ("level", "hazard", "area", "headline", "instruction", "expires_at")
# Body fields per route, one tuple per alternative form; routes with a body that are not
# listed get fields from all of VALID.
SHAPES: dict[tuple[str, str], tuple[tuple[str, ...], ...]] = {
    ("POST", "/v1/devices"): (("platform", "push_token", "locale"),),
    ("PATCH", "/v1/me"): (("push_token", "locale", "tips", "drill", "quiet_hours"),),
    ("PUT", "/v1/me/location"): (("lat", "lon", "accuracy_m"),),
    ("PUT", "/v1/me/places/{place_id}"): (("label", "lat", "lon"), ("label", "area_code")),
    ("POST", "/v1/staff/orders"): (ORDER_FIELDS,),
    ("POST", "/v1/staff/orders:preview"): (ORDER_FIELDS,),
    ("PATCH", "/v1/staff/orders/{order_id}"): (ORDER_FIELDS,),
    ("PUT", "/v1/staff/shelters/{shelter_id}/status"): (("status", "crowding", "evacuees"),),
}
QUERY_KEYS = ["lat", "lon", "hazard", "open", "limit", "before", "state", "cursor",
              "device_id", "since", "q", "status", "offset", "sort", "municipality", "areas",
              "source"]
# Bytes an HTTP header value may hold (no CR, LF, NUL or other controls: those are malformed
# HTTP, refused by the parser before the app, see test_hostile_input).
HEADER_BYTES = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c <= 126 or c >= 128).strip())
HEADER_NAMES = ["Content-Type", "Idempotency-Key", "If-Match", "X-Forwarded-For", "Accept",
                "Accept-Encoding", "Expect", "Origin", "X-Anything"]
CONTENT_TYPES = [b"application/json", b"application/cap+xml", b"text/plain", b"",
                 b"application/json; charset=latin-1", b"multipart/form-data; boundary=x"]


@dataclass(repr=False)
class Env:
    """The fuzzed server and the valid credentials and objects a request may name."""

    server: TestServer
    context: Context
    secret: str = ""
    staff: dict[str, str] = field(default_factory=dict)
    order_id: str = ""
    statuses: Counter[int] = field(default_factory=Counter)
    by_route: dict[str, Counter[int]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return "Env(...)"

    async def call(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                   body: bytes | None) -> rawhttp.Answer:
        """One raw request to the server."""
        assert self.server.port is not None
        return await rawhttp.request(self.server.host, self.server.port, method, target,
                                     headers, body)

    async def register(self) -> None:
        """A fresh device, with a watched place, whose secret the requests use."""
        body = json.dumps({"platform": "ios", "push_token": "fuzz", "locale": "ja"}).encode()
        answer = await self.call("POST", b"/v1/devices", [], body)
        assert answer.status == 201, answer
        self.secret = answer.json()["device_secret"]
        place = json.dumps({"label": "家", "lat": 37.75, "lon": 140.45}).encode()
        answer = await self.call("PUT", b"/v1/me/places/home", self.auth_header("device"), place)
        assert answer.status == 200, answer

    def auth_header(self, who: str) -> list[tuple[bytes, bytes]]:
        """The Authorization header of the device or of the staff member with this role."""
        token = self.secret if who == "device" else self.staff[who]
        return [(b"Authorization", b"Bearer " + token.encode())]


def _fast_clock() -> Iterator[float]:
    return itertools.count(0.0, 3600.0)  # an hour between requests: no bucket runs dry


@pytest.fixture
async def env(context: Context) -> AsyncIterator[Env]:
    """The real app on a socket (bodies limited to MAX_BODY bytes, rate limits never reached)
    with a device, staff of every role, an order and a shelter to name."""
    cfg = replace(context.cfg, http=replace(context.cfg.http, max_body_bytes=MAX_BODY))
    ticks = _fast_clock()
    server = TestServer(routes.build_app(replace(context, cfg=cfg), lambda: next(ticks)))
    await server.start_server()
    e = Env(server, context)
    await e.register()
    for role in ("viewer", "operator", "admin"):
        e.staff[role] = await staff.create(context.pool, role)
    order = json.dumps({"level": 4, "hazard": "flood", "area": SQUARE,
                        "headline": {"ja": "避難"}}).encode()
    answer = await e.call("POST", b"/v1/staff/orders", e.auth_header("admin"), order)
    assert answer.status == 201, answer
    e.order_id = answer.json()["id"]
    await shelters.upsert(context.pool, [SimpleNamespace(
        id="S-1", name="中央小学校", address="福島市", lat=37.75, lon=140.45,
        hazards=["flood"], capacity=100, municipality_code="072010", kind="shelter",
        source_format="test")])
    yield e
    print(f"\nfuzz: {sum(e.statuses.values())} requests, by status: "
          f"{dict(sorted(e.statuses.items()))}")
    for route, counts in sorted(e.by_route.items()):
        print(f"  {route}: {dict(sorted(counts.items()))}")
    await server.close()


def _route_list(env: Env) -> list[tuple[str, str]]:
    found = sorted({(r.method, r.resource.canonical) for r in env.server.app.router.routes()
                    if r.resource is not None})
    assert len(found) >= 20, found
    return found


def _pct(text: str) -> bytes:
    return quote(text.encode("utf-8", "surrogatepass"), safe="").encode()


def _path(data: st.DataObject, canonical: str, env: Env) -> bytes:
    known = {"order_id": env.order_id, "shelter_id": "S-1", "place_id": "home",
             "quarantine_id": "1",
             "sheet_id": "6d1f4a52-3c4e-4d7b-9a55-0d5d3f3b2a11"}

    def param(match: re.Match[str]) -> str:
        name = match.group(1)
        kind = data.draw(st.sampled_from(["valid"] * 6 + ["text", "raw"]), label=name)
        if kind == "valid":
            return known.get(name, "x")
        if kind == "text":
            return _pct(data.draw(HOSTILE_TEXT, label=name)).decode()
        return data.draw(st.sampled_from(["%00", "%ED%A0%80", "%FF", "%2F", "..", "a%2Fb",
                                          "%25", "%zz", "x" * 300, "-1", "0" * 40]), label=name)

    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", param, canonical).encode()


def _query(data: st.DataObject) -> bytes:
    if data.draw(st.integers(0, 2), label="no query") > 0:
        return b""
    pairs = data.draw(st.lists(st.tuples(
        st.one_of(st.sampled_from(QUERY_KEYS), HOSTILE_TEXT),
        st.one_of(st.sampled_from(["37.75", "140.45", "flood", "true", "10", "0", "-1",
                                   "1e309", "nan", "all", "9" * 5000]), HOSTILE_TEXT)),
        max_size=4), label="query")
    if not pairs:
        return b""
    return b"?" + b"&".join(_pct(k) + b"=" + _pct(v) for k, v in pairs)


def _auth(data: st.DataObject, canonical: str, env: Env) -> list[tuple[bytes, bytes]]:
    family = "device" if canonical.startswith("/v1/me") else (
        "staff" if canonical.startswith("/v1/staff") else "none")
    kind = data.draw(st.sampled_from(["right"] * 5 + ["other", "none", "hostile"]),
                     label="auth")
    if kind == "none" or (kind == "right" and family == "none"):
        return []
    if kind == "right" and family == "device":
        return env.auth_header("device")
    if kind in ("right", "other"):
        role = data.draw(st.sampled_from(["viewer", "operator", "admin", "device"]),
                         label="role")
        return env.auth_header(role)
    value = data.draw(st.one_of(
        HEADER_BYTES.map(lambda b: b"Bearer " + b),
        st.sampled_from([b"Bearer", b"Bearer ", b"Bearer \xff\xfe", b"Basic YTpi",
                         b"bearer ds_" + b"A" * 4000, b"Bearer ds_\xe3\x81", b"Bearer a b"]),
        HEADER_BYTES), label="hostile auth")
    return [(b"Authorization", value)]


def _fields(data: st.DataObject, method: str, canonical: str) -> Any:
    shape = data.draw(st.sampled_from(SHAPES.get((method, canonical), (tuple(VALID),))),
                      label="form")
    # Mostly every field valid, or all but one: the requests that reach the handlers' own
    # checks and the database; then any mix.
    mode = data.draw(st.sampled_from(["valid", "valid", "one hostile", "one hostile", "mixed"]),
                     label="mode")
    names = list(shape)
    if data.draw(st.booleans(), label="subset"):
        names = data.draw(st.lists(st.sampled_from(shape), unique=True, max_size=len(shape)),
                          label="fields")
    odd = data.draw(st.sampled_from(names), label="hostile field") if names else None
    body: dict[str, Any] = {}
    for name in names:
        valid = VALID.get(name, HOSTILE)
        if mode == "mixed":
            body[name] = data.draw(st.one_of(valid, HOSTILE), label=name)
        else:
            body[name] = data.draw(HOSTILE if mode == "one hostile" and name == odd else valid,
                                   label=name)
    if data.draw(st.integers(0, 9), label="extra field") == 0:
        body[data.draw(HOSTILE_TEXT, label="extra name")] = data.draw(HOSTILE, label="extra")
    return body


def _cap(data: st.DataObject) -> bytes:
    words = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)
    kind = data.draw(st.sampled_from(["alert", "alert", "bytes", "entity"]), label="cap")
    if kind == "bytes":
        return data.draw(st.binary(max_size=300), label="cap bytes")
    if kind == "entity":
        return (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]>'
                b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&x;</alert>')
    message = capgen.message(
        data.draw(words, label="identifier"), event=data.draw(words, label="event"),
        level=data.draw(st.sampled_from([3, 4, 5, None, 9]), label="level"),
        msg_type=data.draw(st.sampled_from(["Alert", "Update", "Cancel", "?"]), label="type"),
        polygon=data.draw(st.sampled_from([capgen.SQUARE, None, "1,2 3,4", "NaN,NaN"]),
                          label="polygon"))
    return message.decode("utf-8", "surrogatepass").encode("utf-8", "replace")


def _body(data: st.DataObject, method: str, canonical: str) -> bytes | None:
    if canonical == "/v1/staff/cap" and method == "POST":
        return _cap(data)
    has_body = method in ("POST", "PUT", "PATCH")
    kind = data.draw(st.sampled_from(
        ["shaped"] * 6 + ["hostile", "bytes", "none", "big"] if has_body
        else ["none", "none", "none", "shaped", "bytes"]), label="body")
    if kind == "none":
        return None
    if kind == "bytes":
        return data.draw(st.binary(max_size=200), label="bytes")
    if kind == "big":
        return b'{"label": "' + b"x" * (MAX_BODY + 10) + b'"}'
    value = (_fields(data, method, canonical) if kind == "shaped"
             else data.draw(HOSTILE, label="hostile body"))
    return to_json(value).encode()


def _encode(data: st.DataObject, body: bytes | None) -> tuple[bytes | None,
                                                              list[tuple[bytes, bytes]]]:
    if body is None:
        return None, []
    coding = data.draw(st.sampled_from(
        [""] * 8 + ["gzip", "deflate", "gzip-plain", "deflate-plain", "br", "other"]),
        label="coding")
    if coding == "gzip":
        return gzip.compress(body), [(b"Content-Encoding", b"gzip")]
    if coding == "deflate":
        return zlib.compress(body), [(b"Content-Encoding", b"deflate")]
    if coding.endswith("-plain"):
        return body, [(b"Content-Encoding", coding.removesuffix("-plain").encode())]
    if coding:
        name = b"br" if coding == "br" else data.draw(HEADER_BYTES, label="coding name")
        return body, [(b"Content-Encoding", name)]
    return body, []


def _headers(data: st.DataObject) -> list[tuple[bytes, bytes]]:
    if data.draw(st.booleans(), label="no extra headers"):
        return []
    names = data.draw(st.lists(st.sampled_from(HEADER_NAMES), unique=True, max_size=3),
                      label="headers")
    out = []
    for name in names:
        if name == "Content-Type":
            value = data.draw(st.sampled_from(CONTENT_TYPES), label=name)
        elif name == "Expect":
            value = data.draw(st.one_of(st.just(b"100-continue"), HEADER_BYTES), label=name)
        else:
            value = data.draw(HEADER_BYTES, label=name)
        out.append((name.encode(), value))
    return out


async def _one(data: st.DataObject, env: Env, method: str, canonical: str) -> None:
    if method == "*" or data.draw(st.integers(0, 19), label="other method") == 0:
        method = data.draw(st.sampled_from(["GET", "POST", "OPTIONS", "DELETE", "PROPFIND",
                                            "PUT"]), label="method")
    # aiohttp's parser refuses a request line over 8,190 bytes before the app sees it
    target = (_path(data, canonical, env) + _query(data))[:MAX_TARGET]
    body, headers = _encode(data, _body(data, method, canonical))
    headers = [*headers, *_headers(data)]
    if body is not None and not any(n == b"Content-Type" for n, _ in headers):
        ctype = b"application/cap+xml" if canonical == "/v1/staff/cap" else b"application/json"
        headers.append((b"Content-Type", ctype))
    headers += _auth(data, canonical, env)
    answer = await env.call(method, target, headers, body)
    env.statuses[answer.status] += 1
    env.by_route.setdefault(f"{method} {canonical}", Counter())[answer.status] += 1
    shown = f"{method} {target[:200]!r} headers={headers!r} body={(body or b'')[:300]!r}"
    assert answer.status < 500, f"{answer.status} {answer.body[:300]!r} for {shown}"
    if method != "HEAD" and answer.status >= 400:
        assert answer.headers.get("content-type", "").startswith("application/json"), shown
        reason = answer.json().get("error")
        assert isinstance(reason, str) and reason.strip(), shown
    if (method, canonical) == ("DELETE", "/v1/me") and answer.status == 204:
        await env.register()  # the device is gone: the next requests need one


# No shrinking: a failing request is shown whole in the assertion, and shrinking dozens of
# requests an example against PostgreSQL took minutes.
@settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
async def test_no_route_answers_5xx_to_garbage(env: Env, data: st.DataObject,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Each example sends one fuzzed request to every route of the app: none answers 5xx,
    every refusal carries a JSON reason, and nothing is logged as an error."""
    first_record = len(caplog.records)
    with capture_logs() as logs:
        for method, canonical in _route_list(env):
            await _one(data, env, method, canonical)
    loud = [e for e in logs if e["log_level"] in ("error", "critical", "exception")
            or "exc_info" in e
            or (e["log_level"] == "warning" and e["event"] not in ALLOWED_WARNINGS)]
    assert loud == []
    stdlib = [r.getMessage() for r in caplog.records[first_record:]
              if r.levelno >= 30 or r.exc_info]
    assert stdlib == []
