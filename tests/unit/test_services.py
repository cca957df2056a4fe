"""Which push services start, which stay off and why, and what a half-configured one lacks."""

from __future__ import annotations

import pytest

from alertd import settings
from alertd.delivery import services

NO_APNS = ("apns", "no credentials configured: set apns.key_file, apns.key_id and "
                   "apns.team_id (token auth) or apns.cert_file")
NO_FCM = ("fcm", "no credentials configured: set fcm.service_account_file")
TOKEN_AUTH = {"ALERTD_APNS_KEY_FILE": "k.p8", "ALERTD_APNS_KEY_ID": "K", "ALERTD_APNS_TEAM_ID": "T"}


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, services.Plan((), (NO_APNS, NO_FCM), ())),
    (TOKEN_AUTH, services.Plan(("apns",), (NO_FCM,), ())),
    ({"ALERTD_APNS_CERT_FILE": "c.pem", "ALERTD_FCM_SERVICE_ACCOUNT_FILE": "sa.json"},
     services.Plan(("apns", "fcm"), (), ())),
    ({**TOKEN_AUTH, "ALERTD_APNS_ENABLED": "false", "ALERTD_FCM_ENABLED": "false",
      "ALERTD_FCM_SERVICE_ACCOUNT_FILE": "sa.json"},
     services.Plan((), (("apns", "apns.enabled is false"), ("fcm", "fcm.enabled is false")),
                   ())),
    ({"ALERTD_APNS_KEY_ID": "K"},
     services.Plan((), (NO_FCM,), ("apns.key_file (token auth; or apns.cert_file)",
                                   "apns.team_id (token auth needs it)"))),
    ({"ALERTD_APNS_KEY_FILE": "k.p8", "ALERTD_APNS_TOPIC": "",
      "ALERTD_FCM_SERVICE_ACCOUNT_FILE": "sa.json", "ALERTD_FCM_ENDPOINT": ""},
     services.Plan((), (), ("apns.key_id (token auth needs it)",
                            "apns.team_id (token auth needs it)", "apns.topic",
                            "fcm.endpoint"))),
])
def test_plan(environ: dict[str, str], expected: services.Plan) -> None:
    """Unconfigured services are off with the way to turn them on; partial ones list every gap."""
    assert services.plan(settings.load(environ=environ)) == expected
