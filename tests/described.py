"""Checks one answer of the app against the OpenAPI description, with the checks the live
schemathesis run (tests/e2e/test_openapi_live.py) applies to each of its answers."""

from __future__ import annotations

import functools
from typing import Any

import aiohttp
import requests
import schemathesis
from aiohttp import hdrs
from aiohttp.test_utils import TestClient
from schemathesis import checks as generic
from schemathesis.specs.openapi import checks

from alertd.api import openapi

# What "every answer conforms to the description" means, here and in the live run.
CHECKS = [
    generic.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
CHECK_NAMES = ",".join(check.__name__ for check in CHECKS)


@functools.cache
def schema() -> Any:
    """The description as schemathesis reads it."""
    return schemathesis.openapi.from_dict(openapi.document())


async def answer_conforms(resp: aiohttp.ClientResponse, template: str,
                          path_parameters: dict[str, str] | None = None, *,
                          overload: bool = False) -> None:
    """Raise (naming what differs) unless the answer to a request on the route `template`
    (with these path parameters) is one the description allows: status, content type,
    headers, body; and not a 5xx unless the test caused an overload (`overload`)."""
    body = await resp.read()
    prepared = requests.Request(resp.method, str(resp.url),
                                headers=dict(resp.request_info.headers)).prepare()
    headers: dict[str, list[str]] = {}
    for name, value in resp.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    answer = schemathesis.Response(resp.status, headers, body, prepared, 0.0, True)
    case = schema()[template][resp.method].Case(path_parameters=path_parameters or {})
    case.validate_response(answer, checks=CHECKS[1:] if overload else CHECKS)


def routes(client: TestClient) -> set[tuple[str, str]]:  # type: ignore[type-arg]
    """The (METHOD, path) pairs the app's router takes (a catch-all `*` route excepted: it
    names no operation)."""
    return {(route.method, route.resource.canonical) for route in client.app.router.routes()
            if route.resource is not None and route.method != hdrs.METH_ANY}
