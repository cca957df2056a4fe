"""The e2e harness (tests/e2e/conftest.py): daemons end before what they use goes away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import Daemon, Sandbox, daemon_env, free_port_base

pytestmark = pytest.mark.e2e


@pytest.fixture
def ended_first(tmp_path: Path) -> Iterator[list[Daemon]]:
    """Daemons that must have ended, with nothing lost, by the time this fixture is torn down:
    requested before db_url and sandbox, it is torn down after both (and before the autouse
    clean-up, which stops whatever is left)."""
    daemons: list[Daemon] = []
    yield daemons
    for daemon in daemons:
        assert daemon.proc is not None
        assert daemon.proc.poll() == 0, "the daemon still ran when its database was dropped"
        events = [json.loads(line) for line in daemon.log.read_text().splitlines()]
        assert [e["event"] for e in events if e["level"] in ("warning", "error")] == []
        assert events[-1]["event"] == "alertd_stopped"


async def test_a_daemon_stops_before_its_database_is_dropped(
        ended_first: list[Daemon], db_url: str, sandbox: Sandbox, tmp_path: Path,
        http: aiohttp.ClientSession) -> None:
    """A daemon the test started and left running is stopped cleanly (exit 0, no warning about
    lost connections) before the test's database is dropped and its sandbox stopped."""
    port = free_port_base(1)
    daemon = Daemon(port=port, env=daemon_env(db_url, port), config=sandbox.config,
                    log=tmp_path / "daemon.log")
    daemon.start()
    ended_first.append(daemon)
    await daemon.ready(http)
