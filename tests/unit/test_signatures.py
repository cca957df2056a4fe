"""XML signatures of CAP messages, verified with signxml against trust anchors."""

from __future__ import annotations

import pytest

from feeds import cap, signatures
from feeds import errors as feed_errors
from tests import capgen, capsign

LIMIT = 1_048_576


def _anchors() -> list[bytes]:
    return [capsign.signer().cert_pem]


def test_signed_message_verifies_and_reads_as_signed() -> None:
    """A message signed by the anchor's key verifies; what is returned is the signed alert."""
    data = signatures.verified(capsign.sign(capgen.message("s-1")), _anchors(), max_bytes=LIMIT)
    alert = cap.parse(data)
    assert alert.identifier == "s-1"
    assert b"Signature" not in data  # the enveloped signature is not part of the content


def test_tampered_message_is_refused() -> None:
    """Changing a signed message's text breaks its signature: BadSignature with the reason."""
    with pytest.raises(signatures.BadSignature) as caught:
        signatures.verified(capsign.tamper(capsign.sign(capgen.message("t-1"))), _anchors(),
                            max_bytes=LIMIT)
    assert caught.value.reason.startswith(
        "the message's signature does not verify against the trust anchors: ")
    assert "Digest mismatch" in caught.value.reason


def test_unsigned_message_is_refused() -> None:
    """A message without ds:Signature is Unsigned when anchors are configured."""
    with pytest.raises(signatures.Unsigned) as caught:
        signatures.verified(capgen.message("u-1"), _anchors(), max_bytes=LIMIT)
    assert "not signed" in caught.value.reason


def test_signature_by_another_key_is_refused_even_with_its_certificate() -> None:
    """A message signed by an untrusted key, carrying that key's own certificate, is refused:
    the certificate in the message is never trusted by itself."""
    signed = capsign.sign(capgen.message("o-1"), capsign.other_signer())
    with pytest.raises(signatures.BadSignature):
        signatures.verified(signed, _anchors(), max_bytes=LIMIT)


def test_any_of_several_anchors_may_have_signed() -> None:
    """With two anchors, a message signed by the second verifies."""
    signed = capsign.sign(capgen.message("two-1"), capsign.other_signer())
    anchors = [capsign.signer().cert_pem, capsign.other_signer().cert_pem]
    assert cap.parse(signatures.verified(signed, anchors, max_bytes=LIMIT)).identifier == "two-1"


def test_wrapped_content_outside_the_signature_is_not_read() -> None:
    """An extra <info> slipped into a signed message (signature wrapping) fails verification."""
    signed = capsign.sign(capgen.message("w-1"))
    wrapped = signed.replace(b"<info>", b"<info><language>xx</language></info><info>", 1)
    with pytest.raises(signatures.BadSignature):
        signatures.verified(wrapped, _anchors(), max_bytes=LIMIT)


def test_doctype_is_refused_before_signxml_sees_it() -> None:
    """A signed-looking message with a DTD is refused by the screening (no entity expansion)."""
    signed = capsign.sign(capgen.message("d-1"))
    hostile = signed.replace(b"?>", b'?><!DOCTYPE a [<!ENTITY x "y">]>', 1)
    with pytest.raises(feed_errors.UnsafeXml):
        signatures.verified(hostile, _anchors(), max_bytes=LIMIT)


def test_without_anchors_the_message_is_read_as_it_is() -> None:
    """check_message leaves a message alone when the source has no anchors."""
    raw = capgen.message("n-1")
    assert signatures.check_message(raw, (), max_bytes=LIMIT) is raw


def test_unreadable_anchor_is_named() -> None:
    """A file that holds no PEM certificate is refused, naming it."""
    with pytest.raises(ValueError, match=r"anchor\.pem holds no readable PEM certificate"):
        signatures.anchors_from_pem(b"not a certificate", "anchor.pem")


def test_certificate_issued_by_an_anchor_ca_verifies() -> None:
    """With a CA as the anchor, a message signed by a key whose certificate that CA issued (and
    which the message carries) verifies."""
    authority = capsign.new_authority()
    signed = capsign.sign(capgen.message("ca-1"), capsign.issued_signer(authority))
    data = signatures.verified(signed, [authority.cert_pem], max_bytes=LIMIT)
    assert cap.parse(data).identifier == "ca-1"


def test_certificate_issued_by_another_ca_is_refused() -> None:
    """A certificate issued by a CA that is not an anchor does not make a signature trusted."""
    stranger = capsign.new_authority("some other CA")
    signed = capsign.sign(capgen.message("ca-2"), capsign.issued_signer(stranger))
    with pytest.raises(signatures.BadSignature):
        signatures.verified(signed, [capsign.new_authority().cert_pem], max_bytes=LIMIT)
