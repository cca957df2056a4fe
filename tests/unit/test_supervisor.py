"""The supervisor's pure parts: worker counts, command lines, restart back-off, exit texts and
the delivery counts a worker reports."""

from __future__ import annotations

import json
import signal
import sys

import pytest
from structlog.testing import capture_logs

from alertd import metrics, supervisor


def test_worker_count_defaults_to_the_cores_this_process_may_use() -> None:
    """No --workers: one worker per usable core; a number given is taken as it is."""
    assert supervisor.worker_count(None) >= 1
    assert supervisor.worker_count(0) == 0
    assert supervisor.worker_count(3) == 3


def test_worker_argv_passes_the_configuration_on_and_runs_the_worker_role_alone() -> None:
    """A worker process gets every --config file in order, the worker role, --workers 1 (no
    supervisor of its own) and its index."""
    assert supervisor.worker_argv(["a.toml", "b.toml"], 1) == [
        sys.executable, "-m", "alertd.cli", "--config", "a.toml", "--config", "b.toml", "run",
        "--role", "worker", "--workers", "1", "--worker-index", "1"]


def test_restart_is_at_once_after_a_healthy_run_then_backs_off_and_is_capped() -> None:
    """0 deaths in a row: at once; then growing waits, never beyond RESTART_MAX_S."""
    assert supervisor.restart_delay(0) == 0.0
    assert 0 < supervisor.restart_delay(1) <= supervisor.RESTART_BASE_S
    assert supervisor.restart_delay(4) > supervisor.RESTART_BASE_S
    assert all(supervisor.restart_delay(n) <= supervisor.RESTART_MAX_S for n in range(1, 80))


@pytest.mark.parametrize(("code", "text"), [
    (0, "exit status 0"), (1, "exit status 1"), (-signal.SIGKILL, "killed by SIGKILL"),
    (-200, "killed by signal 200")])
def test_exit_statuses_read_as_status_or_signal(code: int, text: str) -> None:
    """A negative status names the signal that ended the process."""
    assert supervisor.describe_exit(code) == text


def _sent() -> float:
    return metrics.DELIVERIES.labels("apns", "sent")._value.get()


def test_reported_counts_add_what_grew_to_the_supervisors_counter() -> None:
    """A worker reports only what grew since its last report; the supervisor adds it to its
    own counter and latency histogram, so that its /metrics counts every worker's deliveries."""
    line = supervisor.counts_line(
        {"deliveries/apns/sent": 12.0, "deliveries/fcm/failed": 1.0, "send_seconds/apns/2": 3,
         "send_seconds/apns/sum": 0.06},
        {"deliveries/apns/sent": 2.0, "deliveries/fcm/failed": 1.0})
    assert json.loads(line) == {"deliveries/apns/sent": 10.0, "send_seconds/apns/2": 3,
                                "send_seconds/apns/sum": 0.06}
    before = _sent()
    latency = metrics.SEND_LATENCY.labels("apns")
    bucket, total = latency.counts[2], latency.total
    supervisor.add_counts(line)
    assert _sent() == before + 10
    assert latency.counts[2] == bucket + 3 and latency.total == pytest.approx(total + 0.06)


def test_a_line_that_is_no_report_is_logged_and_ignored() -> None:
    """Whatever a worker writes, the supervisor goes on: a stray line is a warning."""
    before = _sent()
    with capture_logs() as logs:
        supervisor.add_counts("not json")
        supervisor.add_counts("[1, 2]")
        supervisor.add_counts('{"deliveries/apns": 1}')
    assert [e["event"] for e in logs] == ["worker_line_ignored"] * 3
    assert _sent() == before
