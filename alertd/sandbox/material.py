"""Keys, certificates, the service account and sandbox.toml that the sandbox writes into its dir."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TOPIC = "jp.fukushima.bousai"
TEAM_ID = "ALERTDTEAM"
PROJECT_ID = "alertd-sandbox"
CLIENT_EMAIL = f"alertd-push@{PROJECT_ID}.iam.gserviceaccount.com"

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
APNS_KEY = "apns_key.p8"
APNS_CLIENT_CERT = "apns_client.pem"
SERVICE_ACCOUNT = "fcm_service_account.json"
CONFIG = "sandbox.toml"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class Material:
    """What the fakes need to verify callers, and where the files are."""

    dir: Path
    apns_key_id: str
    apns_public_pem: bytes
    fcm_public_pem: bytes
    fcm_private_key_id: str
    token_uri: str

    def path(self, name: str) -> Path:
        """Absolute path of one of the sandbox files."""
        return self.dir / name


def prepare(directory: Path, hosts: tuple[str, ...], fcm_port: int) -> Material:
    """Create (or reuse) the CA and keys, issue fresh certificates; sandbox.toml is not written."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG).unlink(missing_ok=True)  # a stale one would signal readiness too early
    ca_key = _load_or_create_ec(directory / CA_KEY)
    ca_cert = _load_or_create_ca(directory / CA_CERT, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(ca_cert, ca_key, server_key, "localhost", hosts, server=True)
    _write(directory / SERVER_KEY, _pkcs8(server_key), private=True)
    _write(directory / SERVER_CERT, _pem(server_cert) + _pem(ca_cert))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue(ca_cert, ca_key, client_key, TOPIC, (), server=False)
    _write(directory / APNS_CLIENT_CERT, _pem(client_cert) + _pkcs8(client_key), private=True)
    apns_key = _load_or_create_ec(directory / APNS_KEY)
    fcm_key, fcm_key_id = _load_or_create_rsa(directory / SERVICE_ACCOUNT)
    token_uri = f"http://127.0.0.1:{fcm_port}/token"
    account = {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": fcm_key_id,
        "private_key": _pkcs8(fcm_key).decode(),
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    _write(directory / SERVICE_ACCOUNT, json.dumps(account, indent=2).encode(), private=True)
    return Material(
        dir=directory,
        apns_key_id=_key_id(apns_key),
        apns_public_pem=_public_pem(apns_key),
        fcm_public_pem=_public_pem(fcm_key),
        fcm_private_key_id=fcm_key_id,
        token_uri=token_uri,
    )


def config_text(material: Material, apns_host: str, apns_port: int, fcm_port: int) -> str:
    """The sandbox.toml fragment that points alertd at the fakes."""

    def q(value: str | Path) -> str:
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string

    return "\n".join(
        [
            "# Written by `alertd sandbox`: points alertd at the local fake APNs and FCM.",
            "[apns]",
            f"host = {q(apns_host)}",
            f"port = {apns_port}",
            "use_sandbox = false",
            f"ca_file = {q(material.path(CA_CERT))}",
            f"key_file = {q(material.path(APNS_KEY))}",
            f"key_id = {q(material.apns_key_id)}",
            f"team_id = {q(TEAM_ID)}",
            f"topic = {q(TOPIC)}",
            "",
            "[fcm]",
            f"endpoint = {q(f'http://127.0.0.1:{fcm_port}')}",
            "cleartext_http2 = true",
            f"service_account_file = {q(material.path(SERVICE_ACCOUNT))}",
            f"project_id = {q(PROJECT_ID)}",
            "",
        ]
    )


def write_config(material: Material, text: str) -> Path:
    """Write sandbox.toml atomically (temporary file, then rename); it signals readiness."""
    target = material.path(CONFIG)
    tmp = target.with_name(f".{CONFIG}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target


def server_ssl_context(material: Material) -> ssl.SSLContext:
    """TLS context of the fake APNs: HTTP/2 by ALPN, client certificates optional."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(material.path(SERVER_CERT), material.path(SERVER_KEY))
    ctx.load_verify_locations(material.path(CA_CERT))
    ctx.verify_mode = ssl.CERT_OPTIONAL  # certificate auth is accepted next to JWT auth
    ctx.set_alpn_protocols(["h2"])
    return ctx


def _load_or_create_ec(path: Path) -> ec.EllipticCurvePrivateKey:
    key = _load_key(path.read_bytes()) if path.exists() else None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    fresh = ec.generate_private_key(ec.SECP256R1())
    _write(path, _pkcs8(fresh), private=True)
    return fresh


def _load_or_create_rsa(account_file: Path) -> tuple[rsa.RSAPrivateKey, str]:
    try:
        account = json.loads(account_file.read_text(encoding="utf-8"))
        key = _load_key(account["private_key"].encode())
        if isinstance(key, rsa.RSAPrivateKey) and isinstance(account["private_key_id"], str):
            return key, account["private_key_id"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    fresh = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return fresh, hashlib.sha1(_public_pem(fresh)).hexdigest()


def _load_key(data: bytes) -> object:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except ValueError:
        return None


def _load_or_create_ca(path: Path, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    if path.exists():
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            if cert.public_key() == key.public_key() and _still_valid(cert):
                return cert
        except ValueError:
            pass
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alertd sandbox CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write(path, _pem(cert))
    return cert


def _still_valid(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=30)


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    hosts: tuple[str, ...],
    *,
    server: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if not server:
        # APNs client certificates carry the topic (bundle id) as UID, which aioapns reads.
        attributes.append(x509.NameAttribute(NameOID.USER_ID, TOPIC))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), False)
    return builder.sign(ca_key, hashes.SHA256())


def _alt_names(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for host in dict.fromkeys(("127.0.0.1", *hosts)):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if host != "localhost":
                names.append(x509.DNSName(host))
    return names


def _key_id(key: ec.EllipticCurvePrivateKey) -> str:
    # Apple key ids are 10 upper-case alphanumerics; derive one from the key so it is stable.
    digest = hashlib.sha256(_public_pem(key)).hexdigest().upper()
    return digest[:10]


def _pkcs8(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
