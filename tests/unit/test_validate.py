"""The request checks shared by every parser: what no field may hold, and the small formats."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alertd import validate
from alertd.errors import InvalidInput


def _parse(text: str) -> Any:
    return json.loads(text, parse_int=validate.json_int)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"headline": {"ja": "a\\u0000b"}}', "headline.ja must not contain NUL characters"),
        ('{"label": "\\ud800"}', "label must not contain unpaired surrogates"),
        ('{"a": [1, {"b": ["x", "\\udfff"]}]}', "a[1].b[1] must not contain unpaired"),
        ('["\\u0000"]', "body[0] must not contain NUL"),
        ('"\\u0000"', "body must not contain NUL"),
        ('{"h": {"j\\u0000": 1}}', "a field name in h must not contain NUL"),
        ('{"lat": ' + "9" * 5000 + "}", "lat must be a number of at most 20 digits"),
        ('{"level": -' + "4" * 21 + "}", "level must be a number of at most 20 digits"),
        ('{"lat": 1e309}', "lat must be a finite number"),
        ('{"lat": -1e999}', "lat must be a finite number"),
        ("[" * 33 + "]" * 33, "body" + "[0]" * 32 + " is nested more than 32 levels deep"),
    ],
)
def test_document_refuses_naming_the_path(text: str, reason: str) -> None:
    """NULs, unpaired surrogates, oversized integers, infinities and deep nesting are refused
    with the JSON path of the first offending field."""
    with pytest.raises(InvalidInput) as caught:
        validate.document(_parse(text))
    assert caught.value.reason.startswith(reason), caught.value.reason


def test_document_accepts_ordinary_values() -> None:
    """Text in any script (paired surrogates included), 20-digit integers and 32 levels pass."""
    value = _parse('{"ja": "避難 🏃", "n": 12345678901234567890, "f": -1.5e300, "t": true,'
                   ' "z": null, "deep": ' + "[" * 31 + "]" * 31 + "}")
    validate.document(value)
    assert value["n"] == 12345678901234567890
    assert validate.json_int("-" + "9" * 20) == -int("9" * 20)
    assert validate.json_int("1" * 21) == validate.OversizedInt(21)


@pytest.mark.parametrize(("text", "ok"), [("ja", True), ("", True), ("é🏃", True),
                                          ("a\x00", False), ("\ud800", False),
                                          ("x\udc80y", False)])
def test_storable(text: str, ok: bool) -> None:
    """Text is storable unless it holds a NUL or an unpaired surrogate."""
    assert validate.storable(text) is ok


@pytest.mark.parametrize("value", ["ja\n", "en\n", "ja-JP\n", " ja", "ja "])
def test_locale_refuses_trailing_newline(value: str) -> None:
    """A locale with a trailing newline or spaces is refused."""
    with pytest.raises(InvalidInput):
        validate.locale(value)


def test_clock_and_ident_refuse_trailing_newline() -> None:
    """HH:MM times and identifiers followed by a newline are refused; the plain ones pass."""
    assert validate.clock("22:00", "t") == "22:00"
    assert validate.ident("home", "place_id") == "home"
    with pytest.raises(InvalidInput):
        validate.clock("22:00\n", "t")
    with pytest.raises(InvalidInput):
        validate.ident("home\n", "place_id")
