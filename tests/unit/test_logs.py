"""Log output of a configured process: one JSON object a line, libraries included."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from alertd import logs

PACKAGE = Path(logs.__file__).resolve().parent
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}

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


def test_no_log_line_writes_an_exception_as_str() -> None:
    """No log call in alertd gives an error or a reason as str(...): exceptions go through
    logs.describe (str() of a timeout is empty)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LOG_METHODS):
                offenders += [f"{path.relative_to(PACKAGE)}:{node.lineno}"
                              for kw in node.keywords if kw.arg in ("error", "reason")
                              and any(
                                  isinstance(n, ast.Name) and n.id == "str"
                                  for n in ast.walk(kw.value))]
    assert offenders == []
