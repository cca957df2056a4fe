"""The tips catalogue (防災知識の定期配信): its TOML format, the check, and the pure rules that
choose a device's next tip and the time it may be sent.

Format (config/tips/README.md): every `*.toml` file of the catalogue directory but
`titles.toml` holds `[[tip]]` entries; `titles.toml` holds the push title per language.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from alertd import errors, render
from alertd.delivery import push
from sheets.model import HAZARDS, Sheet

LANGUAGES: Final = render.LANGUAGES
FALLBACK: Final = "ja"
# Languages every tip is written in; the others fall back to Japanese where not written.
REQUIRED: Final = ("ja", "ja-easy", "en")
AUDIENCES: Final = ("elderly", "infants", "pets", "flood_zone", "landslide_zone",
                    "tsunami_zone", "no_sheet")
"""Households a tip may be meant for: members aged 65+ (or needing time to leave), children
of 0-5, pets; homes the sheet's hazard map puts in a flood (river or inland), landslide or
tsunami zone; devices without a sheet yet."""
HAZARD_TAGS: Final = (*HAZARDS, "heavy_snow", "avalanche")
"""What a tip is about: the eight hazard flags of the national shelter data, and winter's."""
FIELDS: Final = frozenset({"id", "texts", "hazards", "months", "audience", "link"})
TITLES_FILE: Final = "titles.toml"
MAX_ID_LEN: Final = 40  # "tip-<id>" is the APNs collapse id (64 bytes at most)
MAX_TEXT_CHARS: Final = 400
"""A text longer than this is too long for a push (a lock screen shows about four lines;
the rest is for the inbox): `check` refuses it, as it refuses one the payload limits cut."""
_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_ELDERLY_AGES: Final = frozenset({"65-74", "75+"})


@dataclass(frozen=True, slots=True)
class Tip:
    """One tip of the catalogue."""

    id: str
    texts: Mapping[str, str]
    hazards: tuple[str, ...] = ()
    months: tuple[int, ...] = ()  # empty: all year
    audience: tuple[str, ...] = ()  # empty: everyone
    link: str | None = None
    position: int = 0  # order in the catalogue: earlier tips go first

    def fits(self, month: int, audiences: Collection[str]) -> bool:
        """Whether the tip is for this month and a household with these audiences."""
        return ((not self.months or month in self.months)
                and (not self.audience or any(a in audiences for a in self.audience)))

    def language(self, wanted: str) -> str:
        """The language the tip is shown in for a device wanting `wanted`."""
        return wanted if wanted in self.texts else FALLBACK

    def body(self, lang: str) -> str:
        """The push body in a language (Japanese where not written), with the link."""
        text = self.texts[self.language(lang)]
        return f"{text}\n{self.link}" if self.link else text

    def as_json(self) -> dict[str, Any]:
        """The tip as the staff API lists it."""
        return {"id": self.id, "hazards": list(self.hazards), "months": list(self.months),
                "audience": list(self.audience), "link": self.link, "texts": dict(self.texts)}


@dataclass(frozen=True, slots=True, eq=False)  # compared (and cached) by identity
class Catalogue:
    """Every tip, in catalogue order, and the push title per language."""

    tips: tuple[Tip, ...]
    titles: Mapping[str, str] = field(default_factory=dict)

    def get(self, tip_id: str) -> Tip | None:
        """The tip with this id, or None."""
        return next((t for t in self.tips if t.id == tip_id), None)

    def title(self, lang: str) -> str:
        """The push title for a tip shown in `lang`."""
        return self.titles.get(lang) or self.titles[FALLBACK]


def _problems_of_tip(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{where}: a tip must be a table"]
    problems = [f"{where}: unknown field {k!r}" for k in sorted(set(raw) - FIELDS)]
    tip_id = raw.get("id")
    if not isinstance(tip_id, str) or not tip_id or len(tip_id) > MAX_ID_LEN or not set(
            tip_id) <= _ID_CHARS:
        problems.append(f"{where}: id must be 1-{MAX_ID_LEN} characters of a-z, 0-9 and -")
    texts = raw.get("texts")
    if not isinstance(texts, dict):
        problems.append(f"{where}: texts must be a table of language -> text")
        texts = {}
    for lang in REQUIRED:
        if lang not in texts:
            problems.append(f"{where}: texts.{lang} is missing")
    for lang, text in texts.items():
        if lang not in LANGUAGES:
            problems.append(f"{where}: texts.{lang}: not a shipped language")
        elif not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: texts.{lang} must be a text")
        elif len(text) > MAX_TEXT_CHARS:
            problems.append(f"{where}: texts.{lang} is too long for a push ({len(text)} "
                            f"characters, at most {MAX_TEXT_CHARS})")
    problems += _list_problems(raw.get("hazards", []), HAZARD_TAGS, f"{where}: hazards")
    problems += _list_problems(raw.get("audience", []), AUDIENCES, f"{where}: audience")
    months = raw.get("months", [])
    if not isinstance(months, list) or any(
            isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 12 for m in months):
        problems.append(f"{where}: months must be a list of month numbers 1-12")
    link = raw.get("link")
    if link is not None and (not isinstance(link, str) or not link.startswith("https://")
                             or any(c.isspace() for c in link)):
        problems.append(f"{where}: link must be an https:// URL")
    return problems


def _list_problems(value: Any, allowed: Sequence[str], where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return [f"{where} must be a list of {', '.join(allowed)}"]
    return [f"{where}: unknown {v!r} (one of {', '.join(allowed)})"
            for v in value if v not in allowed]


def _tip(raw: dict[str, Any], position: int) -> Tip:
    return Tip(id=raw["id"], texts=dict(raw["texts"]), hazards=tuple(raw.get("hazards", [])),
               months=tuple(sorted(set(raw.get("months", [])))),
               audience=tuple(raw.get("audience", [])), link=raw.get("link"),
               position=position)


def _titles(text: str, problems: list[str]) -> dict[str, str]:
    where = f"tips/{TITLES_FILE}"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{where}: not valid TOML: {exc}")
        return {}
    titles = raw.get("title")
    if set(raw) != {"title"} or not isinstance(titles, dict):
        problems.append(f"{where}: must hold one table [title] of language -> title")
        return {}
    for lang, value in titles.items():
        if lang not in LANGUAGES or not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: title.{lang} must be a shipped language's title")
    missing = [lang for lang in LANGUAGES if lang not in titles]
    if missing:
        problems.append(f"{where}: title is missing for {', '.join(missing)}")
    return {k: v for k, v in titles.items() if isinstance(v, str)}


def check(files: Mapping[str, str]) -> tuple[Catalogue, list[str]]:
    """Catalogue files (file name -> TOML text) as a catalogue, and every problem found,
    each naming its file and tip: unknown fields, a missing `ja` (or ja-easy, en), duplicate
    ids, unknown hazards, months or audiences, texts too long for a push."""
    problems: list[str] = []
    titles = _titles(files[TITLES_FILE], problems) if TITLES_FILE in files else {}
    if TITLES_FILE not in files:
        problems.append(f"tips/{TITLES_FILE} is missing")
    tips: list[Tip] = []
    where_of: dict[str, str] = {}
    for name in sorted(n for n in files if n != TITLES_FILE):
        try:
            raw = tomllib.loads(files[name])
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"tips/{name}: not valid TOML: {exc}")
            continue
        extra = sorted(set(raw) - {"tip"})
        if extra or not isinstance(raw.get("tip", []), list):
            problems.append(f"tips/{name}: only [[tip]] entries belong here, not "
                            f"{', '.join(extra) or 'tip as a table'}")
            continue
        for i, entry in enumerate(raw.get("tip", [])):
            where = f"tips/{name}: tip {i + 1}"
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                where = f"tips/{name}: tip {entry['id']!r}"
            found = _problems_of_tip(entry, where)
            problems += found
            if found:
                continue
            if entry["id"] in where_of:
                problems.append(f"{where}: duplicate id (also in {where_of[entry['id']]})")
                continue
            where_of[entry["id"]] = f"tips/{name}"
            tips.append(_tip(entry, len(tips)))
    catalogue = Catalogue(tuple(tips), titles)
    if not problems:
        problems += _payload_problems(catalogue)
    if not tips and not problems:
        problems.append("the catalogue holds no tip")
    return catalogue, problems


def _payload_problems(catalogue: Catalogue) -> list[str]:
    """Tips whose push, in some language, the payload limits would cut."""
    problems = []
    for tip in catalogue.tips:
        for lang in LANGUAGES:
            msg = message(catalogue, tip, lang, token="x" * 64)
            try:
                apns_body = push.apns_payload(msg)["aps"]["alert"]["body"]
                fcm_body = push.fcm_message(msg)["message"]["notification"]["body"]
            except errors.PayloadTooLarge:
                apns_body = fcm_body = ""
            if apns_body != msg.body or fcm_body != msg.body:
                problems.append(f"tip {tip.id!r}: its {lang} push does not fit the payload "
                                "limits")
    return problems


def message(catalogue: Catalogue, tip: Tip, lang: str, token: str,
            platform: push.Platform = "ios") -> push.PushMessage:
    """The push a tip becomes for a device of this language (as the dispatcher builds it)."""
    shown = tip.language(lang)
    alert_id = alert_id_for(tip)
    return push.PushMessage(
        delivery_id=0, apns_id="00000000-0000-0000-0000-000000000000", platform=platform,
        token=token, kind="tip", alert_id=alert_id, level=None,
        title=catalogue.title(shown), body=tip.body(shown), collapse_id=alert_id,
        thread_id=alert_id, expires_at=datetime(2100, 1, 1, tzinfo=UTC), priority=5)


def alert_id_for(tip: Tip) -> str:
    """What the phone is told a tip push is about (also its collapse and thread id)."""
    return f"tip-{tip.id}"


def read_dir(path: Path | None) -> dict[str, str]:
    """The catalogue files of a directory (None: the shipped config/tips)."""
    root: Any = path if path is not None else resources.files("alertd.defaults").joinpath(
        "tips")
    try:
        return {entry.name: entry.read_text("utf-8") for entry in root.iterdir()
                if entry.name.endswith(".toml")}
    except OSError as exc:
        raise errors.ConfigError(f"cannot read the tips catalogue {root}: {exc}") from exc


@lru_cache(maxsize=4)
def load(path: Path | None = None) -> Catalogue:
    """The checked catalogue of a directory (None: the shipped one); ConfigError naming every
    problem."""
    catalogue, problems = check(read_dir(path))
    if problems:
        raise errors.ConfigError("tips catalogue: " + "; ".join(problems))
    return catalogue


# -- a household, as tip selection sees it ------------------------------------------------

def audiences(sheets: Iterable[Sheet]) -> frozenset[str]:
    """The audiences a device's live sheets make it part of (`no_sheet` when it has none)."""
    found: set[str] = set()
    count = 0
    for sheet in sheets:
        count += 1
        for member in sheet.members or ():
            needs = member.needs or ()
            if member.age in _ELDERLY_AGES or "elderly" in needs:
                found.add("elderly")
            if member.age == "0-5" or "infant" in needs:
                found.add("infants")
        if sheet.pets:
            found.add("pets")
        exposed = sheet.hazards.exposed if sheet.hazards is not None else ()
        if "flood" in exposed or "inland_flood" in exposed:
            found.add("flood_zone")
        if "landslide" in exposed:
            found.add("landslide_zone")
        if "tsunami" in exposed:
            found.add("tsunami_zone")
    if not count:
        found.add("no_sheet")
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class Choice:
    """The tip a device gets next, and the rotation after it."""

    tip: Tip
    language: str  # the language it is shown in
    restarted: bool  # every fitting tip had been seen: the rotation began again
    seen: frozenset[str]  # the tips seen in this rotation, this one included


def choose(catalogue: Catalogue, month: int, audience: Collection[str], lang: str,
           seen: Collection[str]) -> Choice | None:
    """The next tip for a device: among the tips fitting the month and its household, the
    first it has not seen in this rotation (those written in its language, then those meant
    for its household, before the others; then catalogue order). When it has seen all of
    them the rotation restarts. None when no tip fits."""
    ranked = ranking(catalogue, month, frozenset(audience), lang)
    if not ranked:
        return None
    pick = next((t for t in ranked if t.id not in seen), None)
    if pick is None:  # every fitting tip was seen: the rotation restarts
        pick = ranked[0]
        return Choice(pick, pick.language(lang), True, frozenset({pick.id}))
    return Choice(pick, pick.language(lang), False, frozenset(seen) | {pick.id})


@lru_cache(maxsize=4096)
def ranking(catalogue: Catalogue, month: int, audience: frozenset[str],
            lang: str) -> tuple[Tip, ...]:
    """The tips fitting a month and household, in the order a device of `lang` gets them."""
    fitting = [t for t in catalogue.tips if t.fits(month, audience)]
    return tuple(sorted(fitting, key=lambda t: (
        lang not in t.texts, not any(a in audience for a in t.audience), t.position)))


# -- when a tip may go out ---------------------------------------------------------------

def week_of(now: datetime, zone: ZoneInfo) -> date:
    """The Monday starting the week `now` falls in, in the time zone of the schedule."""
    local = now.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def after_quiet(at: datetime, start: time | None, end: time | None, zone: ZoneInfo) -> datetime:
    """`at`, or the end of the device's quiet hours (its local clock) when `at` falls in them;
    quiet hours may run across midnight (22:00-07:00)."""
    if start is None or end is None or start == end:
        return at
    local = at.astimezone(zone)
    now = local.time().replace(tzinfo=None)
    if start < end:
        if not start <= now < end:
            return at
        day = local.date()
    else:
        if end <= now < start:
            return at
        day = local.date() + timedelta(days=1) if now >= start else local.date()
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone of this name (checked before it is stored)."""
    return ZoneInfo(name)
