"""Bearer credentials: which Authorization headers carry a token at all."""

from __future__ import annotations

import pytest

from alertd import credentials


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer ds_abc-DEF_123", "ds_abc-DEF_123"),
        ("bearer  st_x ", "st_x"),
        ("Bearer a+b/c==", "a+b/c=="),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic ds_abc", None),
        ("Bearer a b", None),
        ("Bearer \udcff\udcfe", None),
        ("Bearer ds_\udce3\udc81", None),
        ("Bearer 避難", None),
        ("Bearer a=b", None),
    ],
)
def test_bearer_takes_only_well_formed_tokens(header: str | None, token: str | None) -> None:
    """Only an RFC 6750 token after `Bearer` is a credential; bytes beyond ASCII (surrogate
    escapes from aiohttp) are none."""
    assert credentials.bearer(header) == token
