"""The one frozen settings tree: packaged defaults, then --config files, then ALERTD_* variables.

The defaults live only in config/alertd.toml: the dataclasses below name the keys and their
types and have no defaults of their own, so the two cannot disagree (tests/unit/test_settings.py
checks that every key is in both)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alertd import errors


@dataclass(frozen=True, slots=True)
class Http:
    host: str
    port: int
    max_body_bytes: int
    header_timeout_s: float
    body_timeout_s: float
    keepalive_s: float
    max_connections: int
    trusted_proxies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Database:
    url: str
    pool_min: int
    pool_max: int
    connect_timeout_s: float
    acquire_timeout_s: float
    statement_timeout_s: float
    bulk_timeout_s: float
    idle_in_transaction_s: float
    ready_timeout_s: float


@dataclass(frozen=True, slots=True)
class Ratelimit:
    enabled: bool
    register_burst: int
    register_per_s: float
    device_burst: int
    device_per_s: float
    location_burst: int
    location_per_s: float
    staff_burst: int
    staff_per_s: float
    search_burst: int
    search_per_s: float
    search_concurrency: int
    search_wait_s: float
    max_tracked: int


@dataclass(frozen=True, slots=True)
class Log:
    format: str
    level: str


@dataclass(frozen=True, slots=True)
class Orders:
    default_ttl_s: int
    max_ttl_s: int
    max_vertices: int
    max_area_km2: float
    circle_segments: int
    max_self_intersections: int
    preview_min_count: int
    accuracy_cap_m: float
    approval_levels: tuple[int, ...]
    approval_over_devices: int
    fanout_chunk: int
    fanout_lease_s: float


@dataclass(frozen=True, slots=True)
class Compute:
    workers: int
    timeout_s: float
    wait_s: float
    inline_max_positions: int
    inline_max_bytes: int


@dataclass(frozen=True, slots=True)
class Geo:
    cell_deg: float
    areas_file: str


@dataclass(frozen=True, slots=True)
class Dispatch:
    batch_size: int
    lease_s: float
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    flush_ms: int
    shutdown_grace_s: float
    poll_s: float
    reap_s: float


@dataclass(frozen=True, slots=True)
class Apns:
    enabled: bool
    transport: str
    host: str
    port: int
    use_sandbox: bool
    ca_file: str
    key_file: str
    key_id: str
    team_id: str
    cert_file: str
    topic: str
    max_connections: int
    concurrency: int
    timeout_s: float
    critical_levels: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Fcm:
    enabled: bool
    transport: str
    cleartext_http2: bool
    endpoint: str
    service_account_file: str
    project_id: str
    concurrency: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Feeds:
    cap_urls: tuple[str, ...]
    cap_interval_s: float
    jma_url: str
    jma_interval_s: float
    shelter_status_urls: tuple[str, ...]
    shelter_status_interval_s: float
    timeout_s: float
    max_backoff_s: float
    max_bytes: int
    prefecture_code: str


@dataclass(frozen=True, slots=True)
class Cap:
    max_bytes: int
    default_level: int
    level_names: tuple[str, ...]
    level_codes: tuple[tuple[str, int], ...]
    hazard_names: tuple[str, ...]
    max_future_skew_s: float
    geocode_systems: tuple[str, ...]
    sender_aliases: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Shelters:
    open_push_radius_m: float


@dataclass(frozen=True, slots=True)
class Tips:
    catalogue_dir: str
    rate_per_s: float
    ttl_s: float
    batch_size: int


@dataclass(frozen=True, slots=True)
class Sync:
    shelter_radius_m: float
    cursor_max_age_s: int


@dataclass(frozen=True, slots=True)
class Scheduler:
    timezone: str
    tips_day: str
    tips_time: str
    standby_retry_s: float


@dataclass(frozen=True, slots=True)
class Housekeeping:
    batch_size: int
    expire_orders_every_s: float
    cap_waiting_every_s: float
    cap_waiting_max_s: float
    locations_every_s: float
    location_max_age_s: float
    devices_every_s: float
    device_max_idle_s: float
    purge_every_s: float
    deliveries_retention_s: float
    idempotency_retention_s: float
    quarantine_retention_s: float


@dataclass(frozen=True, slots=True)
class TrustFeed:
    """What one polled CAP feed (by its URL, one of feeds.cap_urls) must prove; a list left out
    of its table is empty (that check off)."""

    url: str
    senders: tuple[str, ...]
    anchors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Trust:
    staff_senders: tuple[str, ...]
    staff_anchors: tuple[str, ...]
    feeds: tuple[TrustFeed, ...]


@dataclass(frozen=True, slots=True)
class Console:
    session_ttl_s: float
    idle_timeout_s: float
    secure_cookie: bool
    tile_url: str
    tile_attribution: str


@dataclass(frozen=True, slots=True)
class Settings:
    http: Http
    database: Database
    ratelimit: Ratelimit
    log: Log
    orders: Orders
    compute: Compute
    geo: Geo
    dispatch: Dispatch
    apns: Apns
    fcm: Fcm
    feeds: Feeds
    cap: Cap
    shelters: Shelters
    tips: Tips
    sync: Sync
    scheduler: Scheduler
    housekeeping: Housekeeping
    trust: Trust
    console: Console


_CHOICES: dict[str, tuple[str, ...]] = {
    "log.format": ("auto", "json", "console"),
    "apns.transport": ("curl", "aioapns"),
    "fcm.transport": ("curl", "aiohttp"),
    "log.level": ("debug", "info", "warning", "error"),
    "scheduler.tips_day": ("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
}
_POSITIVE = {
    "http.max_body_bytes", "http.header_timeout_s", "http.body_timeout_s", "http.keepalive_s",
    "http.max_connections", "database.pool_min", "database.pool_max", "orders.default_ttl_s",
    "orders.max_ttl_s", "orders.fanout_chunk", "orders.fanout_lease_s", "orders.max_vertices",
    "orders.max_area_km2", "orders.circle_segments",
    "geo.cell_deg", "dispatch.batch_size", "dispatch.lease_s", "dispatch.max_attempts",
    "dispatch.backoff_base_s", "dispatch.backoff_max_s", "dispatch.flush_ms",
    "dispatch.poll_s", "dispatch.reap_s", "apns.max_connections", "apns.concurrency",
    "apns.timeout_s",
    "fcm.concurrency", "fcm.timeout_s", "feeds.cap_interval_s", "feeds.timeout_s",
    "feeds.shelter_status_interval_s", "feeds.max_backoff_s", "feeds.max_bytes",
    "cap.max_bytes", "shelters.open_push_radius_m", "sync.shelter_radius_m",
    "sync.cursor_max_age_s", "ratelimit.register_burst",
    "ratelimit.register_per_s", "ratelimit.device_burst", "ratelimit.device_per_s",
    "ratelimit.location_burst", "ratelimit.location_per_s", "ratelimit.staff_burst",
    "ratelimit.staff_per_s", "ratelimit.search_burst", "ratelimit.search_per_s",
    "ratelimit.search_concurrency", "ratelimit.search_wait_s", "ratelimit.max_tracked",
    "compute.timeout_s", "compute.wait_s",
    "database.connect_timeout_s", "database.acquire_timeout_s", "database.statement_timeout_s",
    "database.bulk_timeout_s", "database.idle_in_transaction_s", "database.ready_timeout_s",
    "tips.rate_per_s", "tips.ttl_s", "tips.batch_size",
    "scheduler.standby_retry_s", "housekeeping.batch_size", "housekeeping.expire_orders_every_s",
    "housekeeping.cap_waiting_every_s", "housekeeping.cap_waiting_max_s",
    "housekeeping.locations_every_s", "housekeeping.location_max_age_s",
    "housekeeping.devices_every_s", "housekeeping.device_max_idle_s",
    "housekeeping.purge_every_s", "housekeeping.deliveries_retention_s",
    "housekeeping.idempotency_retention_s", "housekeeping.quarantine_retention_s",
    "console.session_ttl_s", "console.idle_timeout_s",
}
_NOT_NEGATIVE = {
    "orders.max_self_intersections", "orders.preview_min_count", "orders.accuracy_cap_m",
    "orders.approval_over_devices",
    "compute.workers",
    "compute.inline_max_positions", "compute.inline_max_bytes", "cap.max_future_skew_s",
}


def defaults_path() -> Path:
    """Path of the packaged config/alertd.toml."""
    return Path(str(resources.files("alertd.defaults").joinpath("alertd.toml")))


def load(
    files: Sequence[str | Path] = (), environ: Mapping[str, str] | None = None
) -> Settings:
    """Build the settings from the packaged defaults, the given files and the environment."""
    env = os.environ if environ is None else environ
    merged: dict[str, dict[str, Any]] = {}
    for path in (defaults_path(), *files):
        _merge(merged, _read_toml(Path(path)), str(path))
    _merge(merged, _from_env(env), "environment")
    return _build(merged)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise errors.ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise errors.ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _sections() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _merge(into: dict[str, dict[str, Any]], data: Mapping[str, Any], origin: str) -> None:
    sections = _sections()
    for section, values in data.items():
        if section not in sections:
            raise errors.ConfigError(f"unknown config section [{section}] in {origin}")
        if not isinstance(values, Mapping):
            raise errors.ConfigError(f"config key {section} in {origin} must be a table")
        known = {f.name for f in dataclasses.fields(sections[section])}
        for key, value in values.items():
            if key not in known:
                raise errors.ConfigError(f"unknown config key {section}.{key} in {origin}")
            into.setdefault(section, {})[key] = value


def _from_env(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    sections = _sections()
    out: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith("ALERTD_"):
            continue
        rest = name[len("ALERTD_"):].lower()
        section, _, key = rest.partition("_")
        if section not in sections:
            continue  # other ALERTD_* variables (e.g. ALERTD_TEST_*) are not settings
        out.setdefault(section, {})[key] = _EnvText(raw)
    return out


class _EnvText(str):
    """A value that came from the environment and still needs converting."""


def _table(name: str, cls: type[Any], raw: Any) -> Any:
    """A TOML table (or JSON object) as the frozen dataclass ``cls``: unknown keys refused,
    omitted lists empty, other omitted keys refused."""
    if not isinstance(raw, Mapping):
        raise ValueError
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key in raw:
        if key not in hints:
            raise errors.ConfigError(f"unknown key {key!r} in a table of config key {name}")
    for key, hint in hints.items():
        if key in raw:
            values[key] = _convert(f"{name}.{key}", hint, raw[key])
        elif typing.get_origin(hint) is tuple:
            values[key] = ()
        else:
            raise errors.ConfigError(f"a table of config key {name} lacks {key!r}")
    return cls(**values)


def _build(merged: dict[str, dict[str, Any]]) -> Settings:
    sections = _sections()
    missing = [f"{section}.{f.name}" for section, cls in sections.items()
               for f in dataclasses.fields(cls) if f.name not in merged.get(section, {})]
    if missing:
        raise errors.ConfigError(f"config keys without a value: {', '.join(missing)} "
                                 f"(the defaults in {defaults_path()} must name them)")
    built: dict[str, Any] = {}
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, raw in merged[section].items():
            values[key] = _convert(f"{section}.{key}", hints[key], raw)
        built[section] = cls(**values)
    settings = Settings(**built)
    _validate(settings)
    return settings


def _convert(name: str, hint: Any, raw: Any) -> Any:
    from_env = isinstance(raw, _EnvText)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _table(name, hint, raw)  # a table in a list of tables (trust.feeds)
    try:
        if hint is bool:
            if from_env:
                low = raw.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(raw, bool):
                return raw
            raise ValueError
        if hint is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(raw) if from_env or isinstance(raw, int) else _bad()
        if hint is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw) if from_env or isinstance(raw, int | float) else _bad()
        if hint is str:
            return str(raw) if from_env or isinstance(raw, str) else _bad()
        if typing.get_origin(hint) is tuple:
            return _tuple(name, hint, json.loads(raw) if from_env else raw)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise errors.ConfigError(
            f"config key {name} must be {_type_name(hint)}, got {raw!r}"
        ) from exc
    raise errors.ConfigError(f"config key {name} has an unsupported type")


def _tuple(name: str, hint: Any, items: Any) -> tuple[Any, ...]:
    """A list (``tuple[X, ...]``), a fixed-size list (``tuple[X, Y]``), or a table of
    ``name = value`` pairs for ``tuple[tuple[str, X], ...]``."""
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis:
        if isinstance(items, Mapping) and typing.get_origin(args[0]) is tuple:
            items = [[key, value] for key, value in items.items()]
        if not isinstance(items, list):
            raise ValueError
        return tuple(_convert(name, args[0], item) for item in items)
    if not isinstance(items, list) or len(items) != len(args):
        raise ValueError
    return tuple(_convert(name, arg, item) for arg, item in zip(args, items, strict=True))


def _bad() -> Any:
    raise ValueError


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return {"bool": "a boolean", "int": "an integer", "float": "a number",
                "str": "a string"}.get(hint.__name__, hint.__name__)
    if isinstance(hint, types.GenericAlias):
        return "a list"
    if dataclasses.is_dataclass(hint):
        return "a table"
    return str(hint)


def _validate(settings: Settings) -> None:
    for dotted in _POSITIVE:
        section, key = dotted.split(".")
        if getattr(getattr(settings, section), key) <= 0:
            raise errors.ConfigError(f"config key {dotted} must be greater than 0")
    for dotted in _NOT_NEGATIVE:
        section, key = dotted.split(".")
        if getattr(getattr(settings, section), key) < 0:
            raise errors.ConfigError(f"config key {dotted} must be 0 or more")
    for dotted, choices in _CHOICES.items():
        section, key = dotted.split(".")
        if getattr(getattr(settings, section), key) not in choices:
            raise errors.ConfigError(f"config key {dotted} must be one of {', '.join(choices)}")
    if not 0 < settings.http.port < 65536:
        raise errors.ConfigError("config key http.port must be between 1 and 65535")
    for network in settings.http.trusted_proxies:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise errors.ConfigError("config key http.trusted_proxies must hold CIDR networks, "
                                     f"got {network!r}") from exc
    if not settings.database.url.startswith(("postgres://", "postgresql://")):
        raise errors.ConfigError("config key database.url must be a postgresql:// URL")
    if settings.database.pool_min > settings.database.pool_max:
        raise errors.ConfigError("config key database.pool_min must not exceed pool_max")
    if settings.feeds.jma_interval_s < 60:
        raise errors.ConfigError("config key feeds.jma_interval_s must be at least 60 "
                                 "(JMA asks clients to poll at most once a minute)")
    if settings.cap.default_level not in (3, 4, 5):
        raise errors.ConfigError("config key cap.default_level must be 3, 4 or 5")
    if any(not 1 <= level <= 5 for _, level in settings.cap.level_codes):
        raise errors.ConfigError("config key cap.level_codes must map codes to levels 1 to 5")
    if any(len(group) < 2 for group in settings.cap.sender_aliases):
        raise errors.ConfigError("config key cap.sender_aliases must hold groups of at least "
                                 "two senders")
    for url in (*settings.feeds.cap_urls, *settings.feeds.shelter_status_urls,
                *((settings.feeds.jma_url,) if settings.feeds.jma_url else ())):
        if not url.startswith(("http://", "https://")):
            raise errors.ConfigError(f"config key feeds.*_url(s) must be http(s) URLs: {url!r}")
    _validate_schedule(settings)
    for feed in settings.trust.feeds:
        if feed.url not in settings.feeds.cap_urls:
            raise errors.ConfigError(f"config key trust.feeds names {feed.url!r}, which is not "
                                     "one of feeds.cap_urls")
    if settings.sync.cursor_max_age_s > settings.housekeeping.deliveries_retention_s:
        # A cursor the server still honours must never point past purged inbox rows.
        raise errors.ConfigError(
            "config key sync.cursor_max_age_s must not exceed "
            "housekeeping.deliveries_retention_s (a cursor would outlive the inbox it reads)")
    if any(level not in (3, 4, 5) for level in settings.orders.approval_levels):
        raise errors.ConfigError("config key orders.approval_levels may hold only 3, 4, 5")
    for level in settings.apns.critical_levels:
        if level not in (3, 4, 5):
            raise errors.ConfigError("config key apns.critical_levels may hold only 3, 4, 5")
    _validate_console(settings.console)


def _validate_console(console: Console) -> None:
    if console.idle_timeout_s > console.session_ttl_s:
        raise errors.ConfigError("config key console.idle_timeout_s must not exceed "
                                 "console.session_ttl_s")
    url = console.tile_url
    if url and not (re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/\S*", url)
                    and all(part in url for part in ("{z}", "{x}", "{y}"))):
        raise errors.ConfigError("config key console.tile_url must be an http(s) URL with "
                                 f"{{z}}, {{x}} and {{y}}, e.g. https://tiles.example.jp/"
                                 f"{{z}}/{{x}}/{{y}}.png; got {url!r}")


def _validate_schedule(settings: Settings) -> None:
    try:
        zoneinfo.ZoneInfo(settings.scheduler.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise errors.ConfigError("config key scheduler.timezone must name an IANA time zone, "
                                 f"got {settings.scheduler.timezone!r}") from exc
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", settings.scheduler.tips_time):
        raise errors.ConfigError("config key scheduler.tips_time must be HH:MM (00:00-23:59), "
                                 f"got {settings.scheduler.tips_time!r}")
