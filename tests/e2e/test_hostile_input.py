"""Hostile input against the real daemon process: its server is wired as the in-process tests
assume (bodies decoded by the app within the limit, client errors logged quietly)."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from tests import rawhttp
from tests.e2e.conftest import Daemon

pytestmark = pytest.mark.e2e

DEVICE = json.dumps({"platform": "ios", "push_token": "e2e-gzip", "locale": "ja"}).encode()


async def _post(daemon: Daemon, body: bytes, coding: str) -> rawhttp.Answer:
    return await rawhttp.request("127.0.0.1", daemon.port, "POST", b"/v1/devices", [
        (b"Content-Type", b"application/json"), (b"Content-Encoding", coding.encode())], body)


async def test_daemon_decodes_bodies_within_the_limit_and_logs_no_error(daemon: Daemon) -> None:
    """The daemon reads a gzip body, answers 400 to one that is not gzip, 413 to a zip bomb
    (whose corrupt tail it never reaches), 401 to a bearer of bytes beyond ASCII, and logs
    none of these as an error."""
    assert (await _post(daemon, gzip.compress(DEVICE), "gzip")).status == 201
    assert (await _post(daemon, DEVICE, "gzip")).status == 400
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = packer.compress(b"\0" * 50_000_000) + packer.flush(zlib.Z_SYNC_FLUSH) + b"\xff" * 64
    answer = await _post(daemon, bomb, "gzip")
    assert answer.status == 413 and "too large" in answer.json()["error"]
    answer = await rawhttp.request("127.0.0.1", daemon.port, "GET", b"/v1/me",
                                   [(b"Authorization", b"Bearer \xff\xfe")])
    assert answer.status == 401
    answer = await rawhttp.send("127.0.0.1", daemon.port, b"GET /\xff HTTP/1.1\r\n\r\n")
    assert answer.status == 400
    assert daemon.log is not None
    lines = daemon.log.read_text().splitlines()
    assert [ln for ln in lines if '"error"' in ln or "ERROR" in ln or "Traceback" in ln] == []
