"""What the fakes received, the token-prefix script, and the inspection HTTP endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

Service = Literal["apns", "fcm"]
Script = Literal["ok", "gone", "bad", "busy", "down", "slow"]

REDACTED = "<redacted>"
SLOW_S = 1.0  # how long a slow- token waits for its (successful) answer


def scripted(token: str, earlier: int) -> Script:
    """How a fake answers a token, given how many requests for it came before this one."""
    if token.startswith("gone-"):
        return "gone"
    if token.startswith("bad-"):
        return "bad"
    if token.startswith("busy-") and earlier < 1:
        return "busy"
    if token.startswith("down-") and earlier < 2:
        return "down"
    if token.startswith("slow-"):
        return "slow"
    return "ok"


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers with lower-case names and the authorization value hidden."""
    out = {name.lower(): value for name, value in headers.items()}
    if "authorization" in out:
        out["authorization"] = REDACTED
    return out


@dataclass(slots=True)
class Recorder:
    """In-memory log of every push request, in arrival order, plus per-token hit counts."""

    deliveries: list[dict[str, Any]] = field(default_factory=list)
    hits: dict[tuple[str, str], int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=lambda: {"apns": 0, "fcm": 0})

    def script(self, service: Service, token: str) -> Script:
        """The scripted answer for this request; counts it against the token."""
        key = (service, token)
        earlier = self.hits.get(key, 0)
        self.hits[key] = earlier + 1
        return scripted(token, earlier)

    def record(
        self,
        service: Service,
        token: str,
        status: int,
        headers: dict[str, str],
        payload: Any,
    ) -> None:
        """Append one request with the status the fake answered."""
        self.received[service] += 1
        self.deliveries.append(
            {
                "service": service,
                "token": token,
                "status": status,
                "headers": headers,
                "payload": payload,
                "at": datetime.now(UTC).isoformat(),
            }
        )

    def clear(self) -> int:
        """Forget every recorded request and reset the busy/down counters."""
        count = len(self.deliveries)
        self.deliveries = []
        self.hits.clear()
        return count


def json_answer(value: Any, status: int = 200) -> web.Response:
    """UTF-8 JSON (`application/json; charset=utf-8`): recorded texts read as they were sent."""
    return web.json_response(value, status=status,
                             dumps=lambda v: json.dumps(v, ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class InspectionHooks:
    """Extra views into the fakes that the inspection endpoint exposes."""

    stats: Callable[[], dict[str, Any]]
    revoke_fcm_tokens: Callable[[], int]


def inspection_app(recorder: Recorder, hooks: InspectionHooks) -> web.Application:
    """The aiohttp app of the inspection port: /deliveries, /healthz, /stats."""

    async def list_deliveries(request: web.Request) -> web.Response:
        raw = request.query.get("since", "0")
        try:
            since = int(raw)
        except ValueError:
            since = -1
        if since < 0:
            return json_answer({"error": "since must be an index >= 0"}, status=400)
        return json_answer(recorder.deliveries[since:])

    async def clear(_: web.Request) -> web.Response:
        recorder.clear()
        return web.Response(status=204)

    async def healthz(_: web.Request) -> web.Response:
        return json_answer({"status": "ok"})

    async def stats(_: web.Request) -> web.Response:
        body = {"deliveries": len(recorder.deliveries), "received": dict(recorder.received)}
        body.update(hooks.stats())
        return json_answer(body)

    async def revoke(_: web.Request) -> web.Response:
        return json_answer({"revoked": hooks.revoke_fcm_tokens()})

    app = web.Application()
    app.router.add_get("/deliveries", list_deliveries)
    app.router.add_delete("/deliveries", clear)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/stats", stats)
    app.router.add_post("/fcm/revoke-tokens", revoke)
    return app
