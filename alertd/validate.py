"""Small pure checks shared by the request parsers; each raises InvalidInput with a reason."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from alertd.errors import InvalidInput

LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
ID_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


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
    if not isinstance(value, str) or not LOCALE_RE.match(value) or len(value) > 35:
        raise InvalidInput("locale must be a language tag such as ja or en")
    return value


def clock(value: Any, key: str) -> str:
    """An HH:MM time of day."""
    if not isinstance(value, str) or not TIME_RE.match(value):
        raise InvalidInput(f"{key} must be a time HH:MM")
    return value


def ident(value: str, what: str) -> str:
    """A client-chosen identifier (URL-safe, at most 64 characters)."""
    if not ID_RE.match(value):
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
