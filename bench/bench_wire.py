"""Client CPU per request of the push transports: the same APNs- and FCM-shaped requests sent
at the sandbox by each client, measured in the same run.

- APNs: plain aioapns (raw_push_loop's client, 4 connections) against alertd's CurlWire as the
  APNs sender builds it (apns.curl_wire: `--max-connections` connections, HTTP/2 multiplexed,
  one provider JWT), the sender's own headers.
- FCM: a plain aiohttp session (HTTP/1.1, as raw_push_loop) against CurlWire as the FCM sender
  builds it, over HTTP/1.1 and over HTTP/2 (prior knowledge to the sandbox's plain-http FCM,
  fcm.cleartext_http2; FCM itself negotiates HTTP/2 over https).

Each client sends `--requests` requests (fresh tokens) with `--concurrency` in flight; rounds
alternate the clients and the medians are printed. CPU is read from /proc for this process
(the client) and for the sandbox process (which serves every client and costs about as much
per request: on 2 cores it caps the rate, so compare CPU, not only requests per second).
Exactly `--requests` recorded requests per run are checked in the sandbox. Not a test:

    .venv/bin/python bench/bench_wire.py [--requests 20000] [--concurrency 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aioapns
import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from raw_push_loop import _APNS_MESSAGE, _bounded

from alertd import logs, settings
from alertd.delivery import apns, fcm, push, wire
from alertd.sandbox.handle import SandboxProcess

logs.configure("console", "warning")

Push = Callable[[str], Awaitable[bool]]


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Client:
    """One transport under test: how to open it, send one request, close it."""

    name: str
    service: str
    opened: Callable[[], Awaitable[tuple[Push, Callable[[], Awaitable[None]]]]]


def apns_message(device: str) -> push.PushMessage:
    return push.PushMessage(
        delivery_id=1, apns_id=str(uuid.uuid4()), platform="ios", token=device, kind="order",
        alert_id="bench", level=4, title="避難指示", body="ベンチマーク", collapse_id="bench",
        thread_id="order-bench", expires_at=datetime.now(UTC) + timedelta(hours=1))


def clients(cfg: settings.Settings, max_connections: int, concurrency: int) -> list[Client]:
    """aioapns, curl (APNs), aiohttp, curl (FCM)."""
    a = dataclasses.replace(cfg.apns, max_connections=max_connections, concurrency=concurrency)
    key = Path(a.key_file).read_text()
    body = push.encode_apns(_APNS_MESSAGE)
    account = fcm.load_service_account(cfg.fcm.service_account_file)
    path = f"/v1/projects/{account.project_id}/messages:send"

    async def aioapns_client() -> tuple[Push, Callable[[], Awaitable[None]]]:
        client = aioapns.APNs(key=key, key_id=a.key_id,
                              team_id=a.team_id, topic=a.topic, max_connections=4,
                              max_connection_attempts=2, ssl_context=apns.ssl_context(a.ca_file))
        client.pool.protocol_class = apns.protocol_class(a.host, a.port, False)

        async def send(device: str) -> bool:
            request = aioapns.NotificationRequest(
                device_token=device, message=_APNS_MESSAGE, notification_id=str(uuid.uuid4()),
                time_to_live=3600, priority=10, collapse_key="bench",
                push_type=aioapns.PushType.ALERT)
            return (await client.send_notification(request)).is_successful

        async def close() -> None:
            client.pool.close()

        return send, close

    async def curl_apns() -> tuple[Push, Callable[[], Awaitable[None]]]:
        tokens = apns.ProviderTokens(key, a.key_id, a.team_id)
        sender = apns.ApnsSender(a)  # only for its headers
        line = apns.curl_wire(a, "")

        async def send(device: str) -> bool:
            headers = sender.headers(apns_message(device))
            headers["authorization"] = f"bearer {tokens.current}"
            answer = await line.request("POST", "/3/device/" + device, headers, body, 10.0)
            return answer.status == 200

        return send, line.close

    async def fcm_token() -> str:
        async with aiohttp.ClientSession() as session:
            form = {"grant_type": fcm.JWT_BEARER,
                    "assertion": fcm.assertion(account, time.time())}
            async with session.post(account.token_uri, data=form) as resp:
                return str((await resp.json())["access_token"])

    def fcm_body(device: str) -> bytes:
        return json.dumps({"message": {
            "token": device, "notification": {"title": "避難指示", "body": "ベンチマーク"},
            "data": {"alert_id": "bench", "kind": "order", "level": "4"},
            "android": {"priority": "HIGH", "ttl": "3600s", "collapse_key": "bench"}}},
            ensure_ascii=False).encode()

    async def aiohttp_fcm() -> tuple[Push, Callable[[], Awaitable[None]]]:
        headers = {"Authorization": f"Bearer {await fcm_token()}",
                   "Content-Type": "application/json"}
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
        url = cfg.fcm.endpoint + path

        async def send(device: str) -> bool:
            async with session.post(url, data=fcm_body(device), headers=headers) as resp:
                await resp.read()
                return resp.status == 200

        return send, session.close

    def curl_fcm(http2: str) -> Callable[[], Awaitable[tuple[Push, Callable[[],
                                                                             Awaitable[None]]]]]:
        async def opened() -> tuple[Push, Callable[[], Awaitable[None]]]:
            headers = {"Authorization": f"Bearer {await fcm_token()}",
                       "Content-Type": "application/json; charset=utf-8"}
            line = wire.CurlWire(cfg.fcm.endpoint, http2=http2,
                                 max_connections=concurrency + 1, max_streams=concurrency + 1)

            async def send(device: str) -> bool:
                answer = await line.request("POST", path, headers, fcm_body(device), 10.0)
                return answer.status == 200

            return send, line.close
        return opened

    return [Client("aioapns", "apns", aioapns_client), Client("curl", "apns", curl_apns),
            Client("aiohttp", "fcm", aiohttp_fcm), Client("curl-h1", "fcm", curl_fcm("tls")),
            Client("curl-h2", "fcm", curl_fcm("prior"))]


async def measure(client: Client, sb: SandboxProcess, http: aiohttp.ClientSession,
                  requests: int, concurrency: int, tag: str) -> tuple[float, float, float]:
    """(requests per second, client µs CPU per request, sandbox µs CPU per request)."""
    await sb.clear(http)
    send, close = await client.opened()
    tokens = [f"{tag}-{i:06d}" for i in range(requests)]
    try:
        await send(f"{tag}-warm")  # the connection and TLS set-up are not what is measured
        await sb.clear(http)
        assert sb.proc is not None
        me, sandbox = cpu_s(os.getpid()), cpu_s(sb.proc.pid)
        started = time.perf_counter()
        accepted = await _bounded(send, tokens, concurrency)
        elapsed = time.perf_counter() - started
        me, sandbox = cpu_s(os.getpid()) - me, cpu_s(sb.proc.pid) - sandbox
    finally:
        await close()
    stats = await sb.stats(http)
    if accepted != requests or stats["deliveries"] != requests:
        raise RuntimeError(f"{client.name}: {accepted} accepted, the sandbox recorded"
                           f" {stats['deliveries']}, not {requests}")
    return requests / elapsed, me / requests * 1e6, sandbox / requests * 1e6


async def main(requests: int, concurrency: int, rounds: int, max_connections: int) -> None:
    with tempfile.TemporaryDirectory(prefix="alertd-bench-wire-") as tmp:
        sb = await SandboxProcess.launch(Path(tmp), Path(tmp) / "sandbox.log")
        try:
            cfg = settings.load([sb.config], environ={})
            results: dict[str, list[tuple[float, float, float]]] = {}
            async with aiohttp.ClientSession() as http:
                for r in range(rounds):
                    for c in clients(cfg, max_connections, concurrency):
                        key = f"{c.service} {c.name}"
                        run = await measure(c, sb, http, requests, concurrency,
                                            f"{c.service}-{c.name}-{r}")
                        results.setdefault(key, []).append(run)
                        print(f"round {r + 1} {key:13} {run[0]:7,.0f} req/s  client"
                              f" {run[1]:4.0f} us CPU/req  sandbox {run[2]:4.0f} us CPU/req",
                              flush=True)
        finally:
            sb.stop()
    print(f"\n{requests:,} requests per run, {concurrency} in flight, {rounds} rounds,"
          f" cpus {os.cpu_count()}; medians (APNs curl: {max_connections} connections):")
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3))
           for k, v in results.items()}
    for key, (rate, client, sandbox) in med.items():
        print(f"{key:13} {rate:7,.0f} req/s  client {client:4.0f} us CPU/req"
              f"  sandbox {sandbox:4.0f} us CPU/req")
    print(f"client CPU curl/aioapns {med['apns curl'][1] / med['apns aioapns'][1]:.2f};"
          f" FCM curl HTTP/1.1 / aiohttp {med['fcm curl-h1'][1] / med['fcm aiohttp'][1]:.2f},"
          f" curl HTTP/2 / aiohttp {med['fcm curl-h2'][1] / med['fcm aiohttp'][1]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-connections", type=int, default=1,
                        help="apns.max_connections for the curl APNs client")
    options = parser.parse_args()
    asyncio.run(main(options.requests, options.concurrency, options.rounds,
                     options.max_connections))
