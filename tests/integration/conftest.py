"""Fixtures of the integration tests: the real app served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from alertd.api import routes


@pytest.fixture
async def api(context: Any) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """A client of the real HTTP app on this test's database (its point index following it)."""
    client: TestClient = TestClient(TestServer(routes.build_app(context)))  # type: ignore[type-arg]
    await client.start_server()
    yield client
    await client.close()
