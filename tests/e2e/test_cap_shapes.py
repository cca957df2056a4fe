"""CAP shapes and trust end to end: an EDXL-wrapped, signed Fukushima alert reaches phones, a
signed update is applied and a tampered message is quarantined, through the real daemon."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests import capgen, capsign
from tests.e2e.conftest import (
    Client,
    Daemon,
    Sandbox,
    daemon_env,
    free_port_base,
    post_cap,
    received,
    staff_token,
)
from tests.waiting import DEADLINE

pytestmark = pytest.mark.e2e

INSIDE = [(37.75, 140.45), (37.72, 140.50)]
OUTSIDE = (37.40, 140.38)


async def test_edxl_signed_and_tampered_messages_through_the_daemon(
        db_url: str, sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """With a staff trust anchor configured: a signed alert posted in an EDXL-DE 2.0
    distribution pushes to the phones in its area; a signed Update raises the level for
    them; a tampered message is 400 and staff find it in the quarantine with its reason."""
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(capsign.signer().cert_pem)
    port = free_port_base(1)
    env = daemon_env(db_url, port, ALERTD_TRUST_STAFF_ANCHORS=json.dumps([str(anchor)]))
    daemon = Daemon(port=port, env=env, config=sandbox.config, log=tmp_path / "daemon.log",
                    extra=["--migrate"])
    daemon.start()
    await daemon.ready(http, DEADLINE)
    api = Client(http, daemon.url)
    op = staff_token(db_url, "operator")
    for i, (lat, lon) in enumerate(INSIDE):
        await api.device("ios" if i else "android", f"shape-in-{i}", lat, lon)
    await api.device("ios", "shape-out", *OUTSIDE)

    wrapped = capsign.edxl(capsign.sign(capgen.message("fks-edxl-1", level=4)))
    status, body = await post_cap(http, daemon, op, wrapped)
    assert (status, body["outcome"]) == (202, "order"), body
    first = await received(sandbox, http, 2)
    assert sorted(first) == [("shape-in-0", "order"), ("shape-in-1", "order")]

    update = capsign.sign(capgen.message("fks-edxl-2", msg_type="Update",
                                         references=("fks-edxl-1",), level=5))
    status, body = await post_cap(http, daemon, op, update)
    assert (status, body["outcome"]) == (202, "updated"), body
    got = await received(sandbox, http, 4)
    assert sorted(got[2:]) == [("shape-in-0", "order_update"), ("shape-in-1", "order_update")]

    tampered = capsign.tamper(capsign.sign(capgen.message("fks-edxl-3", level=5)))
    status, refused = await post_cap(http, daemon, op, tampered)
    assert status == 400
    assert refused["error"].startswith("the message's signature does not verify")
    status, listing = await api.call("GET", "/v1/staff/quarantine", staff_token(db_url, "viewer"))
    assert status == 200
    item = next(i for i in listing["items"] if i["id"] == refused["quarantine_id"])
    assert (item["source"], item["reason"]) == ("staff-api", refused["error"])
    assert "自宅にとどまってください" in item["raw"]
    assert "shape-out" not in {t for t, _ in await received(sandbox, http, 4)}
    status, orders = await api.call("GET", "/v1/staff/orders?state=all", op)
    assert status == 200 and len(orders["orders"]) == 1  # the tampered message made none
