"""EDXL-DE 1.0 / 2.0 distributions: the CAP messages they carry, cut out one by one."""

from __future__ import annotations

import pytest

from feeds import cap, edxl, signatures
from feeds import errors as feed_errors
from tests import capgen, capsign

LIMIT = 5_000_000


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_each_cap_message_is_a_document_of_its_own(version: str) -> None:
    """Both versions yield every embedded CAP alert, each parsing as a CAP message alone."""
    raw = capsign.edxl(capgen.message("a-1"), capgen.message("a-2", level=5), version=version,
                       distribution_id="d-42")
    found = edxl.unwrap(raw, max_bytes=LIMIT)
    assert found is not None
    assert (found.version, found.distribution_id, found.others) == (version, "d-42", 0)
    assert [cap.parse(a).identifier for a in found.alerts] == ["a-1", "a-2"]


def test_envelope_namespaces_do_not_leak_into_the_message() -> None:
    """A message cut out of a 2.0 envelope declares only its own namespace, not xlink or ct."""
    found = edxl.unwrap(capsign.edxl(capgen.message("a-1")), max_bytes=LIMIT)
    assert found is not None
    assert b"xlink" not in found.alerts[0] and b"edxl:ct" not in found.alerts[0]


def test_signature_made_before_wrapping_still_verifies() -> None:
    """A message signed alone, then wrapped in EDXL-DE 2.0, verifies once cut out."""
    signed = capsign.sign(capgen.message("s-1"))
    found = edxl.unwrap(capsign.edxl(signed), max_bytes=LIMIT)
    assert found is not None
    data = signatures.verified(found.alerts[0], [capsign.signer().cert_pem], max_bytes=LIMIT)
    assert cap.parse(data).identifier == "s-1"


def test_a_cap_message_is_not_a_distribution() -> None:
    """A plain CAP message is not a distribution: None, for the caller to read it as CAP."""
    assert edxl.unwrap(capgen.message("plain"), max_bytes=LIMIT) is None


def test_distribution_without_cap_is_refused_with_the_reason() -> None:
    """A distribution carrying only other XML is refused, naming what it carries."""
    other = b'<report xmlns="urn:example:other"><x>1</x></report>'
    with pytest.raises(feed_errors.InvalidMessage) as caught:
        edxl.unwrap(capsign.edxl(other, distribution_id="empty-1"), max_bytes=LIMIT)
    assert caught.value.reason == (
        "the EDXL-DE 2.0 distribution 'empty-1' carries no CAP alert in embeddedXMLContent "
        "(1 other embedded documents)")


def test_envelope_with_a_doctype_is_refused_before_anything_is_resolved() -> None:
    """An envelope declaring entities is refused by the screening, like any other XML."""
    raw = capsign.edxl(capgen.message("x-1")).replace(
        b"<EDXLDistribution", b'<!DOCTYPE d [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<EDXLDistribution", 1)
    with pytest.raises(feed_errors.UnsafeXml):
        edxl.unwrap(raw, max_bytes=LIMIT)


def test_oversized_envelope_is_refused() -> None:
    """An envelope over the limit is refused before it is parsed."""
    with pytest.raises(feed_errors.TooLarge):
        edxl.unwrap(capsign.edxl(capgen.message("big")), max_bytes=100)
