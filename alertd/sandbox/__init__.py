"""Local fake APNs (HTTP/2 over TLS) and FCM HTTP v1 services for tests, demos and checks.

`alertd sandbox --port-base N --dir D` (see `alertd.sandbox.server`) serves APNs on N, FCM and
its OAuth token endpoint on N+1 and the inspection endpoint on N+2, and writes `D/sandbox.toml`.
"""
