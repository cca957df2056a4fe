"""Configuration loading: defaults, files, environment, and errors that name the key."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path

import pytest

from alertd import errors, settings


def test_defaults_load() -> None:
    """The packaged defaults alone give a complete, valid settings tree."""
    cfg = settings.load(environ={})
    assert cfg.http.port == 8080
    assert cfg.apns.critical_levels == ()
    assert cfg.orders.default_ttl_s == 86400


def test_file_overrides_defaults(tmp_path: Path) -> None:
    """A --config file overrides only the keys it names."""
    f = tmp_path / "a.toml"
    f.write_text('[http]\nport = 9100\n[apns]\nhost = "127.0.0.1"\n')
    cfg = settings.load([f], environ={})
    assert (cfg.http.port, cfg.apns.host, cfg.http.host) == (9100, "127.0.0.1", "127.0.0.1")


def test_environment_overrides_files(tmp_path: Path) -> None:
    """ALERTD_SECTION_KEY wins over files, with keys containing underscores."""
    f = tmp_path / "a.toml"
    f.write_text("[http]\nport = 9100\n")
    cfg = settings.load([f], environ={"ALERTD_HTTP_PORT": "9200", "ALERTD_APNS_KEY_ID": "K1",
                                      "ALERTD_APNS_CRITICAL_LEVELS": "[5]",
                                      "ALERTD_FCM_ENABLED": "false"})
    assert (cfg.http.port, cfg.apns.key_id, cfg.apns.critical_levels) == (9200, "K1", (5,))
    assert cfg.fcm.enabled is False


def test_settings_are_frozen() -> None:
    """Nothing can change the settings after loading."""
    cfg = settings.load(environ={})
    with pytest.raises(AttributeError):
        cfg.http.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("content", "env", "names"),
    [
        ("[http]\nport = \"eighty\"\n", {}, "http.port"),
        ("[http]\nprot = 80\n", {}, "http.prot"),
        ("[nope]\nx = 1\n", {}, "[nope]"),
        ("", {"ALERTD_DISPATCH_LEASE_S": "soon"}, "dispatch.lease_s"),
        ("", {"ALERTD_DISPATCH_BATCH_SIZE": "0"}, "dispatch.batch_size"),
        ("", {"ALERTD_LOG_FORMAT": "xml"}, "log.format"),
        ("", {"ALERTD_DATABASE_URL": "mysql://x"}, "database.url"),
        ("", {"ALERTD_APNS_CRITICAL_LEVELS": "[2]"}, "apns.critical_levels"),
        ("", {"ALERTD_COMPUTE_WORKERS": "-1"}, "compute.workers"),
        ("", {"ALERTD_COMPUTE_TIMEOUT_S": "0"}, "compute.timeout_s"),
        ("", {"ALERTD_ORDERS_PREVIEW_MIN_COUNT": "-1"}, "orders.preview_min_count"),
        ("[http\n", {}, "not valid TOML"),
        ("", {"ALERTD_HTTP_TRUSTED_PROXIES": '["10.0.0.0/8", "proxy"]'}, "http.trusted_proxies"),
        ("", {"ALERTD_RATELIMIT_REGISTER_PER_S": "0"}, "ratelimit.register_per_s"),
        ("", {"ALERTD_DATABASE_STATEMENT_TIMEOUT_S": "0"}, "database.statement_timeout_s"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, content: str, env: dict[str, str],
                                      names: str) -> None:
    """Invalid configuration fails at load with a message naming the offending key."""
    f = tmp_path / "bad.toml"
    f.write_text(content)
    with pytest.raises(errors.ConfigError) as info:
        settings.load([f], environ=env)
    assert names in str(info.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A --config file that does not exist is a clear error."""
    with pytest.raises(errors.ConfigError, match="does not exist"):
        settings.load([tmp_path / "missing.toml"], environ={})


def _declared() -> dict[str, type]:
    hints = typing.get_type_hints(settings.Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(settings.Settings)}


def test_defaults_have_one_source() -> None:
    """config/alertd.toml names exactly the sections and keys the settings dataclasses declare,
    and no dataclass field has a default of its own that could disagree with it."""
    with settings.defaults_path().open("rb") as fh:
        shipped = tomllib.load(fh)
    declared = _declared()
    assert {s: set(v) for s, v in shipped.items()} == {
        s: {f.name for f in dataclasses.fields(cls)} for s, cls in declared.items()}
    with_default = [f"{s}.{f.name}" for s, cls in [("", settings.Settings), *declared.items()]
                    for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING]
    assert with_default == []


def test_a_key_missing_from_the_defaults_is_named(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults that lack a key fail at load with a message naming every missing key."""
    shipped = settings.defaults_path().read_text(encoding="utf-8")
    lacking = tmp_path / "alertd.toml"
    lacking.write_text(shipped.replace("pool_min = 2\n", "").replace("poll_s = 1.0\n", ""),
                       encoding="utf-8")
    monkeypatch.setattr(settings, "defaults_path", lambda: lacking)
    with pytest.raises(errors.ConfigError) as info:
        settings.load(environ={})
    assert str(info.value) == ("config keys without a value: database.pool_min, dispatch.poll_s"
                               f" (the defaults in {lacking} must name them)")


def test_cap_level_codes_and_sender_aliases(tmp_path: Path) -> None:
    """cap.level_codes is a table of code = level and cap.sender_aliases a list of sender
    groups, from a file or as JSON in the environment; a level out of 1-5 or a group of one
    is refused, naming the key."""
    f = tmp_path / "a.toml"
    f.write_text('[cap]\nlevel_codes = { "避難指示" = 4, "EVAC" = 5 }\n'
                 'sender_aliases = [["a@example.jp", "urn:oid:2.49.0.1.392"]]\n')
    cfg = settings.load([f], environ={})
    assert cfg.cap.level_codes == (("避難指示", 4), ("EVAC", 5))
    assert cfg.cap.sender_aliases == (("a@example.jp", "urn:oid:2.49.0.1.392"),)
    cfg = settings.load(environ={"ALERTD_CAP_LEVEL_CODES": '{"X": 3}',
                                 "ALERTD_CAP_SENDER_ALIASES": '[["a", "b", "c"]]'})
    assert (cfg.cap.level_codes, cfg.cap.sender_aliases) == ((("X", 3),), (("a", "b", "c"),))
    for env in ({"ALERTD_CAP_LEVEL_CODES": '{"X": 7}'}, {"ALERTD_CAP_LEVEL_CODES": '{"X": "4"}'},
                {"ALERTD_CAP_SENDER_ALIASES": '[["a"]]'}):
        with pytest.raises(errors.ConfigError, match=f"cap.{next(iter(env))[11:].lower()}"):
            settings.load(environ=env)


def test_sync_cursors_may_not_outlive_the_inbox_they_read() -> None:
    """A sync cursor age beyond the deliveries' retention is a configuration error: sync would
    answer such a cursor with changes already purged."""
    env = {"ALERTD_SYNC_CURSOR_MAX_AGE_S": "8000000",
           "ALERTD_HOUSEKEEPING_DELIVERIES_RETENTION_S": "7000000"}
    with pytest.raises(errors.ConfigError, match=r"sync\.cursor_max_age_s"):
        settings.load([], environ=env)
    assert settings.load([], environ={"ALERTD_SYNC_CURSOR_MAX_AGE_S": "7000000"}).sync \
        .cursor_max_age_s == 7000000


def test_four_eyes_defaults_and_checks() -> None:
    """Level 5 and orders over 100,000 devices are held by default; `[]` and 0 turn each off
    (from the environment too); a level beyond 3-5 or a negative limit stops the start."""
    cfg = settings.load(environ={})
    assert (cfg.orders.approval_levels, cfg.orders.approval_over_devices) == ((5,), 100000)
    off = settings.load(environ={"ALERTD_ORDERS_APPROVAL_LEVELS": "[]",
                                 "ALERTD_ORDERS_APPROVAL_OVER_DEVICES": "0"})
    assert (off.orders.approval_levels, off.orders.approval_over_devices) == ((), 0)
    with pytest.raises(errors.ConfigError, match=r"orders\.approval_levels may hold only 3, 4, 5"):
        settings.load(environ={"ALERTD_ORDERS_APPROVAL_LEVELS": "[6]"})
    with pytest.raises(errors.ConfigError, match=r"approval_over_devices must be 0 or more"):
        settings.load(environ={"ALERTD_ORDERS_APPROVAL_OVER_DEVICES": "-1"})
