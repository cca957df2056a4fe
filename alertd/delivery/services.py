"""Which push services run: each starts only when configured, and what a half-configured one
still lacks (pure; the daemon starts the senders, see alertd.app)."""

from __future__ import annotations

from dataclasses import dataclass

from alertd import settings

SERVICES = ("apns", "fcm")
APNS_CREDENTIALS = ("apns.key_file", "apns.key_id", "apns.team_id", "apns.cert_file")
HOW_TO_ENABLE = {
    "apns": "set apns.key_file, apns.key_id and apns.team_id (token auth) or apns.cert_file",
    "fcm": "set fcm.service_account_file",
}


@dataclass(frozen=True, slots=True)
class Plan:
    """The push services to start, those left off with the reason, and what is missing."""

    on: tuple[str, ...]
    off: tuple[tuple[str, str], ...]  # (service, why it is off)
    missing: tuple[str, ...]  # settings an enabled, partly configured service still needs


def plan(cfg: settings.Settings) -> Plan:
    """Decide for every push service: on, off (and why), or missing settings (all of them)."""
    on: list[str] = []
    off: list[tuple[str, str]] = []
    missing: list[str] = []
    for service, enabled, given, lacking in (
        ("apns", cfg.apns.enabled, _apns_given(cfg.apns), apns_missing(cfg.apns)),
        ("fcm", cfg.fcm.enabled, bool(cfg.fcm.service_account_file), fcm_missing(cfg.fcm)),
    ):
        if not enabled:
            off.append((service, f"{service}.enabled is false"))
        elif not given:
            off.append((service, f"no credentials configured: {HOW_TO_ENABLE[service]}"))
        elif lacking:
            missing += lacking
        else:
            on.append(service)
    return Plan(tuple(on), tuple(off), tuple(missing))


def _apns_given(c: settings.Apns) -> bool:
    return any((c.key_file, c.key_id, c.team_id, c.cert_file))


def apns_missing(c: settings.Apns) -> list[str]:
    """What APNs still needs, one entry per setting (empty: complete)."""
    out = []
    if c.key_file or not c.cert_file:  # token auth (it wins when both are given)
        if not c.key_file:
            out.append("apns.key_file (token auth; or apns.cert_file)")
        if not c.key_id:
            out.append("apns.key_id (token auth needs it)")
        if not c.team_id:
            out.append("apns.team_id (token auth needs it)")
    if not c.topic:
        out.append("apns.topic")
    return out


def fcm_missing(c: settings.Fcm) -> list[str]:
    """What FCM still needs, one entry per setting (empty: complete)."""
    out = []
    if not c.service_account_file:
        out.append("fcm.service_account_file")
    if not c.endpoint:
        out.append("fcm.endpoint")
    return out


def problems_text(problems: list[str]) -> str:
    """One error naming every problem of the enabled push services, and the way out."""
    lines = "\n".join(f"  - {p}" for p in problems)
    return ("push services are enabled but not fully configured; missing or wrong:\n"
            f"{lines}\n(set them, or turn a service off with apns.enabled / fcm.enabled = false)")
