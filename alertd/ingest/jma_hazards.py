"""JMA warnings as hazards and 警戒レベル equivalents, and their episodes (pure).

A warning kind says what it is about in the type of the Significancy or Property that states
its level (大雨浸水危険度 → inland flooding, 土砂災害危険度 → landslides); where it states a
level untyped, or none, its name says the hazard (洪水警報 → floods) and, for the kinds JMA
defines as equivalents without writing it (土砂災害警戒情報 is 警戒レベル４相当), the level.

An episode is one warning kind in force in one area for one hazard, from its issue until a
report no longer has it in force (解除, なし, or a retraction); a re-issue is a new episode.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from alertd.ingest import jma_states
from feeds import jma

# Read in this order: 大雨浸水 is inland flooding, not the 大雨 of landslides.
_BY_WORD: Final = (
    ("土砂", "landslide"),
    ("浸水", "inland_flood"),
    ("洪水", "flood"),
    ("氾濫", "flood"),
    ("高潮", "storm_surge"),
    ("大雨", "landslide"),  # an untyped 大雨警報's 警戒レベル３相当 is about landslides
)
# Levels JMA's kinds are equivalent to without stating it, by a word of their name.
_DEFAULT_LEVELS: Final = (
    ("特別警報", 5),
    ("土砂災害警戒情報", 4),
    ("危険警報", 4),
    ("高潮警報", 4),
    ("警報", 3),
)


@dataclass(frozen=True, slots=True)
class InForce:
    """One warning kind in force in one area, for one hazard at one level."""

    area_code: str
    area_name: str
    warning_type: str
    kind_code: str
    kind_name: str
    hazard: str
    level: int

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies its episode: area, warning type, kind, hazard."""
        return (self.area_code, self.warning_type, self.kind_code, self.hazard)


@dataclass(frozen=True, slots=True)
class OpenEpisode:
    """An episode not ended yet, as stored."""

    id: int
    key: tuple[str, str, str, str]
    level: int


@dataclass(frozen=True, slots=True)
class EpisodeChanges:
    """What a report does to the episodes of its warning types."""

    started: tuple[InForce, ...]
    leveled: tuple[tuple[int, int], ...]  # (episode id, its new level)
    ended: tuple[int, ...]


def hazard_of(text: str) -> str | None:
    """The hazard a type or kind name is about (None: none of ours, e.g. 波浪)."""
    return next((hazard for word, hazard in _BY_WORD if word in text), None)


def default_level(name: str) -> int | None:
    """The 警戒レベル a kind is equivalent to by JMA's definition when it states none."""
    return next((level for word, level in _DEFAULT_LEVELS if word in name), None)


def hazard_levels(kind: jma.JmaKind) -> dict[str, int]:
    """The hazards a warning kind is about, each with its 警戒レベル equivalent."""
    typed: dict[str, int] = {}
    untyped: list[int] = []
    for stated in kind.levels:
        hazard = hazard_of(stated.source) if stated.source else None
        if hazard is None:
            untyped.append(stated.level)
        else:
            typed[hazard] = max(typed.get(hazard, 0), stated.level)
    if typed:
        return typed
    hazard = hazard_of(kind.name)
    level = max(untyped) if untyped else default_level(kind.name)
    return {hazard: level} if hazard is not None and level is not None else {}


def in_force(report: jma.JmaReport, prefecture: str, warning_types: Iterable[str]
             ) -> list[InForce]:
    """The warning kinds the report has in force in the prefecture's municipal areas for
    these warning types, one per hazard they are about."""
    types = set(warning_types)
    return [
        InForce(w.area_code, w.area_name, w.warning_type, k.code, k.name, hazard, level)
        for w in jma_states.ours(report, prefecture) if w.warning_type in types
        for k in w.kinds if jma_states.is_in_force(k)
        for hazard, level in sorted(hazard_levels(k).items())
    ]


def changes(current: Sequence[OpenEpisode], restated: Sequence[InForce]) -> EpisodeChanges:
    """What a report restating `current`'s warning types does: episodes it has in force and
    none is open for start, open ones whose level it changes take the new level, open ones it
    no longer has in force end."""
    by_key = {e.key: e for e in current}
    wanted: dict[tuple[str, str, str, str], InForce] = {}
    for w in restated:
        if w.key not in wanted or w.level > wanted[w.key].level:
            wanted[w.key] = w
    started = tuple(w for k, w in wanted.items() if k not in by_key)
    leveled = tuple((by_key[k].id, w.level) for k, w in wanted.items()
                    if k in by_key and w.level != by_key[k].level)
    ended = tuple(e.id for e in current if e.key not in wanted)
    return EpisodeChanges(started, leveled, ended)
