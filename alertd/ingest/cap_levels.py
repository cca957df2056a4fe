"""The 警戒レベル a CAP info block carries, read exactly (pure).

A level is read from the values of parameters and eventCodes whose valueName is one of
``cap.level_names``, and from any eventCode value listed in ``cap.level_codes``. A value reads
as a level only when it says nothing else: ``4``, ``４``, ``警戒レベル4``, ``警戒レベル４``,
``レベル4``, ``Level 4`` (a trailing parenthetical remark, or "of 5", may follow). Any other
value is unreadable: ``警戒レベル4相当`` (a JMA warning's equivalent, not an order),
``0.5`` and ``2024年`` never lend their digits to a level.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from alertd import settings
from feeds import cap

ORDER_LEVELS = (3, 4, 5)
# After NFKC and case folding; one digit 1-5, a remark in brackets or "of 5" may follow.
_LEVEL = re.compile(
    r"(?:(?:警戒)?レベル|level)?\s*([1-5])(?:\s*of\s*5)?(?:\s*\([^()]*\))?")


@dataclass(frozen=True, slots=True)
class Reading:
    """What an info block says of its level: the levels read and the values that were not."""

    levels: tuple[int, ...] = ()
    unreadable: tuple[str, ...] = ()

    @property
    def order_level(self) -> int | None:
        """The first level that is an evacuation order's (3, 4 or 5), if any."""
        return next((lv for lv in self.levels if lv in ORDER_LEVELS), None)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold()


def read_value(value: str) -> int | None:
    """The level (1-5) a single value names outright, or None when it says anything else."""
    found = _LEVEL.fullmatch(_fold(value))
    return int(found.group(1)) if found else None


def _coded(value: str, cfg: settings.Cap) -> int | None:
    folded = _fold(value)
    return next((level for code, level in cfg.level_codes if _fold(code) == folded), None)


def read(info: cap.CapInfo, cfg: settings.Cap) -> Reading:
    """Every level the info block's level-named values and configured event codes carry."""
    names = {_fold(n) for n in cfg.level_names}
    levels: list[int] = []
    unreadable: list[str] = []
    for name, value in info.parameters + info.event_codes:
        if _fold(name) not in names:
            continue
        level = read_value(value)
        if level is None:
            level = _coded(value, cfg)
        if level is None:
            unreadable.append(value)
        else:
            levels.append(level)
    for name, value in info.event_codes:
        if _fold(name) not in names and (level := _coded(value, cfg)) is not None:
            levels.append(level)
    return Reading(tuple(levels), tuple(unreadable))


def order_level(info: cap.CapInfo, cfg: settings.Cap) -> int | None:
    """The order level (3, 4 or 5) an info block names, if it names one readably."""
    return read(info, cfg).order_level
