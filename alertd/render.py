"""Push texts rendered from the per-language templates in config/templates (pure).

ja.toml is the reference: every other language file has exactly its keys, and each key the
same placeholders (`catalogue()` refuses anything else, naming the file and the key). A device
locale picks its language with `language()`, Japanese when no template fits. Staff-written
headlines and instructions are used in the device's language only; where staff wrote none
in that language, the template's generic sentence for the level and hazard stands in.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from alertd import errors, orders, shelters
from alertd.delivery import push

FALLBACK = "ja"
LANGUAGES = ("ja", "ja-easy", "en", "zh-Hans", "zh-Hant", "ko", "vi", "tl", "ne", "pt")
KINDS = ("order", "order_update", "order_lifted", "shelter_opened", "warning")
PLACE_KINDS = ("home", "work", "school", "relative", "other")
DESTINATION_KINDS = ("shelter", "relative", "hotel", "stay")
SHELTER_STATES = ("open", "not_open", "full", "unsuitable")
ELSEWHERE_STATES = ("safe", "not_safe")
# Lock screens show one or two lines of a title: a longer one (a shelter's long name) is cut.
TITLE_MAX_CHARS = 100

_LEVELS = tuple(str(level) for level in orders.LEVELS)
_ORDER = frozenset({"level", "level_name", "advice", "hazard", "headline", "instruction", "plan"})
_NONE: frozenset[str] = frozenset()

# Section -> (its keys, the placeholders its texts may use). ja.toml must have exactly these
# keys; the other files exactly ja.toml's keys, each with the placeholders ja.toml uses there.
SCHEMA: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "levels": (_LEVELS, _NONE),
    "level_names": (_LEVELS, _NONE),
    "advice": (_LEVELS, _NONE),
    "hazards": (orders.HAZARDS, _NONE),
    "generic": (("headline", "instruction"), frozenset({"level", "level_name", "hazard"})),
    "order": (("title", "body"), _ORDER),
    "order_update": (("title", "body"), _ORDER),
    "order_lifted": (("title", "body"), _ORDER),
    "shelter_opened": (("title", "body", "at_address"),
                       frozenset({"shelter", "address", "crowding"})),
    "warning": (("title", "body", "level_equivalent", "action"),
                frozenset({"warning", "area", "level", "level_equivalent", "level_name",
                           "hazard", "action"})),
    "crowding": (shelters.CROWDING, _NONE),
    "crowding_short": ((*shelters.CROWDING, "unknown"), _NONE),
    "places": (PLACE_KINDS, _NONE),
    "destinations": (("relative", "hotel"), _NONE),
    "plan": (("in_area", "labelled", "leave_now", "prepare", "too_late_to_move",
              "destination_open", "destination_not_open", "destination_full",
              "destination_unsuitable", "nearest_open", "no_open_shelter", "stay_ok",
              "stay_not_safe", "go_to", "go_to_not_safe"),
             frozenset({"place", "label", "order", "trigger", "shelter", "crowding", "hazard",
                        "distance"})),
    "units": (("m", "km", "decimal_mark"), frozenset({"n"})),
    "format": (("sentence_gap",), _NONE),
}
# Keys whose text may be empty (Japanese and Chinese put nothing between sentences).
_MAY_BE_EMPTY = frozenset({"format.sentence_gap"})

Templates = Mapping[str, str]
"""One language's texts, by flat key: "levels.4", "plan.leave_now", …"""


@dataclass(frozen=True, slots=True)
class Text:
    """A rendered notification: its title and its body."""

    title: str
    body: str


@dataclass(frozen=True, slots=True)
class Destination:
    """A household's first destination: a shelter with its state (open, not_open, full, or
    unsuitable for the hazard), or a relative's home, a hotel or staying in, each safe or
    not_safe as the sheet's hazards and the alert's area say."""

    kind: str
    state: str
    name: str = ""
    crowding: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in DESTINATION_KINDS:
            raise ValueError(f"unknown destination kind {self.kind!r}")
        states = SHELTER_STATES if self.kind == "shelter" else ELSEWHERE_STATES
        if self.state not in states:
            raise ValueError(f"a {self.kind} destination is {' or '.join(states)}, "
                             f"not {self.state!r}")

    @property
    def needs_alternative(self) -> bool:
        """Whether the household should be told of another place to go."""
        return self.state not in ("open", "safe")


@dataclass(frozen=True, slots=True)
class Nearest:
    """The nearest open shelter suitable for the hazard, and how far it is."""

    name: str
    distance_m: float


@dataclass(frozen=True, slots=True)
class Plan:
    """What a household's sheet says about one alert, as the caller worked it out: which of
    its places is in the area, the level at which it leaves for this hazard, its first
    destination, and the nearest open suitable shelter."""

    place: str | None = None
    place_label: str = ""
    trigger: int | None = None
    destination: Destination | None = None
    nearest: Nearest | None = None

    def __post_init__(self) -> None:
        if self.place is not None and self.place not in PLACE_KINDS:
            raise ValueError(f"unknown place kind {self.place!r}")
        if self.trigger is not None and self.trigger not in orders.LEVELS:
            raise ValueError(f"a trigger level is 3, 4 or 5, not {self.trigger!r}")


def fields(text: str) -> frozenset[str]:
    """The placeholder names a template text uses; ValueError for broken braces."""
    names = set()
    for _, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"{{{name}}} is not a plain placeholder")
        names.add(name)
    return frozenset(names)


def _flatten(raw: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for section, table in raw.items():
        if not isinstance(table, dict):
            problems.append(f"{where}: key {section} is not a table")
            continue
        for key, value in table.items():
            if isinstance(value, str):
                flat[f"{section}.{key}"] = value
            else:
                problems.append(f"{where}: key {section}.{key} is not a string")
    return flat


def _schema_problems(table: Templates, where: str) -> list[str]:
    """What differs between the reference file and SCHEMA."""
    problems = []
    expected = {f"{s}.{k}" for s, (keys, _) in SCHEMA.items() for k in keys}
    problems += [f"{where}: missing key {k}" for k in sorted(expected - table.keys())]
    problems += [f"{where}: unknown key {k}" for k in sorted(table.keys() - expected)]
    for key in sorted(expected & table.keys()):
        try:
            unknown = fields(table[key]) - SCHEMA[key.split(".")[0]][1]
        except ValueError as exc:
            problems.append(f"{where}: key {key}: {exc}")
            continue
        if unknown:
            problems.append(f"{where}: key {key} uses unknown placeholder "
                            + ", ".join(f"{{{n}}}" for n in sorted(unknown)))
    return problems


def _language_problems(table: Templates, reference: Templates, where: str) -> list[str]:
    """What differs between one language file and ja.toml."""
    problems = [f"{where}: missing key {k}" for k in sorted(reference.keys() - table.keys())]
    problems += [f"{where}: unknown key {k} (not in ja.toml)"
                 for k in sorted(table.keys() - reference.keys())]
    for key in sorted(reference.keys() & table.keys()):
        try:
            mine, theirs = fields(table[key]), fields(reference[key])
        except ValueError as exc:
            problems.append(f"{where}: key {key}: {exc}")
            continue
        if mine != theirs:
            show = ", ".join(f"{{{n}}}" for n in sorted(mine)) or "none"
            want = ", ".join(f"{{{n}}}" for n in sorted(theirs)) or "none"
            problems.append(f"{where}: key {key} uses {show}; ja.toml uses {want}")
    return problems


def check(files: Mapping[str, str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Template files (file name -> TOML text) as texts by language, and every problem found,
    each naming its file and key."""
    problems: list[str] = []
    tables: dict[str, dict[str, str]] = {}
    for name in sorted(files):
        where = f"templates/{name}"
        try:
            raw = tomllib.loads(files[name])
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"{where}: not valid TOML: {exc}")
            continue
        table = _flatten(raw, where, problems)
        problems += [f"{where}: key {k} is empty" for k, v in sorted(table.items())
                     if not v.strip() and k not in _MAY_BE_EMPTY]
        tables[name.removesuffix(".toml")] = table
    reference = tables.get(FALLBACK)
    if reference is None:
        return tables, [*problems, f"templates/{FALLBACK}.toml is missing"]
    problems += _schema_problems(reference, f"templates/{FALLBACK}.toml")
    for lang, table in sorted(tables.items()):
        if lang != FALLBACK:
            problems += _language_problems(table, reference, f"templates/{lang}.toml")
    return tables, problems


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """Every shipped template file, by language; ConfigError naming each file and key at
    fault."""
    root = resources.files("alertd.defaults").joinpath("templates")
    files = {entry.name: entry.read_text("utf-8") for entry in root.iterdir()
             if entry.name.endswith(".toml")}
    tables, problems = check(files)
    if problems:
        raise errors.ConfigError("; ".join(problems))
    return tables


def wanted(locale: str) -> str:
    """The template language a locale asks for, before knowing which ones exist: zh-TW ->
    zh-Hant, zh-SG -> zh-Hans, ja-Hira -> ja-easy, fil -> tl, pt-BR -> pt, en-US -> en."""
    parts = locale.strip().replace("_", "-").lower().split("-")
    primary, rest = parts[0], set(parts[1:])
    if primary == "zh":
        # The script decides where given (zh-Hans-HK is Simplified); else the region.
        if "hant" in rest or ("hans" not in rest and rest & {"tw", "hk", "mo"}):
            return "zh-Hant"
        return "zh-Hans"
    if primary == "yue":  # Cantonese is written in Traditional characters
        return "zh-Hant"
    if primary == "ja" and rest & {"easy", "hira"}:
        return "ja-easy"
    if primary == "fil":
        return "tl"
    return primary


def language(locale: str, available: Collection[str] = LANGUAGES) -> str:
    """The best available language for a device locale (case-insensitive), else Japanese."""
    want = wanted(locale).lower()
    return next((lang for lang in available if lang.lower() == want), FALLBACK)


def staff_text(texts: Mapping[str, str], lang: str) -> str | None:
    """The staff-written text in a template language (its own tag first, then any tag that
    asks for it: "zh-TW" for zh-Hant, "pt-BR" for pt), None when staff wrote none in it."""
    if lang in texts:
        return texts[lang]
    return next((text for tag, text in texts.items() if wanted(tag) == wanted(lang)), None)


def _templates(locale: str) -> tuple[str, Templates]:
    cat = catalogue()
    lang = language(locale, cat)
    return lang, cat[lang]


def _tidy(text: str) -> str:
    """Lines stripped and blank ones dropped: a part left out leaves no gap."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _title(text: str) -> str:
    return push.shorten(" ".join(text.split()), TITLE_MAX_CHARS)


def _hazard(tpl: Templates, hazard: str) -> str:
    return tpl.get(f"hazards.{hazard}", hazard)


def order_text(kind: str, locale: str, level: int, hazard: str, headline: Mapping[str, str],
               instruction: Mapping[str, str], plan: Plan | None = None) -> Text:
    """Title and body of an order push (order, order_update, order_lifted) for one locale."""
    lang, tpl = _templates(locale)
    base = {"level": level, "level_name": tpl[f"levels.{level}"],
            "hazard": _hazard(tpl, hazard)}
    values = {
        **base,
        "advice": tpl[f"advice.{level}"],
        "headline": staff_text(headline, lang) or tpl["generic.headline"].format(**base),
        "instruction": (staff_text(instruction, lang)
                        or tpl["generic.instruction"].format(**base)),
        "plan": _plan(tpl, plan, level, hazard, tpl[f"level_names.{level}"]) if plan else "",
    }
    return Text(title=_title(tpl[f"{kind}.title"].format(**values)),
                body=_tidy(tpl[f"{kind}.body"].format(**values)))


def shelter_text(locale: str, name: str, address: str, crowding: str | None) -> Text:
    """Title and body of a shelter-opening push for one device locale."""
    _, tpl = _templates(locale)
    values = {
        "shelter": name,
        "address": tpl["shelter_opened.at_address"].format(address=address) if address else "",
        "crowding": tpl.get(f"crowding.{crowding}", "") if crowding else "",
    }
    return Text(title=_title(tpl["shelter_opened.title"].format(**values)),
                body=_tidy(tpl["shelter_opened.body"].format(**values)))


def warning_text(locale: str, level: int, hazard: str, warning: str, area: str,
                 plan: Plan | None = None) -> Text:
    """Title and body of a JMA-warning heads-up (警戒レベルN相当) for one device locale: what
    JMA issued where, and what the household's plan says to do at this level."""
    _, tpl = _templates(locale)
    action = _plan(tpl, plan, level, hazard, warning) if plan else tpl["warning.action"]
    values = {
        "warning": warning, "area": area, "level": level,
        "level_equivalent": tpl["warning.level_equivalent"].format(level=level),
        "level_name": tpl[f"levels.{level}"], "hazard": _hazard(tpl, hazard),
        "action": action or tpl["warning.action"],
    }
    return Text(title=_title(tpl["warning.title"].format(**values)),
                body=_tidy(tpl["warning.body"].format(**values)))


def plan_text(locale: str, plan: Plan, level: int, hazard: str, order_name: str | None = None
              ) -> str:
    """The household's plan, said for this alert in the device's language: its place in the
    area, leave now or prepare, its destination's state and, when that will not do, the
    nearest open suitable shelter. order_name names the alert (default: the level's name)."""
    _, tpl = _templates(locale)
    return _plan(tpl, plan, level, hazard, order_name or tpl[f"level_names.{level}"])


def _plan(tpl: Templates, plan: Plan, level: int, hazard: str, order_name: str) -> str:
    sentences = []
    if plan.place is not None:
        sentences.append(place_phrase(tpl, plan.place, plan.place_label, order_name))
    if plan.trigger is not None:
        sentences.append(trigger_phrase(tpl, level, plan.trigger))
    dest = plan.destination
    if dest is not None:
        sentences.append(destination_phrase(tpl, dest, hazard))
    if dest is None or dest.needs_alternative:
        if plan.nearest is not None:
            sentences.append(tpl["plan.nearest_open"].format(
                shelter=plan.nearest.name, hazard=_hazard(tpl, hazard),
                distance=distance(tpl, plan.nearest.distance_m)))
        elif dest is not None:
            sentences.append(tpl["plan.no_open_shelter"])
    return tpl["format.sentence_gap"].join(sentences)


def place_phrase(tpl: Templates, place: str, label: str, order_name: str) -> str:
    """Which of the household's places is in the alert's area."""
    name = tpl[f"places.{place}"]
    if label and place != "home":
        name = tpl["plan.labelled"].format(place=name, label=label)
    return tpl["plan.in_area"].format(place=name, order=order_name)


def trigger_phrase(tpl: Templates, level: int, trigger: int) -> str:
    """Leave now (the plan's level is reached), prepare (not yet), or, at level 5, move
    only as far as is still safe."""
    if level < trigger:
        return tpl["plan.prepare"].format(trigger=trigger)
    if level >= 5:
        return tpl["plan.too_late_to_move"].format(trigger=trigger)
    return tpl["plan.leave_now"].format(trigger=trigger)


def destination_phrase(tpl: Templates, dest: Destination, hazard: str) -> str:
    """The household's first destination and its live state."""
    if dest.kind == "shelter":
        crowding = tpl[f"crowding_short.{dest.crowding or 'unknown'}"]
        return tpl[f"plan.destination_{dest.state}"].format(
            shelter=dest.name, crowding=crowding, hazard=_hazard(tpl, hazard))
    if dest.kind == "stay":
        return tpl["plan.stay_ok" if dest.state == "safe" else "plan.stay_not_safe"]
    place = dest.name or tpl[f"destinations.{dest.kind}"]
    return tpl["plan.go_to" if dest.state == "safe" else "plan.go_to_not_safe"].format(
        place=place)


def distance(tpl: Templates, metres: float) -> str:
    """A distance as people say it: 10-metre steps below a kilometre, else 0.1 km steps."""
    rounded = round(metres / 10) * 10
    if rounded < 1000:
        return tpl["units.m"].format(n=max(rounded, 10))
    km = f"{metres / 1000:.1f}".replace(".", tpl["units.decimal_mark"])
    return tpl["units.km"].format(n=km)
