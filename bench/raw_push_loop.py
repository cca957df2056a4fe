"""Baseline: the plainest aioapns + aiohttp loop pushing straight at the sandbox.

The fan-out benchmark compares alertd's dispatcher against this number, measured in the same
run. `python bench/raw_push_loop.py` starts a sandbox process and prints msgs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aioapns
import aiohttp

from alertd.delivery import apns, fcm
from alertd.sandbox.handle import SandboxProcess

_APNS_MESSAGE = {
    "aps": {"alert": {"title": "避難指示", "body": "ベンチマーク"}, "sound": "default"},
    "alert_id": "bench",
    "kind": "order",
    "level": 4,
}


async def raw_loop(
    sandbox_dir: Path,
    ios_tokens: Sequence[str],
    android_tokens: Sequence[str],
    concurrency: int,
) -> float:
    """Push one message per token (concurrency in flight per service); elapsed seconds."""
    config, key = await asyncio.to_thread(_read_config, sandbox_dir)
    a, f = config["apns"], config["fcm"]
    client = aioapns.APNs(
        key=key,
        key_id=a["key_id"],
        team_id=a["team_id"],
        topic=a["topic"],
        max_connections=4,
        max_connection_attempts=2,
        ssl_context=apns.ssl_context(a["ca_file"]),
    )
    client.pool.protocol_class = apns.protocol_class(a["host"], a["port"], False)
    account = fcm.load_service_account(f["service_account_file"])
    url = f"{f['endpoint']}/v1/projects/{account.project_id}/messages:send"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        token = await _access_token(session, account)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        async def push_ios(device: str) -> bool:
            request = aioapns.NotificationRequest(
                device_token=device,
                message=_APNS_MESSAGE,
                notification_id=str(uuid.uuid4()),
                time_to_live=3600,
                priority=10,
                collapse_key="bench",
                push_type=aioapns.PushType.ALERT,
            )
            result = await client.send_notification(request)
            return result.is_successful

        async def push_android(device: str) -> bool:
            body = {
                "message": {
                    "token": device,
                    "notification": {"title": "避難指示", "body": "ベンチマーク"},
                    "data": {"alert_id": "bench", "kind": "order", "level": "4"},
                    "android": {"priority": "HIGH", "ttl": "3600s", "collapse_key": "bench"},
                }
            }
            async with session.post(url, data=json.dumps(body), headers=headers) as resp:
                await resp.read()
                return resp.status == 200

        started = time.perf_counter()
        results = await asyncio.gather(
            _bounded(push_ios, ios_tokens, concurrency),
            _bounded(push_android, android_tokens, concurrency),
        )
        elapsed = time.perf_counter() - started
    client.pool.close()
    failed = sum(
        len(tokens) - ok for tokens, ok in zip((ios_tokens, android_tokens), results, strict=True)
    )
    if failed:
        raise RuntimeError(f"{failed} pushes were not accepted by the sandbox")
    return elapsed


def _read_config(sandbox_dir: Path) -> tuple[dict[str, Any], str]:
    config = tomllib.loads((sandbox_dir / "sandbox.toml").read_text(encoding="utf-8"))
    return config, Path(config["apns"]["key_file"]).read_text(encoding="utf-8")


async def _bounded(
    push: Callable[[str], Coroutine[Any, Any, bool]], tokens: Sequence[str], concurrency: int
) -> int:
    """Run push over tokens with at most `concurrency` in flight; number accepted."""
    todo = iter(tokens)
    accepted = 0

    async def worker() -> None:
        nonlocal accepted
        for device in todo:
            ok = await push(device)  # not `accepted += await ...`: that reads before awaiting
            accepted += ok

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return accepted


async def _access_token(session: aiohttp.ClientSession, account: fcm.ServiceAccount) -> str:
    form = {"grant_type": fcm.JWT_BEARER, "assertion": fcm.assertion(account, time.time())}
    async with session.post(account.token_uri, data=form) as resp:
        resp.raise_for_status()
        body = await resp.json()
    return str(body["access_token"])


@contextlib.asynccontextmanager
async def sandbox_process(directory: Path, deadline_s: float = 30.0) -> AsyncIterator[int]:
    """Run `alertd sandbox` until the block ends; yields the port base."""
    sb = await SandboxProcess.launch(directory, directory / "sandbox.log", deadline_s=deadline_s)
    try:
        yield sb.base
    finally:
        sb.stop()


async def _main(total: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="alertd-bench-") as tmp:
        async with sandbox_process(Path(tmp)) as base:
            half = total // 2
            ios = [f"ios-{i:06d}" for i in range(half)]
            android = [f"android-{i:06d}" for i in range(total - half)]
            elapsed = await raw_loop(Path(tmp), ios, android, concurrency)
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{base + 2}/stats") as resp:
                    stats = await resp.json()
    print(
        f"raw loop: {total} pushes ({len(ios)} APNs + {len(android)} FCM), "
        f"concurrency {concurrency} per service, cpus {os.cpu_count()}"
    )
    print(f"sandbox received: {stats['received']}")
    print(f"elapsed {elapsed:.2f} s  ->  {total / elapsed:,.0f} msgs/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    options = parser.parse_args()
    asyncio.run(_main(options.messages, options.concurrency))
