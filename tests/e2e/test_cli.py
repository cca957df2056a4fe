"""alertd.cli: the command forms the contract writes, run as real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from alertd.sandbox.handle import SandboxProcess, clean_env, free_port_base
from tests.e2e.conftest import Client
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALERTD = Path(sys.executable).parent / "alertd"  # the installed console script
SHELTERS = ROOT / "tests" / "fixtures" / "shelters" / "standard_evacuation_sites.csv"
AREA = {"area_codes": ["072010"]}


def _env(**extra: str) -> dict[str, str]:
    return clean_env(ALERTD_LOG_FORMAT="json", **extra)


def alertd(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `alertd ARGS` to its end."""
    return subprocess.run([str(ALERTD), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts, stopped after it whatever happens."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)


def _start(started: list[subprocess.Popen[bytes]], args: list[str], env: dict[str, str],
           log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ALERTD), *args], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    started.append(proc)
    return proc


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("command", [["migrate"], ["run"], ["staff-token", "create"],
                                     ["shelters", "import"], ["localdb"]])
def test_help_of_every_settings_command_lists_config(command: list[str]) -> None:
    """`alertd CMD --help` lists --config for every command that reads settings."""
    out = alertd(*command, "--help", env=_env())
    assert out.returncode == 0, out.stderr
    assert "--config FILE" in out.stdout


def test_config_files_before_and_after_the_command_apply_in_order(
        tmp_path: Path, empty_db_url: str) -> None:
    """--config before and after the command are all read, in the order written: the last wins."""
    real, bogus = tmp_path / "real.toml", tmp_path / "bogus.toml"
    real.write_text(f'[database]\nurl = "{empty_db_url}"\n')
    bogus.write_text('[database]\nurl = "postgresql://postgres@127.0.0.1:5432/alertd_nope"\n')
    wrong = alertd("--config", str(real), "migrate", "--config", str(bogus), env=_env())
    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines()[-1] == (
        'alertd: cannot connect to the database: database "alertd_nope" does not exist')
    right = alertd("--config", str(bogus), "migrate", "--config", str(real), env=_env())
    assert right.returncode == 0, right.stderr
    assert right.stdout.startswith("applied ")
    again = alertd("migrate", "--config", str(bogus), "--config", str(real), env=_env())
    assert (again.returncode, again.stdout) == (0, "applied 0 migration(s)\n")


async def test_contract_forms_work_as_written(
        tmp_path: Path, empty_db_url: str, http: aiohttp.ClientSession,
        started: list[subprocess.Popen[bytes]]) -> None:
    """migrate, sandbox --port-base N --dir D, run --config FILE --role api,worker,
    staff-token create --role R and shelters import FILE work exactly as the contract writes
    them, and the daemon sends through the sandbox its --config named."""
    env = _env(ALERTD_DATABASE_URL=empty_db_url)
    migrated = alertd("migrate", env=env)
    assert migrated.returncode == 0 and migrated.stdout.startswith("applied "), migrated.stderr

    base, directory = free_port_base(), tmp_path / "sandbox"
    log = tmp_path / "sandbox.log"
    sandbox = SandboxProcess(
        _start(started, ["sandbox", "--port-base", str(base), "--dir", str(directory)], env,
               log), directory, base, log)
    await sandbox.ready()

    port = free_port_base(1)
    env["ALERTD_HTTP_PORT"] = str(port)
    daemon = _start(started, ["run", "--config", str(sandbox.config), "--role", "api,worker"], env,
                    tmp_path / "daemon.log")
    url = f"http://127.0.0.1:{port}"

    async def ready() -> bool:
        assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
        try:
            async with http.get(f"{url}/readyz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False
    await wait_for(ready, "daemon /readyz")

    created = alertd("staff-token", "create", "--role", "operator", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[-1]
    assert token.startswith("st_") and token == token.strip() and " " not in token

    imported = alertd("shelters", "import", str(SHELTERS), env=env)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == "digital_agency: 3 shelters added, 0 updated, 0 rows refused\n"

    api = Client(http, url)
    await api.device("ios", "cli-1", 37.7608, 140.4747)
    status, order = await api.call("POST", "/v1/staff/orders", token, {
        "level": 4, "hazard": "flood", "area": AREA, "headline": {"ja": "避難指示"}})
    assert (status, order["devices"]) == (201, 1)

    async def delivered() -> list[str]:
        return [d["token"] for d in await sandbox.deliveries(http)]
    assert await wait_for(delivered, "the push in the sandbox") == ["cli-1"]


def test_taken_port_is_one_clear_error_line(db_url: str, taken_port: int) -> None:
    """`alertd run` on a taken port exits 1 with one line naming the port and how to choose
    another, and no traceback."""
    env = _env(ALERTD_DATABASE_URL=db_url, ALERTD_HTTP_PORT=str(taken_port),
               ALERTD_APNS_ENABLED="false", ALERTD_FCM_ENABLED="false")
    out = alertd("run", "--role", "api", env=env)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout
    errors = [line for line in out.stderr.splitlines() if line.startswith("alertd:")]
    assert errors == [
        f"alertd: cannot listen on 127.0.0.1:{taken_port}: Address already in use; choose "
        "another port with http.port in a --config file or ALERTD_HTTP_PORT"]


async def test_image_start_with_only_a_database_url_serves_with_push_off(
        tmp_path: Path, empty_db_url: str, http: aiohttp.ClientSession,
        started: list[subprocess.Popen[bytes]]) -> None:
    """`alertd run --migrate` (the Docker image's start) with a database URL and no push
    credentials migrates, answers /readyz, logs each push service as off once, and every line
    it writes is JSON."""
    port = free_port_base(1)
    # The image's environment: host, port and JSON logs; nothing about APNs or FCM.
    env = _env(ALERTD_DATABASE_URL=empty_db_url, ALERTD_HTTP_HOST="127.0.0.1",
               ALERTD_HTTP_PORT=str(port))
    log = tmp_path / "daemon.log"
    daemon = _start(started, ["run", "--migrate"], env, log)

    async def ready() -> bool:
        assert daemon.poll() is None, log.read_text()
        try:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False
    await wait_for(ready, "daemon /readyz")
    daemon.terminate()
    assert daemon.wait(timeout=60) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    off = [(e["service"], e["level"], e["reason"]) for e in lines
           if e["event"] == "push_service_off"]
    assert off == [
        ("apns", "warning", "no credentials configured: set apns.key_file, apns.key_id and "
                            "apns.team_id (token auth) or apns.cert_file"),
        ("fcm", "warning", "no credentials configured: set fcm.service_account_file")]
    events = [e["event"] for e in lines]
    assert events.index("migrations_applied") < events.index("alertd_started")
    assert events[-1] == "alertd_stopped"


def test_push_services_configured_in_part_are_one_error_naming_all(
        tmp_path: Path, db_url: str) -> None:
    """An APNs key without its key id and team id, and an unreadable FCM service account,
    stop the start with one error that names all three problems, and no traceback."""
    account = tmp_path / "missing-account.json"
    env = _env(ALERTD_DATABASE_URL=db_url, ALERTD_HTTP_PORT=str(free_port_base(1)),
               ALERTD_APNS_KEY_FILE=str(tmp_path / "AuthKey.p8"),
               ALERTD_FCM_SERVICE_ACCOUNT_FILE=str(account))
    out = alertd("run", env=env)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr + out.stdout
    message = out.stderr[out.stderr.index("alertd: configuration error"):]
    assert message == (
        "alertd: configuration error: push services are enabled but not fully configured;"
        " missing or wrong:\n"
        "  - apns.key_id (token auth needs it)\n"
        "  - apns.team_id (token auth needs it)\n"
        f"  - fcm.service_account_file: cannot read {account}: No such file or directory\n"
        "(set them, or turn a service off with apns.enabled / fcm.enabled = false)\n")
