"""The real ApnsSender (aioapns, HTTP/2 over TLS) and FcmSender against the sandbox fakes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from alertd import devices, settings
from alertd.delivery import apns, fcm, outbox, outcomes, push, wire
from alertd.delivery.dispatcher import Dispatcher
from alertd.sandbox import material
from alertd.sandbox.handle import free_port_base
from alertd.sandbox.server import Sandbox
from tests.pgproxy import PausableProxy
from tests.waiting import DEADLINE, wait_for

ORDER = "ord-20260701-001"


@dataclass(frozen=True)
class Running:
    sandbox: Sandbox
    settings: settings.Settings

    @property
    def inspect(self) -> str:
        return self.sandbox.inspect_url


@pytest.fixture(scope="module")
async def plain(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    directory = tmp_path_factory.mktemp("sandbox")
    for _ in range(5):
        sandbox = Sandbox(directory, free_port_base())
        try:
            await sandbox.start()
            break
        except OSError:
            continue
    else:
        raise RuntimeError("could not start the sandbox")
    loaded = settings.load([sandbox.config_path], environ={})
    yield Running(sandbox, loaded)
    await sandbox.close()


# apns.transport, fcm.transport, fcm.cleartext_http2 (the sandbox's FCM is plain http)
TRANSPORTS = {"curl": ("curl", "curl", True), "curl-http1.1": ("curl", "curl", False),
              "aioapns+aiohttp": ("aioapns", "aiohttp", False)}


@pytest.fixture(params=list(TRANSPORTS))
def running(plain: Running, request: pytest.FixtureRequest) -> Running:
    """The sandbox, with the settings naming one of the transports (apns, fcm): every sender
    test runs over both."""
    apns_transport, fcm_transport, cleartext_http2 = TRANSPORTS[request.param]
    cfg = plain.settings
    return Running(plain.sandbox, dataclasses.replace(
        cfg, apns=dataclasses.replace(cfg.apns, transport=apns_transport),
        fcm=dataclasses.replace(cfg.fcm, transport=fcm_transport,
                                cleartext_http2=cleartext_http2)))


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def token(prefix: str = "dev-") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def message(device: str, platform: push.Platform = "ios", **changes: Any) -> push.PushMessage:
    delivery = int(uuid.uuid4().int % 10**9)
    msg = push.PushMessage(
        delivery_id=delivery,
        apns_id=str(uuid.uuid4()),
        platform=platform,
        token=device,
        kind="order",
        alert_id=ORDER,
        level=4,
        title="【警戒レベル4】避難指示",
        body="渡利地区に避難指示。渡利小学校へ避難してください。",
        collapse_id=ORDER,
        thread_id=push.thread_id_for(ORDER),
        expires_at=(datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0),
    )
    return dataclasses.replace(msg, **changes)


async def deliveries(running: Running, device: str | None = None) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{running.inspect}/deliveries") as resp:
            assert resp.status == 200
            entries: list[dict[str, Any]] = await resp.json()
    return [e for e in entries if device is None or e["token"] == device]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = DEADLINE) -> None:
    """Wait until check() holds, failing after `within` seconds."""
    await wait_for(check, "the condition", deadline=within)


S = TypeVar("S", apns.ApnsSender, fcm.FcmSender)
Sender = apns.ApnsSender | fcm.FcmSender


@contextlib.asynccontextmanager
async def started(sender: S) -> AsyncIterator[S]:
    """A sender started for the block and closed after it."""
    await sender.start()
    try:
        yield sender
    finally:
        await sender.close()


def apns_sender(config: settings.Apns) -> contextlib.AbstractAsyncContextManager[apns.ApnsSender]:
    """A started APNs sender."""
    return started(apns.ApnsSender(config))


def fcm_sender(config: settings.Fcm) -> contextlib.AbstractAsyncContextManager[fcm.FcmSender]:
    """A started FCM sender."""
    return started(fcm.FcmSender(config))


@dataclass
class Silent:
    """A TCP server that accepts connections and never answers."""

    port: int
    reached: asyncio.Queue[int]  # one entry per connection, when its first bytes arrive


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[Silent]:
    """A TCP server that reads whatever comes and never answers."""
    reached: asyncio.Queue[int] = asyncio.Queue()
    count = 0

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        count += 1
        mine, first = count, True
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                if first:
                    reached.put_nowait(mine)
                    first = False
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield Silent(int(server.sockets[0].getsockname()[1]), reached)
    finally:
        server.close()


async def times_out_by_its_own_timeout(
        make: Callable[[float], contextlib.AbstractAsyncContextManager[Sender]],
        msg: push.PushMessage, silent: Silent) -> push.Outcome:
    """Send `msg` through a sender with a long timeout_s, and once its request has reached the
    silent server, through one with a short timeout_s: the short one must give up (its outcome
    is returned) while the long one, which started first, is still waiting. The order of the
    two events shows that timeout_s bounds the wait, whatever the machine's speed."""
    async with make(3600.0) as patient, make(0.5) as hasty:
        waiting = asyncio.create_task(patient.send(msg))
        try:
            assert await asyncio.wait_for(silent.reached.get(), DEADLINE) == 1
            outcome = await asyncio.wait_for(hasty.send(msg), DEADLINE)
            assert silent.reached.get_nowait() == 2  # the short one's request got there too
            assert not waiting.done(), "the sender with the long timeout gave up first"
        finally:
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting
    return outcome


# --- sandbox files ------------------------------------------------------------------------


async def test_sandbox_writes_a_loadable_config_and_credentials(plain: Running) -> None:
    """sandbox.toml loads as alertd settings and names the CA, .p8 key and service account."""
    a, f = plain.settings.apns, plain.settings.fcm
    assert (a.host, a.port, a.topic) == ("127.0.0.1", plain.sandbox.apns_port, material.TOPIC)
    assert Path(a.ca_file).is_absolute() and Path(a.ca_file).name == "ca.pem"
    p8 = read(a.key_file)
    assert p8.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(p8, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert f.endpoint == f"http://127.0.0.1:{plain.sandbox.fcm_port}"
    account = json.loads(read(f.service_account_file))
    assert account["type"] == "service_account"
    assert account["project_id"] == "alertd-sandbox"
    assert account["token_uri"] == f"http://127.0.0.1:{plain.sandbox.fcm_port}/token"
    assert isinstance(
        serialization.load_pem_private_key(account["private_key"].encode(), None),
        rsa.RSAPrivateKey,
    )


# --- APNs ---------------------------------------------------------------------------------


async def test_apns_push_is_sent_with_contract_headers_and_payload(running: Running) -> None:
    """A normal token is sent over HTTP/2 with the contract's headers and payload."""
    device = token()
    msg = message(device)
    async with apns_sender(running.settings.apns) as sender:
        outcome = await sender.send(msg)
    assert outcome == push.Outcome("sent", provider_id=msg.apns_id)
    [entry] = await deliveries(running, device)
    headers = entry["headers"]
    assert (entry["service"], entry["status"]) == ("apns", 200)
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == ORDER
    assert headers["apns-topic"] == "jp.fukushima.bousai"
    assert headers["apns-id"] == msg.apns_id
    assert abs(int(headers["apns-expiration"]) - msg.expires_at.timestamp()) <= 2
    assert headers["authorization"] == "<redacted>"
    assert entry["payload"] == push.apns_payload(msg)
    assert datetime.fromisoformat(entry["at"]).tzinfo is not None


async def test_apns_tip_goes_out_with_priority_5(running: Running) -> None:
    """Tips are sent with apns-priority 5."""
    device = token()
    async with apns_sender(running.settings.apns) as sender:
        outcome = await sender.send(message(device, kind="tip", level=None, priority=5))
    assert outcome.status == "sent"
    [entry] = await deliveries(running, device)
    assert entry["headers"]["apns-priority"] == "5"


@pytest.mark.parametrize(("prefix", "status", "reason"),
                         [("gone-", 410, "Unregistered"), ("bad-", 400, "BadDeviceToken")])
async def test_apns_dead_tokens_are_invalid(
    running: Running, prefix: str, status: int, reason: str
) -> None:
    """gone- and bad- tokens come back as invalid_token with Apple's reason."""
    device = token(prefix)
    async with apns_sender(running.settings.apns) as sender:
        outcome = await sender.send(message(device))
    assert outcome == push.Outcome("invalid_token", reason=reason)
    assert [e["status"] for e in await deliveries(running, device)] == [status]


async def test_apns_busy_then_down_follow_the_script(running: Running) -> None:
    """busy- is retried once then sent; down- is retried twice then sent."""
    busy, down = token("busy-"), token("down-")
    async with apns_sender(running.settings.apns) as sender:
        busy_outcomes = [(await sender.send(message(busy))).status for _ in range(2)]
        down_outcomes = [(await sender.send(message(down))).status for _ in range(3)]
    assert busy_outcomes == ["retry", "sent"]
    assert down_outcomes == ["retry", "retry", "sent"]
    assert [e["status"] for e in await deliveries(running, busy)] == [429, 200]
    assert [e["status"] for e in await deliveries(running, down)] == [503, 503, 200]


async def test_apns_many_error_bodies_on_one_connection(running: Running) -> None:
    """Over 64 KiB of error bodies on one connection all arrive (flow control is returned)."""
    config = dataclasses.replace(running.settings.apns, max_connections=1, timeout_s=30.0)
    devices = [token("gone-") for _ in range(1600)]
    assert running.sandbox.apns is not None
    before = running.sandbox.apns.accepted
    async with apns_sender(config) as sender:
        results = await asyncio.gather(*(sender.send(message(d)) for d in devices))
    assert {r.status for r in results} == {"invalid_token"}
    # Without the window update aioapns would stall until its 10 s idle timer reconnects.
    assert running.sandbox.apns.accepted == before + 1


async def test_apns_certificate_auth_is_accepted(running: Running) -> None:
    """Certificate auth (apns_client.pem signed by the sandbox CA) works instead of a JWT."""
    client_pem = running.sandbox.directory / material.APNS_CLIENT_CERT
    config = dataclasses.replace(running.settings.apns, key_file="", cert_file=str(client_pem))
    device = token()
    async with apns_sender(config) as sender:
        assert (await sender.send(message(device))).status == "sent"
    [entry] = await deliveries(running, device)
    assert "authorization" not in entry["headers"]


async def test_apns_jwt_signed_by_a_stranger_is_refused(running: Running, tmp_path: Path) -> None:
    """A provider JWT not signed with the sandbox key is refused as InvalidProviderToken."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "stranger.p8"
    key_file.write_bytes(stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    config = dataclasses.replace(running.settings.apns, key_file=str(key_file))
    device = token()
    async with apns_sender(config) as sender:
        outcome = await sender.send(message(device))
    assert outcome.reason == "InvalidProviderToken"
    assert [e["status"] for e in await deliveries(running, device)] == [403]


async def test_apns_expired_message_is_not_sent(running: Running) -> None:
    """A message past its expiry fails as expired without reaching APNs."""
    device = token()
    expired = message(device, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    async with apns_sender(running.settings.apns) as sender:
        assert await sender.send(expired) == push.Outcome("failed", reason="expired")
    assert await deliveries(running, device) == []


async def test_apns_silent_server_times_out_as_retry(running: Running) -> None:
    """A server that never answers yields a retry after the sender's own timeout_s (a sender
    with a shorter timeout_s gives up first)."""
    async with silent_server() as silent:
        def make(timeout_s: float) -> contextlib.AbstractAsyncContextManager[apns.ApnsSender]:
            return apns_sender(dataclasses.replace(running.settings.apns, port=silent.port,
                                                   timeout_s=timeout_s))
        outcome = await times_out_by_its_own_timeout(make, message(token()), silent)
    assert outcome == push.Outcome("retry", reason="timeout")


async def test_apns_late_answer_after_a_timeout_leaves_the_connection_usable(
    running: Running,
) -> None:
    """A slow- answer arriving after our timeout is dropped; the same connection sends on."""
    assert running.sandbox.apns is not None
    fake = running.sandbox.apns
    config = dataclasses.replace(running.settings.apns, timeout_s=0.3, max_connections=1)
    before = fake.accepted
    async with apns_sender(config) as sender:
        late = await sender.send(message(token("slow-")))

        async def answered() -> bool:
            return fake.delayed == 0

        await eventually(answered)
        after = await sender.send(message(token()))
    assert late == push.Outcome("retry", reason="timeout")
    assert after.status == "sent"
    assert fake.accepted == before + 1


async def test_apns_wrong_ca_fails_before_sending(running: Running) -> None:
    """A CA file that did not sign the server's certificate (the system store, here) refuses
    the connection: a retry, and nothing reaches the server."""
    config = dataclasses.replace(running.settings.apns, ca_file=wire.default_ca_file(),
                                 timeout_s=5.0)
    device = token()
    async with apns_sender(config) as sender:
        outcome = await sender.send(message(device))
    assert outcome.status == "retry"
    assert outcome.reason != "timeout"  # refused, not waited out
    assert await deliveries(running, device) == []


@contextlib.asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[PausableProxy]:
    """A TCP proxy to 127.0.0.1:port whose connections a test can drop."""
    proxy = await PausableProxy(f"tcp://127.0.0.1:{port}").start()
    try:
        yield proxy
    finally:
        await proxy.close()


async def dropped_mid_flight(sender: Sender, running: Running, platform: push.Platform,
                             proxy: PausableProxy) -> tuple[push.Outcome, push.Outcome, int]:
    """A slow- push whose connection drops after the server got it (and before its answer),
    then a normal push through the same sender: both outcomes, and how many requests for
    the slow- push the server received."""
    device = token("slow-")
    waiting = asyncio.create_task(sender.send(message(device, platform)))

    async def arrived() -> bool:
        return len(await deliveries(running, device)) == 1

    await eventually(arrived)
    proxy.drop()
    lost = await asyncio.wait_for(waiting, DEADLINE)
    again = await asyncio.wait_for(sender.send(message(token(), platform)), DEADLINE)
    return lost, again, len(await deliveries(running, device))


async def test_apns_connection_dropped_mid_flight_is_a_retry(running: Running) -> None:
    """A connection dropped while a push awaits its answer makes that push a retry at once
    (not after timeout_s); the next push opens a new connection and is sent. aioapns resends
    the push on a new connection itself (MAX_CONNECTION_ATTEMPTS), so there it is sent."""
    async with proxy_to(running.settings.apns.port) as proxy:
        config = dataclasses.replace(running.settings.apns, port=proxy.port, timeout_s=30.0)
        async with apns_sender(config) as sender:
            lost, again, requests = await dropped_mid_flight(sender, running, "ios", proxy)
    if config.transport == "aioapns":
        assert (lost.status, requests) == ("sent", 2)
    else:
        assert lost.status == "retry" and lost.reason != "timeout"
        assert requests == 1
    assert again.status == "sent"


async def test_apns_curl_shares_one_provider_token(plain: Running) -> None:
    """The curl transport signs one provider token for many pushes (APNs verifies it once), and
    signs a new one when APNs calls it expired."""
    fake = plain.sandbox.apns
    assert fake is not None
    config = dataclasses.replace(plain.settings.apns, transport="curl")
    before = fake.verifier.verified
    async with apns_sender(config) as sender:
        results = await asyncio.gather(*(sender.send(message(token())) for _ in range(50)))
        tokens = sender.provider_tokens
        assert tokens is not None
        first = tokens.current
        tokens.expired("not the current token")  # only the current token's expiry counts
        tokens.expired(first)

        async def resigned() -> bool:
            return tokens.current != first

        await eventually(resigned)
        assert (await sender.send(message(token()))).status == "sent"
    assert {r.status for r in results} == {"sent"}
    assert tokens.signed == 2
    assert fake.verifier.verified == before + 2


async def test_curl_wire_cancel_takes_one_stream_off_a_shared_connection(plain: Running) -> None:
    """Many requests multiplex on one HTTP/2 connection; a cancelled await takes its request
    off the wire (the stream is reset) and the same connection carries the next one."""
    fake = plain.sandbox.apns
    assert fake is not None
    config = dataclasses.replace(plain.settings.apns, transport="curl", max_connections=1)
    key = read(config.key_file).decode()
    tokens = apns.ProviderTokens(key, config.key_id, config.team_id)
    sender = apns.ApnsSender(config)
    before = fake.accepted
    line = apns.curl_wire(config, "")

    async def post(device: str, timeout_s: float = 30.0) -> wire.Response:
        msg = message(device)
        headers = dict(sender.headers(msg), authorization=f"bearer {tokens.current}")
        return await line.request("POST", f"/3/device/{device}", headers,
                                  push.encode_apns(push.apns_payload(msg)), timeout_s)

    try:
        answers = await asyncio.gather(*(post(token()) for _ in range(300)))
        slow = asyncio.create_task(post(token("slow-")))

        async def held() -> bool:
            return fake.delayed == 1

        await eventually(held)
        assert line.in_flight == 1
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        assert line.in_flight == 0
        after = await post(token())
        timed_out = post(token("slow-"), timeout_s=0.2)
        with pytest.raises(TimeoutError):
            await timed_out
        assert line.in_flight == 0
    finally:
        await line.close()
    assert {a.status for a in answers} == {200}
    assert after.status == 200
    assert fake.accepted == before + 1


# --- FCM ----------------------------------------------------------------------------------


async def test_fcm_push_uses_the_oauth_token_and_contract_body(running: Running) -> None:
    """The sender fetches an access token and posts the contract's HTTP v1 body with it."""
    device = token()
    msg = message(device, "android")
    assert running.sandbox.fcm is not None
    async with fcm_sender(running.settings.fcm) as sender:
        assert sender.access_token is not None
        assert sender.access_token in running.sandbox.fcm.tokens  # issued by the fake
        outcome = await sender.send(msg)
    assert outcome.status == "sent"
    assert (outcome.provider_id or "").startswith("projects/alertd-sandbox/messages/")
    [entry] = await deliveries(running, device)
    assert (entry["service"], entry["status"]) == ("fcm", 200)
    assert entry["headers"]["authorization"] == "<redacted>"
    sent = entry["payload"]["message"]
    expected = push.fcm_message(msg)["message"]
    assert abs(int(sent["android"].pop("ttl")[:-1]) - int(expected["android"].pop("ttl")[:-1])) <= 2
    assert sent == expected


async def test_fcm_over_http2_multiplexes_on_one_connection(running: Running) -> None:
    """curl with cleartext_http2 speaks HTTP/2 to the sandbox's FCM (h2c) and carries every
    concurrent send and the token request on one connection; the others speak HTTP/1.1."""
    fake = running.sandbox.fcm
    assert fake is not None
    before = fake.stats()["fcm_h2_connections_accepted"]
    devices = [token() for _ in range(40)]
    async with fcm_sender(running.settings.fcm) as sender:
        outcomes_ = await asyncio.gather(*(sender.send(message(d, "android")) for d in devices))
        open_h2 = fake.stats()["fcm_h2_connections"]
    assert [o.status for o in outcomes_] == ["sent"] * len(devices)
    got = {e["token"] for e in await deliveries(running) if e["service"] == "fcm"}
    assert got >= set(devices)
    http2 = running.settings.fcm.transport == "curl" and running.settings.fcm.cleartext_http2
    assert fake.stats()["fcm_h2_connections_accepted"] - before == (1 if http2 else 0)
    assert open_h2 == (1 if http2 else 0)


@pytest.mark.parametrize(("prefix", "status"), [("gone-", 404), ("bad-", 400)])
async def test_fcm_dead_tokens_are_invalid(running: Running, prefix: str, status: int) -> None:
    """UNREGISTERED and an invalid registration token come back as invalid_token."""
    device = token(prefix)
    async with fcm_sender(running.settings.fcm) as sender:
        outcome = await sender.send(message(device, "android"))
    assert outcome.status == "invalid_token"
    assert [e["status"] for e in await deliveries(running, device)] == [status]


async def test_fcm_down_is_retried_twice_then_sent(running: Running) -> None:
    """UNAVAILABLE (503) is retried; the third attempt is sent."""
    device = token("down-")
    async with fcm_sender(running.settings.fcm) as sender:
        statuses = [(await sender.send(message(device, "android"))).status for _ in range(3)]
    assert statuses == ["retry", "retry", "sent"]


async def test_fcm_quota_exceeded_pauses_every_send(running: Running) -> None:
    """QUOTA_EXCEEDED retries with Retry-After and holds back all sends until the pause ends."""
    busy, other = token("busy-"), token()
    async with fcm_sender(running.settings.fcm) as sender:
        first = await sender.send(message(busy, "android"))
        pause = sender.paused_for()
        second = await sender.send(message(other, "android"))
        third = await sender.send(message(busy, "android"))
        assert sender.paused_for() == 0.0
    assert (first.status, first.retry_after, first.pause_service) == ("retry", 1.0, True)
    assert 0.0 < pause <= 1.0  # paused for Retry-After, never longer
    assert second.status == "sent" and third.status == "sent"
    [refused, _] = await deliveries(running, busy)
    [entry] = await deliveries(running, other)
    assert (refused["status"], entry["status"]) == (429, 200)
    # The sandbox's own clock: `other` reached it only once the pause (1 s) was over. Slowness
    # only widens the gap, so this holds on a busy machine too.
    held = datetime.fromisoformat(entry["at"]) - datetime.fromisoformat(refused["at"])
    assert held >= timedelta(seconds=1.0)


async def test_fcm_rejected_access_token_is_refreshed(running: Running) -> None:
    """A 401 (revoked access token) retries and makes the sender fetch a new token."""
    async with fcm_sender(running.settings.fcm) as sender:
        old = sender.access_token
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{running.inspect}/fcm/revoke-tokens") as resp:
                assert resp.status == 200
        outcome = await sender.send(message(token(), "android"))

        async def refreshed() -> bool:
            return sender.access_token not in (None, old)

        await eventually(refreshed)
        again = await sender.send(message(token(), "android"))
    assert outcome.status == "retry" and outcome.reason.startswith("UNAUTHENTICATED")
    assert again.status == "sent"


async def test_fcm_access_token_is_renewed_before_it_expires(running: Running) -> None:
    """The background task fetches a new access token at 80% of its lifetime."""
    fake = running.sandbox.fcm
    assert fake is not None
    fake.token_ttl_s = 1
    try:
        async with fcm_sender(running.settings.fcm) as sender:
            first = sender.access_token

            async def renewed() -> bool:
                return sender.access_token not in (None, first)

            await eventually(renewed)
            assert (await sender.send(message(token(), "android"))).status == "sent"
    finally:
        fake.token_ttl_s = 3600
    assert first is not None


async def test_fcm_token_endpoint_refuses_a_foreign_assertion(plain: Running) -> None:
    """The token endpoint verifies the RS256 assertion against the service-account key."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    account = fcm.load_service_account(plain.settings.fcm.service_account_file)
    forged = fcm.ServiceAccount(account.project_id, account.client_email, account.token_uri,
                                dict(account.info, private_key=pem))
    form = {"grant_type": fcm.JWT_BEARER, "assertion": fcm.assertion(forged, time.time())}
    async with aiohttp.ClientSession() as session:
        async with session.post(account.token_uri, data=form) as resp:
            body = await resp.json()
            assert resp.status == 400
    assert body["error"] == "invalid_grant"
    assert jwt.decode(form["assertion"], options={"verify_signature": False})["scope"] == fcm.SCOPE


async def test_fcm_silent_server_times_out_as_retry(running: Running) -> None:
    """An FCM endpoint that never answers yields a retry after the sender's own timeout_s (a
    sender with a shorter timeout_s gives up first)."""
    async with silent_server() as silent:
        def make(timeout_s: float) -> contextlib.AbstractAsyncContextManager[fcm.FcmSender]:
            return fcm_sender(dataclasses.replace(
                running.settings.fcm, endpoint=f"http://127.0.0.1:{silent.port}",
                timeout_s=timeout_s))
        outcome = await times_out_by_its_own_timeout(make, message(token(), "android"), silent)
    assert outcome == push.Outcome("retry", reason="timeout")


async def test_fcm_connection_dropped_mid_flight_is_a_retry(running: Running) -> None:
    """A connection dropped while a push awaits its answer makes that push a retry at once;
    the next push is sent over a new connection."""
    async with proxy_to(running.sandbox.fcm_port) as proxy:
        config = dataclasses.replace(running.settings.fcm,
                                     endpoint=f"http://127.0.0.1:{proxy.port}", timeout_s=30.0)
        async with fcm_sender(config) as sender:
            lost, again, requests = await dropped_mid_flight(sender, running, "android", proxy)
    assert lost.status == "retry" and lost.reason != "timeout"
    assert requests == 1
    assert again.status == "sent"


# --- a sender bug through the dispatcher ----------------------------------------------------


@pytest.mark.parametrize(("platform", "mapper"), [("ios", "from_apns"), ("android", "from_fcm")])
async def test_a_sender_bug_is_retried_until_sent(
        running: Running, pool: asyncpg.Pool, db_url: str, monkeypatch: pytest.MonkeyPatch,
        platform: push.Platform, mapper: str) -> None:
    """A bug raising inside a real sender once makes a retry, not a failure: the order is sent."""
    device = token()
    device_id, _ = await devices.register(pool, platform, device, "ja")
    order_id = uuid.uuid4()
    await pool.execute("INSERT INTO orders (id) VALUES ($1)", order_id)
    service = outbox.service_for(platform)
    async with pool.acquire() as conn:
        await outbox.enqueue(conn, [outbox.NewDelivery(
            device_id=device_id, service=service, kind="order", title="t", body="b",
            expires_at=datetime.now(UTC) + timedelta(hours=1), level=4, order_id=order_id,
            version=1)])
    real = getattr(outcomes, mapper)
    calls = []

    def buggy(*args: Any) -> push.Outcome:
        calls.append(args)
        if len(calls) == 1:
            raise TypeError("an answer nobody foresaw")
        return real(*args)  # type: ignore[no-any-return]

    monkeypatch.setattr(outcomes, mapper, buggy)
    cfg = settings.load([running.sandbox.config_path], environ={
        "ALERTD_DATABASE_URL": db_url, "ALERTD_DISPATCH_BACKOFF_BASE_S": "0.05",
        "ALERTD_DISPATCH_BACKOFF_MAX_S": "0.1", "ALERTD_DISPATCH_POLL_S": "0.05",
        "ALERTD_APNS_TRANSPORT": running.settings.apns.transport,
        "ALERTD_FCM_TRANSPORT": running.settings.fcm.transport})
    sender: apns.ApnsSender | fcm.FcmSender = (
        apns.ApnsSender(cfg.apns) if service == "apns" else fcm.FcmSender(cfg.fcm))
    async with started(sender):
        dispatcher = Dispatcher(pool, cfg, {service: (sender, 10)})
        task = asyncio.create_task(dispatcher.run())

        async def sent() -> bool:
            return await pool.fetchval("SELECT state FROM deliveries") == "sent"

        try:
            await wait_for(sent, "the delivery sent")
        finally:
            dispatcher.stop()
            await task
    assert await pool.fetchval("SELECT attempts FROM deliveries") == 2
    assert len(calls) == 2
    # The first push did reach the service (the bug was in reading its answer): sent again,
    # with the same apns-id / collapse key, as after a crash.
    assert [e["status"] for e in await deliveries(running, device)] == [200, 200]


# --- inspection and process ------------------------------------------------------------------


async def test_inspection_since_and_delete_reset_the_script(plain: Running) -> None:
    """?since= returns the rest of the log; DELETE clears it and resets busy counters."""
    busy = token("busy-")
    async with fcm_sender(plain.settings.fcm) as sender:
        assert (await sender.send(message(busy, "android"))).status == "retry"
    mark = len(await deliveries(plain)) - 1
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{plain.inspect}/deliveries?since={mark}") as resp:
            [last] = await resp.json()
        async with session.delete(f"{plain.inspect}/deliveries") as resp:
            assert resp.status == 204
        async with session.get(f"{plain.inspect}/deliveries?since=-1") as resp:
            assert resp.status == 400
    assert (last["token"], last["status"]) == (busy, 429)
    assert await deliveries(plain) == []
    async with fcm_sender(plain.settings.fcm) as sender:
        assert (await sender.send(message(busy, "android"))).status == "retry"


async def test_sandbox_process_serves_until_sigterm(tmp_path: Path) -> None:
    """`python -m alertd.sandbox.server` writes sandbox.toml when ready and exits 0 on SIGTERM."""
    base = free_port_base()
    proc = subprocess.Popen(  # noqa: ASYNC220 - short-lived child, polled below
        [sys.executable, "-m", "alertd.sandbox.server", "--port-base", str(base),
         "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        ready = tmp_path / "sandbox.toml"

        async def written() -> bool:
            assert proc.poll() is None, "the sandbox exited early"
            return ready.exists()

        await eventually(written)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{base + 2}/healthz") as resp:
                assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert out.startswith("sandbox ready ")
    assert not ready.exists()
