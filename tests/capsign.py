"""Builds signed CAP messages and EDXL-DE distributions for tests: a key and a certificate made
here (never a third party's), signatures made with signxml as a sender's system would."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import methods
from signxml.signer import XMLSigner

DE_10 = "urn:oasis:names:tc:emergency:EDXL:DE:1.0"
DE_20 = "urn:oasis:names:tc:emergency:EDXL:DE:2.0"


@dataclass(frozen=True)
class Signer:
    """A signing key and its self-signed certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes


def new_signer(name: str = "bousai.pref.fukushima.lg.jp test signer") -> Signer:
    """A fresh RSA key with a certificate valid from yesterday for a month."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return Signer(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM))


def _extensions(builder: x509.CertificateBuilder, *, ca: bool) -> x509.CertificateBuilder:
    usage = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                           "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                           "encipher_only", "decipher_only"), False)
    usage.update({"key_cert_sign": ca, "crl_sign": ca, "digital_signature": not ca})
    return (builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**usage), critical=True))


@dataclass(frozen=True)
class Authority:
    """A certificate authority made here: its key and its (self-signed) certificate."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        """Its certificate, PEM: what a feed names as its trust anchor."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


def new_authority(name: str = "Fukushima CAP test CA") -> Authority:
    """A CA whose certificate is a valid anchor for path validation."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    return Authority(key, _extensions(builder, ca=True).sign(key, hashes.SHA256()))


def issued_signer(authority: Authority, name: str = "bousai signing key") -> Signer:
    """A signing key whose certificate the authority issued (the message carries it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(authority.cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   authority.key.public_key()), critical=False))
    cert = _extensions(builder, ca=False).sign(authority.key, hashes.SHA256())
    return Signer(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        cert.public_bytes(serialization.Encoding.PEM))


@functools.cache
def signer() -> Signer:
    """One signer shared by a test run (an RSA key takes a moment to make)."""
    return new_signer()


@functools.cache
def other_signer() -> Signer:
    """A second signer, trusted by nobody."""
    return new_signer("someone else")


def sign(message: bytes, by: Signer | None = None) -> bytes:
    """The message with an enveloped XML signature (ds:Signature, URI="") as its last child."""
    by = by or signer()
    root = etree.fromstring(message)
    signed = XMLSigner(method=methods.enveloped).sign(root, key=by.key_pem, cert=by.cert_pem)
    return bytes(etree.tostring(signed, encoding="UTF-8", xml_declaration=True))


def tamper(signed: bytes) -> bytes:
    """A signed message whose instruction was changed after signing."""
    changed = signed.replace("高台へ避難してください".encode(), "自宅にとどまってください".encode())
    assert changed != signed
    return changed


def _body(message: bytes) -> str:
    text = message.decode()
    return text.split("?>", 1)[1] if text.startswith("<?xml") else text


def edxl(*messages: bytes, version: str = "2.0", distribution_id: str = "dist-1") -> bytes:
    """An EDXL-DE 1.0 or 2.0 distribution carrying the messages in embeddedXMLContent, shaped
    as the two specifications lay it out (2.0 wraps the content objects in <content>)."""
    sent = datetime.now(UTC).replace(microsecond=0).isoformat()
    objects = "".join(
        "<contentObject><contentDescription>CAP</contentDescription><xmlContent>"
        f"<embeddedXMLContent>{_body(m)}</embeddedXMLContent></xmlContent></contentObject>"
        for m in messages)
    if version == "1.0":
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<EDXLDistribution xmlns="{DE_10}"><distributionID>{distribution_id}'
            "</distributionID><senderID>bousai@pref.fukushima.lg.jp</senderID>"
            f"<dateTimeSent>{sent}</dateTimeSent><distributionStatus>Actual</distributionStatus>"
            "<distributionType>Report</distributionType>"
            "<combinedConfidentiality>UNCLASSIFIED AND NOT SENSITIVE</combinedConfidentiality>"
            f"{objects}</EDXLDistribution>").encode()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<EDXLDistribution xmlns="{DE_20}" xmlns:xlink="http://www.w3.org/1999/xlink"'
        ' xmlns:ct="urn:oasis:names:tc:emergency:edxl:ct:1.0" xlink:type="extended">'
        f"<distributionID>{distribution_id}</distributionID>"
        "<senderID>bousai@pref.fukushima.lg.jp</senderID>"
        f"<dateTimeSent>{sent}</dateTimeSent>"
        "<distributionStatus><ct:ValueListURI>urn:oasis:names:tc:emergency:EDXL:DE:2.0:"
        "Defaults:StatusKind</ct:ValueListURI><ct:Value>Actual</ct:Value></distributionStatus>"
        "<distributionKind><ct:ValueListURI>urn:oasis:names:tc:emergency:EDXL:DE:2.0:"
        "Defaults:DistributionKind</ct:ValueListURI><ct:Value>Report</ct:Value>"
        "</distributionKind>"
        f"<content>{objects}</content></EDXLDistribution>").encode()
