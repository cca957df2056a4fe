"""schemathesis against a live daemon: no 5xx on any route, and every answer as the OpenAPI
description says (status, content type, headers, body), with valid device and staff
credentials so that authenticated routes are exercised beyond 401."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alertd.api import openapi
from alertd.sandbox.handle import clean_env
from tests.e2e.conftest import Daemon, Sandbox, daemon_env, free_port_base, staff_token
from tests.waiting import DEADLINE

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHELTERS = ROOT / "tests" / "fixtures" / "shelters" / "standard_evacuation_sites.csv"
SEED = 20260401
EXAMPLES = 10  # per operation and phase
RUN_LIMIT_S = 240  # the run takes under a minute on a busy 2-core machine

# Every phase (examples, coverage, fuzzing, stateful), deterministic from the seed, nothing
# kept between runs. Every check but positive_data_acceptance: a request the description
# allows may still be refused for what no schema states (an unknown area code, a stale
# If-Match, a cursor of another device), and is then answered a described 4xx.
CONFIG = """\
seed = {seed}
workers = 1
request-timeout = 30
suppress-health-check = ["all"]

[cache]
enabled = false

[generation]
max-examples = {examples}
deterministic = true

[checks]
enabled = true
positive_data_acceptance.enabled = false

[auth.openapi.staffBearer]
bearer = "${{ALERTD_ST_STAFF_TOKEN}}"

# A device of its own, registered again whenever a request was refused 401 (after the device
# erased itself with DELETE /v1/me).
[auth.dynamic.openapi.deviceBearer]
path = "/v1/devices"
method = "post"
payload = {{ platform = "ios", push_token = "schemathesis-device", locale = "ja" }}
extract_selector = "/device_secret"
retry_on = [401]
"""


def _config(examples: int) -> str:
    return CONFIG.format(seed=SEED, examples=examples)


def _operation_of(method: str, url: str, doc: dict[str, Any]) -> tuple[str, str] | None:
    """The (METHOD, path template) a request URL of the HAR went to, or None."""
    path = "/" + url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
    found = [template for template in doc["paths"]
             if re.fullmatch(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)), path)]
    found.sort(key=lambda template: template.count("{"))  # a literal path before a template
    return (method, found[0]) if found else None


async def test_schemathesis_finds_no_server_error_and_no_answer_unlike_the_description(
        db_url: str, sandbox: Sandbox, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """schemathesis (every phase, a fixed seed, a few examples an operation) against the real
    daemon gets no 5xx and no answer the description does not allow, gets past 401 on every
    operation that needs credentials, and the daemon logs no error meanwhile."""
    port = free_port_base(1)
    # Rate limits off: a 429 would end most of the run's requests before they reach a handler
    # (tests/integration/test_openapi.py checks the 429 answers against the description).
    daemon = Daemon(port=port, env=daemon_env(db_url, port, ALERTD_RATELIMIT_ENABLED="false"),
                    config=sandbox.config, log=tmp_path / "daemon.log", extra=["--migrate"])
    daemon.start()
    await daemon.ready(http, DEADLINE)
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "alertd.cli", "shelters", "import", str(SHELTERS)],
        env=clean_env(ALERTD_DATABASE_URL=db_url), check=True, capture_output=True)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(EXAMPLES))
    report, har = tmp_path / "report.json", tmp_path / "run.har"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
        f"http://127.0.0.1:{port}/openapi.json", "--report", "json,har",
        "--report-json-path", str(report), "--report-har-path", str(har),
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=clean_env(ALERTD_ST_STAFF_TOKEN=staff_token(db_url, "admin"), NO_COLOR="1"))
    out, _ = await asyncio.wait_for(proc.communicate(), RUN_LIMIT_S)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text

    doc = openapi.document()
    summary = json.loads(report.read_text())
    statuses: Counter[int] = Counter()
    past_401: set[tuple[str, str]] = set()
    for entry in json.loads(har.read_text())["log"]["entries"]:
        status = entry["response"]["status"]
        statuses[status] += 1
        where = _operation_of(entry["request"]["method"], entry["request"]["url"], doc)
        if where is not None and status != 401:
            past_401.add(where)
    print(f"schemathesis: {summary['operations']['tested']} operations, "
          f"{sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}, "
          f"{summary['running_time']:.0f} s", file=sys.stderr)
    # Loaded from the daemon, schemathesis leaves out the operation that serves the
    # description (tests/integration/test_openapi.py checks that one).
    assert summary["operations"]["tested"] == len(openapi.operations(doc)) - 1
    assert not [status for status in statuses if status >= 500], text
    secured = {(method.upper(), path) for path, item in doc["paths"].items()
               for method, op in item.items() if method in openapi.METHODS and op["security"]}
    assert sorted(secured - past_401) == [], "only ever answered 401"
    assert _errors_logged(tmp_path / "daemon.log") == [], "the daemon logged errors"


def _errors_logged(log: Path) -> list[str]:
    """The lines of a daemon's JSON log at ERROR or above, and any traceback it printed."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            level = json.loads(line).get("level")
        except ValueError:
            level = "error" if "Traceback" in line else None
        if level in ("error", "critical"):
            found.append(line)
    return found
