"""The staff feed routes in-process on a real PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd import staff
from alertd.api import routes
from alertd.context import Context
from alertd.ingest import quarantine
from tests import capgen, capsign


async def test_posted_cap_sent_in_the_far_future_is_400(api: TestClient,
                                                         context: Context) -> None:
    """A posted CAP Alert sent in 9999 answers 400 with the reason and is quarantined."""
    operator = await staff.create(context.pool, "operator")
    raw = capgen.message("late", sent=datetime(9999, 12, 31, tzinfo=UTC))
    r = await api.post("/v1/staff/cap", data=raw, headers={
        "Authorization": f"Bearer {operator}", "Content-Type": "application/cap+xml"})
    answer = await r.json()
    assert r.status == 400
    assert answer["error"].startswith(
        "sent 9999-12-31T00:00:00+00:00 is more than 300 s in the future (now ")
    assert answer["quarantine_id"] == await context.pool.fetchval("SELECT id FROM quarantine")
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 0


def _with(context: Context, **trust: Any) -> Context:
    """The context with some trust.* settings changed."""
    return Context(cfg=replace(context.cfg, trust=replace(context.cfg.trust, **trust)),
                   pool=context.pool, points=context.points, table=context.table)


@contextlib.asynccontextmanager
async def _client(c: Context) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    client: TestClient = TestClient(TestServer(routes.build_app(c)))  # type: ignore[type-arg]
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _post(api: TestClient, token: str, body: bytes,  # type: ignore[type-arg]
                **headers: str) -> tuple[int, Any]:
    r = await api.post("/v1/staff/cap", data=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/cap+xml", **headers})
    return r.status, await r.json()


async def _quarantined(context: Context, qid: int) -> asyncpg.Record:
    row = await context.pool.fetchrow(
        "SELECT source, reason, length(raw) AS kept, raw_size FROM quarantine WHERE id = $1", qid)
    assert row is not None
    return row


@pytest.mark.parametrize("version", ["1.0", "2.0"])
async def test_posted_edxl_distribution_issues_each_message(
        api: TestClient, context: Context, version: str) -> None:  # type: ignore[type-arg]
    """An EDXL-DE distribution carrying two CAP alerts makes two orders, each named in the
    answer; the first at the top, as for a single message."""
    operator = await staff.create(context.pool, "operator")
    raw = capsign.edxl(capgen.message("edxl-a"), capgen.message("edxl-b", level=5),
                       version=version)
    status, answer = await _post(api, operator, raw)
    assert status == 202, answer
    assert [m["outcome"] for m in answer["messages"]] == ["order", "order"]
    assert answer["order_id"] == answer["messages"][0]["order_id"]
    keys = await context.pool.fetch("SELECT identifier FROM cap_messages ORDER BY identifier")
    assert [k["identifier"] for k in keys] == ["edxl-a", "edxl-b"]


async def test_edxl_message_refused_alone(api: TestClient,  # type: ignore[type-arg]
                                          context: Context) -> None:
    """A bad message inside a distribution is quarantined on its own; the good one is issued."""
    operator = await staff.create(context.pool, "operator")
    raw = capsign.edxl(capgen.message("good-1"), capgen.message("draft-1", status="Draft"))
    status, answer = await _post(api, operator, raw)
    assert status == 202
    assert answer["messages"][0]["outcome"] == "order"
    refused = answer["messages"][1]
    assert refused["error"] == "status Draft is not accepted: drafts are never issued"
    row = await _quarantined(context, refused["quarantine_id"])
    assert b"EDXL" not in bytes(await context.pool.fetchval(
        "SELECT raw FROM quarantine WHERE id = $1", refused["quarantine_id"]))
    assert row["source"] == "staff-api"


async def test_edxl_without_cap_is_400_and_quarantined(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """A distribution carrying no CAP alert is refused as a whole, with the reason."""
    operator = await staff.create(context.pool, "operator")
    status, answer = await _post(api, operator, capsign.edxl(b"<other xmlns='urn:x'/>"))
    assert status == 400
    assert answer["error"].startswith("EDXL-DE: the EDXL-DE 2.0 distribution 'dist-1' carries "
                                      "no CAP alert")
    assert (await _quarantined(context, answer["quarantine_id"]))["source"] == "staff-api"


def _padded(identifier: str, size: int) -> bytes:
    """A real-sized national message: the description carries ``size`` bytes of text."""
    raw = capgen.message(identifier)
    pad = b"<description>" + b"x" * size + b"</description><instruction>"
    return raw.replace(b"<instruction>", pad, 1)


async def test_450_kb_message_is_accepted(api: TestClient,  # type: ignore[type-arg]
                                          context: Context) -> None:
    """A 450 KB CAP message (over http.max_body_bytes, under cap.max_bytes) is issued."""
    operator = await staff.create(context.pool, "operator")
    raw = _padded("big-1", 450_000)
    assert context.cfg.http.max_body_bytes < len(raw) < context.cfg.cap.max_bytes
    status, answer = await _post(api, operator, raw)
    assert (status, answer["outcome"]) == (202, "order"), answer


async def test_message_over_cap_max_bytes_is_413_and_quarantined(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """A message over cap.max_bytes answers 413 and is quarantined: its first 256 KiB kept,
    its whole size recorded."""
    operator = await staff.create(context.pool, "operator")
    raw = _padded("huge-1", context.cfg.cap.max_bytes)
    status, answer = await _post(api, operator, raw)
    assert (status, answer["error"]) == (413, "body too large: at most 1048576 bytes")
    row = await _quarantined(context, answer["quarantine_id"])
    assert (row["kept"], row["raw_size"]) == (quarantine.MAX_RAW, len(raw))


async def test_streamed_message_over_the_limit_is_413_and_quarantined(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """A chunked body (no Content-Length) growing past cap.max_bytes is refused the same way."""
    operator = await staff.create(context.pool, "operator")
    raw = _padded("huge-2", context.cfg.cap.max_bytes)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 65536):
            yield raw[i:i + 65536]

    status, answer = await _post(api, operator, chunks())  # type: ignore[arg-type]
    assert status == 413
    row = await _quarantined(context, answer["quarantine_id"])
    assert row["kept"] == quarantine.MAX_RAW and row["raw_size"] > context.cfg.cap.max_bytes


async def test_refusals_before_parsing_are_quarantined(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """A wrong Content-Type (400), a body that is not the gzip it claims (400) and another
    coding (415) are each quarantined with their reason."""
    operator = await staff.create(context.pool, "operator")
    raw = capgen.message("q-1")
    got = [await _post(api, operator, raw, **{"Content-Type": "application/json"}),
           await _post(api, operator, raw, **{"Content-Encoding": "gzip"}),
           await _post(api, operator, raw, **{"Content-Encoding": "br"})]
    assert [s for s, _ in got] == [400, 400, 415]
    for _, answer in got:
        row = await _quarantined(context, answer["quarantine_id"])
        assert row["reason"] == answer["error"] and row["raw_size"] == len(raw)


async def test_unauthenticated_body_is_not_quarantined(
        api: TestClient, context: Context) -> None:  # type: ignore[type-arg]
    """Without a staff token an oversized post is a 401 and leaves nothing in the quarantine."""
    r = await api.post("/v1/staff/cap", data=_padded("anon", 2_000_000),
                       headers={"Content-Type": "application/cap+xml"})
    assert r.status == 401
    assert await context.pool.fetchval("SELECT count(*) FROM quarantine") == 0


async def test_staff_trust_anchors_accept_signed_refuse_tampered_and_unsigned(
        context: Context, tmp_path: Path) -> None:
    """With staff trust anchors, a signed message is issued; a tampered one and an unsigned
    one are 400 and quarantined with the reason."""
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(capsign.signer().cert_pem)
    c = _with(context, staff_anchors=(str(anchor),))
    operator = await staff.create(context.pool, "operator")
    async with _client(c) as api:
        status, answer = await _post(api, operator, capsign.sign(capgen.message("signed-1")))
        assert (status, answer["outcome"]) == (202, "order"), answer
        status, tampered = await _post(api, operator,
                                       capsign.tamper(capsign.sign(capgen.message("signed-2"))))
        assert status == 400
        assert tampered["error"].startswith("the message's signature does not verify")
        status, unsigned = await _post(api, operator, capgen.message("signed-3"))
        assert status == 400 and "not signed" in unsigned["error"]
    for answer in (tampered, unsigned):
        assert (await _quarantined(context, answer["quarantine_id"]))["reason"] == answer["error"]
    assert await context.pool.fetchval("SELECT count(*) FROM orders") == 1


async def test_staff_sender_allowlist(context: Context) -> None:
    """With staff_senders set, a message from another sender is 400 and quarantined."""
    c = _with(context, staff_senders=(capgen.SENDER,))
    operator = await staff.create(context.pool, "operator")
    async with _client(c) as api:
        status, answer = await _post(api, operator,
                                     capgen.message("s-1", sender="someone@example.org"))
        assert status == 400
        assert answer["error"].startswith("sender 'someone@example.org' is not allowed for this "
                                          "source (allowed: bousai@pref.fukushima.lg.jp)")
        status, answer = await _post(api, operator, capgen.message("s-2"))
        assert (status, answer["outcome"]) == (202, "order")
