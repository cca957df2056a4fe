"""Configuration loading: defaults, files, environment, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertd import errors, settings


def test_defaults_load() -> None:
    """The packaged defaults alone give a complete, valid settings tree."""
    cfg = settings.load(environ={})
    assert cfg.http.port == 8080
    assert cfg.apns.critical_levels == ()
    assert cfg.orders.default_ttl_s > 0


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
        ("[http\n", {}, "not valid TOML"),
        ("", {"ALERTD_HTTP_TRUSTED_PROXIES": '["10.0.0.0/8", "proxy"]'}, "http.trusted_proxies"),
        ("", {"ALERTD_RATELIMIT_REGISTER_PER_S": "0"}, "ratelimit.register_per_s"),
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
