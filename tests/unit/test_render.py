"""Push texts rendered from the templates (pure)."""

from __future__ import annotations

from alertd import render

HEADLINE = {"ja": "阿武隈川が氾濫のおそれ", "en": "The Abukuma River may flood"}


def test_japanese_level4_wording() -> None:
    """A level-4 order in Japanese says 避難指示 and 危険な場所から全員避難."""
    t = render.order_text("order", "ja", 4, "flood", HEADLINE, {"ja": "高台へ避難"})
    assert "警戒レベル4 避難指示" in t.title
    assert "洪水" in t.title
    assert "危険な場所から全員避難" in t.body
    assert HEADLINE["ja"] in t.body and "高台へ避難" in t.body


def test_level_wording_differs_per_level() -> None:
    """Levels 3 and 5 carry their own names: 高齢者等避難 and 緊急安全確保."""
    assert "高齢者等避難" in render.order_text("order", "ja", 3, "flood", HEADLINE, {}).title
    assert "緊急安全確保" in render.order_text("order", "ja", 5, "flood", HEADLINE, {}).title


def test_english_device_gets_english() -> None:
    """An en-US device gets the English template and the English headline."""
    t = render.order_text("order", "en-US", 4, "landslide", HEADLINE, {})
    assert t.title.startswith("Alert Level 4")
    assert "landslide" in t.title
    assert HEADLINE["en"] in t.body


def test_unknown_locale_falls_back_to_japanese() -> None:
    """A locale without templates gets Japanese, and so does a missing headline language."""
    t = render.order_text("order", "pt-BR", 4, "flood", HEADLINE, {})
    assert "避難指示" in t.title and HEADLINE["ja"] in t.body
    only_ja = render.order_text("order", "en", 4, "flood", {"ja": "日本語のみ"}, {})
    assert "日本語のみ" in only_ja.body


def test_lift_wording() -> None:
    """A lifting says 解除 in Japanese and Lifted in English."""
    assert "解除" in render.order_text("order_lifted", "ja", 4, "flood", HEADLINE, {}).title
    assert "Lifted" in render.order_text("order_lifted", "en", 4, "flood", HEADLINE, {}).title
