"""Push texts rendered from the per-language templates in config/templates (pure)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from alertd import errors

FALLBACK = "ja"
KINDS = ("order", "order_update", "order_lifted")


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    body: str


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, Any]]:
    """Every shipped template file, by language."""
    root = resources.files("alertd.defaults").joinpath("templates")
    out: dict[str, dict[str, Any]] = {}
    for entry in root.iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name.removesuffix(".toml")] = tomllib.loads(entry.read_text("utf-8"))
    if FALLBACK not in out:
        raise errors.ConfigError(f"templates/{FALLBACK}.toml is missing")
    return out


def language(locale: str, available: Any) -> str:
    """The best available language for a device locale ('en-US' -> 'en'), else the fallback."""
    low = locale.lower()
    if low in available:
        return low
    primary = low.split("-")[0]
    return primary if primary in available else FALLBACK


def pick(texts: dict[str, str], lang: str) -> str:
    """The text in `lang`, else Japanese, else any language given."""
    if not texts:
        return ""
    for key in (lang, FALLBACK):
        if key in texts:
            return texts[key]
    for key, value in texts.items():
        if key.split("-")[0].lower() == lang:
            return value
    return next(iter(texts.values()))


def order_text(kind: str, locale: str, level: int, hazard: str, headline: dict[str, str],
               instruction: dict[str, str]) -> Text:
    """Title and body of an order push for one device locale."""
    cat = catalogue()
    lang = language(locale, cat)
    tpl = cat[lang]
    values = {
        "level": level,
        "level_name": tpl["levels"][str(level)],
        "advice": tpl["advice"][str(level)],
        "hazard": tpl["hazards"].get(hazard, hazard),
        "headline": pick(headline, lang),
        "instruction": pick(instruction, lang),
    }
    title = tpl[kind]["title"].format(**values).strip()
    body = tpl[kind]["body"].format(**values).strip()
    return Text(title=title, body=body)


def shelter_text(locale: str, name: str, address: str, crowding: str | None) -> Text:
    """Title and body of a shelter-opening push for one device locale."""
    cat = catalogue()
    tpl = cat[language(locale, cat)]
    values = {"shelter": name, "address": address,
              "crowding": tpl["crowding"].get(crowding, "") if crowding else ""}
    return Text(title=tpl["shelter_opened"]["title"].format(**values).strip(),
                body=tpl["shelter_opened"]["body"].format(**values).strip())
