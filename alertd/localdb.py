"""Development database: use the configured server, or start a private PostgreSQL cluster."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from alertd import errors

PRIVATE_PORT = 55432


async def _reachable(url: str) -> bool:
    try:
        conn = await asyncpg.connect(_with_db(url, "postgres"), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def create_database(url: str) -> None:
    """Create the database named in the URL when it does not exist."""
    name = urlsplit(url).path.lstrip("/") or "alertd"
    conn = await asyncpg.connect(_with_db(url, "postgres"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if
                   Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise errors.DatabaseUnavailable(
        "no PostgreSQL server reachable and no PostgreSQL binaries (initdb) found; "
        "install PostgreSQL or set ALERTD_DATABASE_URL"
    )


def _as_user() -> list[str]:
    # PostgreSQL refuses to run as root: run the private cluster as an unprivileged user.
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    raise errors.DatabaseUnavailable("running as root and no unprivileged user to run PostgreSQL")


def start_private(directory: str, port: int = PRIVATE_PORT) -> str:
    """Start (creating if needed) a private cluster in `directory`; return its server URL."""
    data = Path(directory).resolve()
    bindir = _bindir()
    prefix = _as_user()
    data.parent.mkdir(parents=True, exist_ok=True)
    if prefix:
        data.mkdir(parents=True, exist_ok=True)
        user = prefix[2]
        shutil.chown(data, user=user)
        data.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
                       check=True, stdout=subprocess.DEVNULL)
    status = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "status"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if status.returncode != 0:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "server.log"),
             "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
            check=True, stdout=subprocess.DEVNULL,
        )
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


async def ensure(url: str, directory: str) -> str:
    """A reachable database URL: the configured server, else a private cluster; created."""
    if not await _reachable(url):
        server = await asyncio.to_thread(start_private, directory)
        name = urlsplit(url).path.lstrip("/") or "alertd"
        url = _with_db(server, name)
    await create_database(url)
    return url
