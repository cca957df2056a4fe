"""alertd.staff: staff tokens through the real CLI (create, list, revoke) and the API."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from alertd import credentials
from alertd.sandbox.handle import clean_env

ROOT = Path(__file__).resolve().parents[2]
ALERTD = Path(sys.executable).parent / "alertd"  # the installed console script
REFUSED = {"error": "unknown, expired or revoked staff token"}
LISTED = {"id", "role", "label", "created_at", "expires_at", "last_used_at", "revoked_at",
          "state"}


def alertd(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `alertd ARGS` against this test's database."""
    return subprocess.run([str(ALERTD), *args], env=clean_env(ALERTD_DATABASE_URL=db_url),
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def create(db_url: str, *args: str) -> str:
    """A new token from `alertd staff-token create ARGS` (its last line)."""
    out = alertd(db_url, "staff-token", "create", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[-1]


def listed(db_url: str) -> list[dict[str, Any]]:
    """`alertd staff-token list --json`."""
    out = alertd(db_url, "staff-token", "list", "--json")
    assert out.returncode == 0, out.stderr
    tokens: list[dict[str, Any]] = json.loads(out.stdout)
    return tokens


async def status_of(api: TestClient, token: str) -> tuple[int, Any]:  # type: ignore[type-arg]
    """What the staff API answers this token."""
    r = await api.get("/v1/staff/orders", headers={"Authorization": f"Bearer {token}"})
    return r.status, await r.json()


async def test_list_shows_every_token_but_never_a_secret(db_url: str, pool: asyncpg.Pool) -> None:
    """`staff-token list` shows id, role, label, created, expires, last used and revoked of
    each token, in a table and as JSON, and neither the token nor its digest."""
    night = create(db_url, "--role", "operator", "--label", "night shift", "--expires-in", "30d")
    admin = create(db_url, "--role", "admin")
    tokens = listed(db_url)
    assert [set(t) for t in tokens] == [LISTED, LISTED]
    assert [(t["role"], t["label"], t["state"], t["last_used_at"], t["revoked_at"])
            for t in tokens] == [("operator", "night shift", "active", None, None),
                                 ("admin", "", "active", None, None)]
    first = tokens[0]
    lifetime = (datetime.fromisoformat(first["expires_at"])
                - datetime.fromisoformat(first["created_at"]))
    assert lifetime == timedelta(days=30)
    assert tokens[1]["expires_at"] is None
    ids = {str(r["id"]) for r in await pool.fetch("SELECT id FROM staff_tokens")}
    assert {t["id"] for t in tokens} == ids
    table = alertd(db_url, "staff-token", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["id", "role", "label", "created", "expires", "last", "used",
                                "revoked", "state"]
    assert [line.split()[:2] for line in lines[1:]] == [[first["id"], "operator"],
                                                        [tokens[1]["id"], "admin"]]
    for secret in (night, admin):
        for shown in (table.stdout, json.dumps(tokens)):
            assert secret not in shown
            assert credentials.digest(secret).hex() not in shown


async def test_revoked_token_is_refused(db_url: str, api: TestClient) -> None:  # type: ignore[type-arg]
    """A token revoked with `staff-token revoke ID` gets 401; revoking again says so."""
    token = create(db_url, "--role", "viewer", "--label", "tablet 3")
    assert (await status_of(api, token))[0] == 200
    (info,) = listed(db_url)
    out = alertd(db_url, "staff-token", "revoke", info["id"])
    assert (out.returncode, out.stdout) == (
        0, f"revoked the viewer staff token {info['id']} (tablet 3)\n")
    assert await status_of(api, token) == (401, REFUSED)
    (after,) = listed(db_url)
    assert after["state"] == "revoked" and after["revoked_at"] is not None
    again = alertd(db_url, "staff-token", "revoke", info["id"])
    assert again.returncode == 0
    assert again.stdout.startswith(f"the viewer staff token {info['id']} (tablet 3) was already"
                                   " revoked at ")
    unknown = alertd(db_url, "staff-token", "revoke", "4b0d8a3e-0000-4000-8000-000000000000")
    assert (unknown.returncode, unknown.stderr) == (
        1, "alertd: no staff token 4b0d8a3e-0000-4000-8000-000000000000\n")


async def test_expired_token_is_refused(db_url: str, api: TestClient,  # type: ignore[type-arg]
                                        pool: asyncpg.Pool) -> None:
    """A token works until its --expires-at and gets 401 from then on."""
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    token = create(db_url, "--role", "operator", "--expires-at", at.isoformat())
    (info,) = listed(db_url)
    assert datetime.fromisoformat(info["expires_at"]) == at
    assert (await status_of(api, token))[0] == 200
    # An hour passes.
    await pool.execute("UPDATE staff_tokens SET expires_at = now() - interval '1 second'")
    assert await status_of(api, token) == (401, REFUSED)
    assert listed(db_url)[0]["state"] == "expired"


async def test_last_use_is_written_at_most_once_a_minute(
        db_url: str, api: TestClient, pool: asyncpg.Pool) -> None:  # type: ignore[type-arg]
    """Using a token sets its last_used_at; further uses within a minute do not write it."""
    token = create(db_url, "--role", "viewer")
    assert listed(db_url)[0]["last_used_at"] is None
    assert (await status_of(api, token))[0] == 200
    first = listed(db_url)[0]["last_used_at"]
    assert first is not None
    assert (await status_of(api, token))[0] == 200
    assert listed(db_url)[0]["last_used_at"] == first
    # A minute passes.
    await pool.execute("UPDATE staff_tokens SET last_used_at = last_used_at - interval '61 s'")
    earlier = listed(db_url)[0]["last_used_at"]
    assert (await status_of(api, token))[0] == 200
    later = listed(db_url)[0]["last_used_at"]
    assert datetime.fromisoformat(later) > datetime.fromisoformat(earlier)


async def test_bad_expiries_are_refused_with_a_reason(db_url: str, pool: asyncpg.Pool) -> None:
    """An unreadable, past or offset-less expiry creates no token and says why."""
    cases = {
        ("--expires-in", "30"): "alertd: '30' is not a lifetime: give a positive number and a "
                                "unit, e.g. 30d, 12h, 90m\n",
        ("--expires-at", "2020-01-01T00:00:00Z"): "alertd: '2020-01-01T00:00:00Z' is in the "
                                                  "past\n",
        ("--expires-at", "2999-01-01T00:00:00"): "alertd: '2999-01-01T00:00:00' needs its UTC "
                                                 "offset, e.g. +09:00 or Z\n",
    }
    for args, message in cases.items():
        out = alertd(db_url, "staff-token", "create", "--role", "admin", *args)
        assert (out.returncode, out.stderr) == (1, message)
    assert await pool.fetchval("SELECT count(*) FROM staff_tokens") == 0


async def test_token_changes_from_the_cli_are_on_the_audit_trail(db_url: str,
                                                                 pool: asyncpg.Pool) -> None:
    """`staff-token create` and `revoke` each leave one entry (via cli, the token's id as
    target, never its secret); revoking a revoked token adds none."""
    token = create(db_url, "--role", "operator", "--label", "夜間当番")
    (info,) = listed(db_url)
    assert alertd(db_url, "staff-token", "revoke", info["id"]).returncode == 0
    assert alertd(db_url, "staff-token", "revoke", info["id"]).returncode == 0
    rows = await pool.fetch("SELECT action, via, target, staff_id, after FROM audit_log"
                            " ORDER BY id")
    assert [(r["action"], r["via"], r["target"], r["staff_id"]) for r in rows] == [
        ("token.create", "cli", info["id"], None), ("token.revoke", "cli", info["id"], None)]
    assert (rows[0]["after"]["role"], rows[0]["after"]["label"]) == ("operator", "夜間当番")
    assert rows[1]["after"]["state"] == "revoked"
    assert token not in json.dumps([r["after"] for r in rows])
