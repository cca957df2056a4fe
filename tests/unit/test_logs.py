"""Log output of a configured process: one JSON object a line, libraries included."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from alertd import logs

SCRIPT = """
import logging, warnings
import structlog
from alertd import logs

logs.configure("json", "info")
logging.getLogger("aioapns").warning("Connection to %s lost", "api.push.apple.com")
logging.getLogger("aioapns").info("chatter below warning is dropped")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("aiohttp.server").exception("Error handling request")
structlog.get_logger("alertd.delivery.dispatcher").info("ours", delivery_id=7)
try:
    raise TimeoutError()
except TimeoutError as exc:
    structlog.get_logger().error("send_crashed", error=logs.describe(exc), exc_info=exc)
warnings.warn("a connection went back to the pool with a listener")
"""


def _run(script: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout == ""
    return [json.loads(line) for line in done.stderr.splitlines()]


def test_every_line_is_json_with_event_level_and_logger() -> None:
    """Standard-library records come out as structlog JSON lines; INFO from libraries is not."""
    lines = _run(SCRIPT)
    for line in lines:
        assert isinstance(line.pop("timestamp"), str)
    apns, server, ours, crash, warning = lines
    assert apns == {"event": "Connection to api.push.apple.com lost", "level": "warning",
                    "logger": "aioapns"}
    assert (server["event"], server["level"], server["logger"]) == (
        "Error handling request", "error", "aiohttp.server")
    assert server["exception"].startswith("Traceback (most recent call last):")
    assert server["exception"].endswith("ZeroDivisionError: division by zero")
    assert ours == {"event": "ours", "level": "info", "delivery_id": 7}
    assert (crash["event"], crash["level"], crash["error"]) == (
        "send_crashed", "error", "TimeoutError")
    assert crash["exception"].endswith("TimeoutError")
    assert (warning["level"], warning["logger"]) == ("warning", "py.warnings")
    assert "a connection went back to the pool with a listener" in warning["event"]


def test_configure_twice_keeps_one_library_handler() -> None:
    """Configuring again replaces the library handler instead of doubling every line."""
    lines = _run('from alertd import logs\nimport logging\nlogs.configure("json")\n'
                 'logs.configure("json")\nlogging.getLogger("asyncpg").warning("once")\n')
    assert [(line["event"], line["logger"]) for line in lines] == [("once", "asyncpg")]


def test_describe_names_an_exception_without_a_message() -> None:
    """An exception with an empty message is described by its type, never as ""."""
    assert logs.describe(TimeoutError()) == "TimeoutError"
    assert logs.describe(ConnectionResetError("reset by peer")) == (
        "ConnectionResetError: reset by peer")
