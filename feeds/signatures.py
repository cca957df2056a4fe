"""XML signatures (XML-DSig) of CAP messages, verified with signxml against trust anchors (pure).

CAP 1.2 carries its signature enveloped: a ``ds:Signature`` child of ``alert`` whose reference
covers the whole document (``URI=""``, the enveloped-signature transform). :func:`verified`
accepts a message only when such a signature verifies against one of the trust anchors (PEM
certificates): made with an anchor's own key, or with the key of a certificate the message
carries (KeyInfo/X509Data) that chains up to an anchor (a CA; X.509 path validation by
cryptography, the signing certificate allowing digitalSignature, valid now). It returns **the
signed content as signxml verified it**: what is read afterwards is exactly what was signed,
never the bytes around a signature (signature wrapping). Canonicalisation and the cryptography
are signxml's; the input is screened first like any other (:mod:`feeds.xmlsafe`: no DTD,
entity or XInclude ever reaches signxml or lxml).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from lxml import etree as lxml_etree
from signxml import exceptions as signxml_errors
from signxml.util import X509CertChainVerifier
from signxml.verifier import VerifyResult, XMLVerifier

from feeds import xmlsafe
from feeds.errors import FeedError

NS_DSIG: Final = "http://www.w3.org/2000/09/xmldsig#"
_SHOWN = 200


class Unsigned(FeedError):
    """The message carries no enveloped XML signature, and a signed one is required."""


class BadSignature(FeedError):
    """The message's XML signature does not verify against the trust anchors."""


def anchors_from_pem(pem: bytes, where: str) -> tuple[x509.Certificate, ...]:
    """The certificates of a PEM file (one or more); ValueError naming ``where`` otherwise."""
    try:
        return _certificates(pem)
    except ValueError as exc:
        raise ValueError(f"{where} holds no readable PEM certificate: {exc}") from None


@functools.lru_cache(maxsize=64)
def _certificates(pem: bytes) -> tuple[x509.Certificate, ...]:
    # Messages of a feed are verified against the same few anchors: parse them once.
    return tuple(x509.load_pem_x509_certificates(pem))


class _AnchorChain(X509CertChainVerifier):
    """Chains end at the trust anchors, and only there (signxml would otherwise read a CA file,
    by default the public web PKI's)."""

    def __init__(self, anchors: Sequence[x509.Certificate], **kwargs: Any) -> None:
        super().__init__(ca_pem_file=None, **kwargs)  # type: ignore[no-untyped-call]
        self._anchors = list(anchors)

    @property
    def store(self) -> x509.verification.Store:
        """The trust anchors, as the store every chain must end in."""
        return x509.verification.Store(self._anchors)


class _ChainVerifier(XMLVerifier):
    """Verifies with the certificate a message carries, once it chains up to an anchor."""

    def __init__(self, anchors: Sequence[x509.Certificate]) -> None:
        super().__init__()
        self._anchors = anchors

    def get_cert_chain_verifier(self, ca_pem_file: Any, ee_policy: Any,
                                ca_policy: Any) -> X509CertChainVerifier:
        """A chain verifier whose only roots are the anchors (``ca_pem_file`` is never read)."""
        return _AnchorChain(self._anchors, verification_time=datetime.now(UTC),
                            ee_policy=ee_policy, ca_policy=ca_policy)


def _signature(root: Any) -> Any:
    """The enveloped signature: the one ds:Signature child of the root."""
    found = root.findall(xmlsafe.qname(NS_DSIG, "Signature"))
    if not found:
        raise Unsigned("the message is not signed: this source accepts only messages with an "
                       "enveloped XML signature (ds:Signature in <alert>) by a trusted key")
    if len(found) > 1:
        raise BadSignature(f"the message carries {len(found)} signatures; it must carry one")
    references = found[0].findall(f".//{xmlsafe.qname(NS_DSIG, 'Reference')}")
    if len(references) != 1 or references[0].get("URI") != "":
        raise BadSignature('the signature must have one reference to the whole message (URI="")')
    return found[0]


def verified(data: bytes, anchors: Sequence[bytes], *, max_bytes: int) -> bytes:
    """The signed message (without its signature) if its enveloped signature verifies against
    one of the PEM certificates ``anchors``; Unsigned or BadSignature otherwise."""
    if not anchors:
        raise ValueError("verified needs at least one trust anchor")
    root = xmlsafe.tree(data, max_bytes=max_bytes)
    _signature(root)
    problems: list[str] = []
    certificates = [c for pem in anchors for c in anchors_from_pem(pem, "a trust anchor")]
    # x509_cert pins an anchor's key: the certificate the message carries is not trusted then.
    attempts: list[tuple[XMLVerifier, dict[str, Any]]] = [
        (XMLVerifier(), {"x509_cert": cert}) for cert in certificates]
    if root.find(f".//{xmlsafe.qname(NS_DSIG, 'X509Certificate')}") is not None:
        attempts.append((_ChainVerifier(certificates), {}))  # its certificate, if an anchor's
    for verifier, how in attempts:
        try:
            result = verifier.verify(root, **how)
        except (signxml_errors.SignXMLException, ValueError, lxml_etree.LxmlError) as exc:
            problems.append(str(exc) or type(exc).__name__)
            continue
        if not isinstance(result, VerifyResult):  # one reference expected: one result
            problems.append("the signature must have one reference")
            continue
        signed = result.signed_xml
        if signed is None or signed.tag != root.tag:
            problems.append("the signature does not cover the message")
            continue
        return bytes(lxml_etree.tostring(signed, encoding="UTF-8", xml_declaration=True))
    reason = "; ".join(dict.fromkeys(problems))[:_SHOWN] if problems else "no certificate"
    raise BadSignature(f"the message's signature does not verify against the trust anchors: "
                       f"{reason}")


def check_message(data: bytes, anchors: Sequence[bytes], *, max_bytes: int) -> bytes:
    """The bytes to read for a message: ``data`` itself without anchors, else the verified
    signed content (see :func:`verified`)."""
    return verified(data, anchors, max_bytes=max_bytes) if anchors else data
