"""How a quarantined input's bytes are shown to a person (alertd.ingest.quarantine.as_text)."""

from __future__ import annotations

from alertd.ingest import quarantine


def test_utf8_is_shown_as_itself() -> None:
    """Valid UTF-8 kept whole is the text itself, valid and not truncated."""
    raw = "<alert>避難指示</alert>".encode()
    assert quarantine.as_text(raw, len(raw)) == {
        "raw": "<alert>避難指示</alert>", "raw_utf8": True, "raw_size": len(raw),
        "truncated": False}


def test_a_character_cut_by_the_bound_is_left_out() -> None:
    """When only the beginning is kept and the cut falls inside a character, that character
    is left out rather than shown as U+FFFD, and the text still counts as valid."""
    raw = "避難".encode()[:4]  # 避 whole, 難 cut after its first byte
    assert quarantine.as_text(raw, 600) == {
        "raw": "避", "raw_utf8": True, "raw_size": 600, "truncated": True}


def test_bytes_that_are_not_utf8_show_as_replacement_characters() -> None:
    """Shift_JIS or binary bytes show as U+FFFD and the text is marked as not UTF-8; a cut
    character at the very end of a whole input is a bad byte too."""
    sjis = "避難".encode("cp932")
    shown = quarantine.as_text(b"<a>" + sjis, 3 + len(sjis))
    assert shown["raw"].startswith("<a>") and "\ufffd" in shown["raw"]
    assert shown["raw_utf8"] is False
    cut = "避".encode()[:2]
    assert quarantine.as_text(cut, 2)["raw"] == "\ufffd"
    assert quarantine.as_text(cut, 2)["raw_utf8"] is False
