"""Small pure checks shared by the request parsers; each raises InvalidInput with a reason."""

from __future__ import annotations

import functools
import math
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alertd.errors import InvalidInput

# Matched with fullmatch: `$` would also accept a trailing newline ("ja\n").
LOCALE_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
TIME_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
ID_RE = re.compile(r"[A-Za-z0-9._~-]{1,64}")
# No field holds a whole number this long; longer literals are not even converted, since
# int() of thousands of digits is slow and beyond 4,300 digits raises ValueError.
MAX_INT_DIGITS = 20
MAX_DEPTH = 32  # nesting of objects and arrays in a request body


def obj(body: Any, what: str = "body") -> dict[str, Any]:
    """The body as a JSON object."""
    if not isinstance(body, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return body


def only(body: dict[str, Any], allowed: set[str], what: str = "body") -> None:
    """Refuse keys outside the allowed set."""
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInput(f"{what} has unknown field(s): {', '.join(extra)}")


def number(body: dict[str, Any], key: str, lo: float, hi: float) -> float:
    """A finite number within [lo, hi]."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{key} must be a number")
    try:
        value = float(value)
    except OverflowError as exc:  # an integer with hundreds of digits
        raise InvalidInput(f"{key} must be between {lo:g} and {hi:g}") from exc
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidInput(f"{key} must be between {lo:g} and {hi:g}")
    return float(value)


def lat_lon(body: dict[str, Any]) -> tuple[float, float]:
    """Latitude and longitude, range-checked."""
    return number(body, "lat", -90, 90), number(body, "lon", -180, 180)


def text(body: dict[str, Any], key: str, *, max_len: int, required: bool = True,
         min_len: int = 1) -> str | None:
    """A string of bounded length."""
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string")
    if not min_len <= len(value) <= max_len:
        raise InvalidInput(f"{key} must be {min_len} to {max_len} characters")
    return value


def locale(value: Any) -> str:
    """A BCP 47-ish language tag, lower-cased primary language kept."""
    if not isinstance(value, str) or not LOCALE_RE.fullmatch(value) or len(value) > 35:
        raise InvalidInput("locale must be a language tag such as ja or en")
    return value


def clock(value: Any, key: str) -> str:
    """An HH:MM time of day."""
    if not isinstance(value, str) or not TIME_RE.fullmatch(value):
        raise InvalidInput(f"{key} must be a time HH:MM")
    return value


def time_zone(value: Any, key: str = "time_zone") -> str:
    """An IANA time zone name such as Asia/Tokyo or Europe/Berlin."""
    if not isinstance(value, str) or value not in _time_zones():
        raise InvalidInput(f"{key} must be an IANA time zone such as Asia/Tokyo")
    return value


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def ident(value: str, what: str) -> str:
    """A client-chosen identifier (URL-safe, at most 64 characters)."""
    if not ID_RE.fullmatch(value):
        raise InvalidInput(f"{what} must be 1 to 64 URL-safe characters")
    return value


def timestamp(value: Any, key: str) -> datetime:
    """An ISO 8601 timestamp with a time zone."""
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"{key} must be an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise InvalidInput(f"{key} must carry a time zone offset")
    return parsed


@dataclass(frozen=True, slots=True)
class OversizedInt:
    """A JSON integer literal of more than MAX_INT_DIGITS digits, left unconverted."""

    digits: int


def json_int(literal: str) -> int | OversizedInt:
    """The `parse_int` hook of json.loads: oversized literals become OversizedInt."""
    digits = len(literal.lstrip("-"))
    return OversizedInt(digits) if digits > MAX_INT_DIGITS else int(literal)


def storable(value: str) -> bool:
    """Whether PostgreSQL can store the text: no NUL character, no unpaired surrogate."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text_problem(value: str) -> str:
    if "\x00" in value:
        return "must not contain NUL characters"
    return "must not contain unpaired surrogates (\\ud800-\\udfff)"


def document(value: Any) -> None:
    """Refuse, naming the field's JSON path, what no field of a request body may hold.

    That is: text PostgreSQL cannot store (NUL, unpaired surrogates, in values and in field
    names), integers of more than MAX_INT_DIGITS digits (see json_int), numbers beyond the
    float range (1e309), and nesting deeper than MAX_DEPTH. Checked once for every field here,
    so that no field's parser can forget it.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        where = path or "body"
        if isinstance(item, str):
            if not storable(item):
                raise InvalidInput(f"{where} {_text_problem(item)}")
        elif isinstance(item, OversizedInt):
            raise InvalidInput(f"{where} must be a number of at most {MAX_INT_DIGITS} digits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(f"{where} must be a finite number")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidInput(f"{where} is nested more than {MAX_DEPTH} levels deep")
            children: list[tuple[Any, str, int]] = []
            if isinstance(item, dict):
                for key, child in item.items():
                    if not storable(key):
                        raise InvalidInput(f"a field name in {where} {_text_problem(key)}")
                    children.append((child, f"{path}.{key}" if path else key, depth + 1))
            else:
                children = [(child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item)]
            stack.extend(reversed(children))
