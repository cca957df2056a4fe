"""CAP messages to order versions: level, hazard, languages and area (pure)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

import shapely

from alertd import errors, settings
from alertd.ingest import cap_levels
from alertd.orders import HAZARDS, OrderSpec
from feeds import cap, cap_area
from geo import areas, geocodes, municipalities
from geo import errors as geo_errors

# Keywords of CAP `event` texts (Japanese and English), most specific first.
_HAZARD_WORDS: tuple[tuple[str, str], ...] = (
    ("内水", "inland_flood"), ("高潮", "storm_surge"), ("津波", "tsunami"),
    ("土砂", "landslide"), ("崖", "landslide"), ("がけ", "landslide"),
    ("洪水", "flood"), ("氾濫", "flood"), ("大雨", "flood"), ("火山", "volcano"),
    ("噴火", "volcano"), ("地震", "earthquake"), ("火事", "fire"), ("火災", "fire"),
    ("storm surge", "storm_surge"), ("tsunami", "tsunami"), ("landslide", "landslide"),
    ("mudslide", "landslide"), ("debris", "landslide"), ("flood", "flood"),
    ("volcan", "volcano"), ("earthquake", "earthquake"), ("fire", "fire"),
)
_CATEGORY_HAZARD = {"Fire": "fire", "Geo": "earthquake", "Met": "flood"}


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().lower()


def _named(pairs: tuple[tuple[str, str], ...], names: tuple[str, ...]) -> list[str]:
    wanted = {_norm(n) for n in names}
    return [value for name, value in pairs if _norm(name) in wanted]


def is_evacuation(info: cap.CapInfo, cfg: settings.Cap) -> bool:
    """Whether an info block asks people to evacuate (responseType Evacuate or an order level)."""
    return "Evacuate" in info.response_types or cap_levels.order_level(info, cfg) is not None


def is_all_clear(alert: cap.CapAlert) -> bool:
    """Whether the message declares the end of the danger (responseType AllClear)."""
    return any("AllClear" in info.response_types for info in alert.infos)


def speaks_for(sender: str, cfg: settings.Cap) -> frozenset[str]:
    """The senders whose messages ``sender`` may refer to: itself and its aliases."""
    group = {sender}
    for aliases in cfg.sender_aliases:
        if sender in aliases:
            group.update(aliases)
    return frozenset(group)


def references(alert: cap.CapAlert, cfg: settings.Cap) -> list[cap.CapReference]:
    """The references that count, newest first: messages of the sender or of its aliases
    (another feed must not lift or rewrite this sender's orders; a message naming itself
    names nothing). A message whose every reference names another sender is refused: it
    is neither applied to their orders nor taken for a new alert."""
    own = speaks_for(alert.sender, cfg)
    refs = [r for r in alert.references if r.key != alert.key]
    counted = [r for r in refs if r.sender in own]
    if refs and not counted:
        others = ", ".join(sorted({r.sender for r in refs}))
        raise errors.InvalidInput(
            f"{alert.msg_type} from {alert.sender} refers only to messages of other senders "
            f"({others}), which cap.sender_aliases does not let it speak for: not applied, "
            "and not taken for a new alert")
    return list(reversed(counted))


def hazard_of(info: cap.CapInfo, cfg: settings.Cap, default: str = "flood") -> str:
    """The hazard: an explicit parameter, else keywords of the event, else the category."""
    for value in _named(info.parameters + info.event_codes, cfg.hazard_names):
        if _norm(value) in HAZARDS:
            return _norm(value)
    text = _norm(f"{info.event} {info.headline or ''}")
    for word, hazard in _HAZARD_WORDS:
        if word in text:
            return hazard
    for category in info.categories:
        if category in _CATEGORY_HAZARD:
            return _CATEGORY_HAZARD[category]
    return default


def language(tag: str) -> str:
    """The primary language of a CAP language tag ('ja-JP' -> 'ja')."""
    return (tag or "en-US").split("-")[0].lower() or "en"


def scheme(cfg: settings.Settings) -> geocodes.Scheme:
    """Which geocodes are ours, as configured."""
    return geocodes.Scheme(systems=cfg.cap.geocode_systems, prefecture=cfg.feeds.prefecture_code)


def _geocoded(area: cap.CapArea, table: municipalities.Table,
              cfg: settings.Settings) -> shapely.Geometry:
    """The union of an area's geocodes of ours; an area naming none of ours is refused."""
    found = geocodes.resolve_all(area.geocodes, table, scheme(cfg))
    if found.geometry is not None:
        return found.geometry
    if found.not_ours:
        raise errors.InvalidInput(
            f"area {area.desc!r}: its geocodes name no area of the prefecture served "
            f"({', '.join(found.not_ours)}): another prefecture's or unknown codes")
    what = ", ".join(found.unread) if found.unread else "no geocode"
    raise errors.InvalidInput(
        f"area {area.desc!r}: no usable polygon or circle and no geocode of the systems read "
        f"(cap.geocode_systems): {what}")


def area_geometry(infos: list[cap.CapInfo], table: municipalities.Table,
                  cfg: settings.Settings) -> shapely.Geometry:
    """The union of every area of the info blocks; an area nothing can resolve is an error.

    An area's polygons and circles are its shape when it has any; else its geocodes of ours
    (a neighbouring prefecture's codes among them are left out: nobody there is ours to tell)."""
    parts = []
    for info in infos:
        for area in info.areas:
            try:
                shape = cap.area_geometry(area, cfg.orders.max_self_intersections)
            except geo_errors.GeoError as exc:
                raise errors.InvalidInput(f"area {area.desc!r}: {exc.reason}") from exc
            parts.append(shape if shape is not None else _geocoded(area, table, cfg))
    if not parts:
        raise errors.InvalidInput("the message names no area")
    return shapely.union_all(parts)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A CAP message read, with the area of its evacuation blocks resolved when it may need one
    (``resolved``): the geometry, or why there is none (``area_error``)."""

    alert: cap.CapAlert
    resolved: bool = False
    area: shapely.Geometry | None = None
    area_error: str = ""


def check_sent(alert: cap.CapAlert, cfg: settings.Cap, now: datetime) -> None:
    """Refuse a message sent further in the future than the allowed clock skew.

    Messages of an order apply in `sent` order, so one dated 9999 would make every later
    Cancel look older: the order could never be lifted by its feed."""
    if alert.sent > now + timedelta(seconds=cfg.max_future_skew_s):
        raise errors.InvalidInput(
            f"sent {alert.sent.isoformat()} is more than {cfg.max_future_skew_s:g} s in the "
            f"future (now {now.isoformat(timespec='seconds')}); check the sender's clock")


def prepare(table: municipalities.Table, arg: tuple[bytes, settings.Settings, datetime]
            ) -> Prepared:
    """Parse and check a CAP message and resolve its area: the CPU-heavy part of intake, as a
    compute job (see :mod:`alertd.compute`). Errors of the area are kept, not raised: a Cancel
    needs no area, and only an order from the message fails for want of one."""
    raw, cfg, now = arg
    alert = cap.parse(raw, max_bytes=cfg.cap.max_bytes)
    check_sent(alert, cfg.cap, now)
    infos = [i for i in alert.infos if is_evacuation(i, cfg.cap) and i.areas]
    if alert.msg_type not in ("Alert", "Update") or not infos:
        return Prepared(alert)
    try:
        geometry = _checked(
            area_geometry(infos, table, cfg), table, cfg)
    except errors.InvalidInput as exc:
        return Prepared(alert, resolved=True, area_error=exc.reason)
    return Prepared(alert, resolved=True, area=geometry)


def _area(infos: list[cap.CapInfo], table: municipalities.Table, cfg: settings.Settings,
          prepared: Prepared | None) -> shapely.Geometry:
    """The checked area of the info blocks: resolved already by :func:`prepare`, or now."""
    if prepared is None or not prepared.resolved:
        return _checked(area_geometry(infos, table, cfg), table,
                        cfg)
    if prepared.area is None:
        raise errors.InvalidInput(prepared.area_error)
    return prepared.area


def _level(infos: list[cap.CapInfo], cfg: settings.Cap, default: int) -> int:
    """The order level of the evacuation blocks: the first read, else ``default`` when no block
    names one; a level named but unreadable, or below 3 on an Evacuate block, is refused."""
    readings = [cap_levels.read(info, cfg) for info in infos]
    found = [r.order_level for r in readings if r.order_level is not None]
    if found:
        return found[0]
    for reading in readings:
        if reading.unreadable:
            raise errors.InvalidInput(
                f"the level {cap_area.show(reading.unreadable[0])} cannot be read: give 3, 4 or "
                "5, 警戒レベル4 or Level 4 (or a value of cap.level_codes); the level of an "
                "evacuation is never guessed")
        if reading.levels:
            raise errors.InvalidInput(
                f"level {reading.levels[0]} with responseType Evacuate: evacuation orders are "
                "levels 3, 4 and 5")
    return default


def to_spec(alert: cap.CapAlert, table: municipalities.Table, cfg: settings.Settings,
            now: datetime, current: OrderSpec | None = None, *,
            prepared: Prepared | None = None) -> OrderSpec | None:
    """The order version a CAP message asks for, or None when it is not an evacuation.

    With `current` (an Update of an order), what the message leaves out is kept from the
    current version, as a staff PATCH would: level, hazard, texts, expiry and area. With
    `prepared`, the area it resolved is used rather than resolved again."""
    infos = [i for i in alert.infos if is_evacuation(i, cfg.cap)]
    if not infos:
        return None
    level = _level(infos, cfg.cap, current.level if current else cfg.cap.default_level)
    headline: dict[str, str] = {}
    instruction: dict[str, str] = {}
    for info in infos:
        lang = language(info.language)
        text = (info.headline or info.event or "").strip()
        if text and lang not in headline:
            headline[lang] = text[:200]
        if info.instruction and lang not in instruction:
            instruction[lang] = info.instruction.strip()[:2000]
    if current is not None:
        headline = headline or current.headline
        instruction = instruction or current.instruction
    if not headline:
        raise errors.InvalidInput("the message has neither headline nor event text")
    expiries = [i.expires for i in infos if i.expires is not None]
    if expiries:
        expires = min(expiries)
    elif current is not None:
        expires = current.expires_at
    else:
        expires = now + timedelta(seconds=cfg.orders.default_ttl_s)
    expires = min(expires, now + timedelta(seconds=cfg.orders.max_ttl_s))
    if expires <= now:
        raise errors.InvalidInput(f"the message expired at {expires.isoformat()}")
    if current is not None and not any(i.areas for i in infos):
        area = current.area
    else:
        area = areas.Area(kind="polygon", geometry=_area(infos, table, cfg, prepared),
                          area_codes=())
    hazard = hazard_of(infos[0], cfg.cap, current.hazard if current else "flood")
    return OrderSpec(level=level, hazard=hazard, area=area,
                     area_json=current.area_json if current is not None and area is
                     current.area else areas.to_geojson(area),
                     headline=headline, instruction=instruction, expires_at=expires)


def _checked(geometry: shapely.Geometry, table: municipalities.Table,
             cfg: settings.Settings) -> shapely.Geometry:
    """The area, refused when empty, absurdly large, too detailed to store as an order, or
    wholly outside the prefecture served (the same rule as staff areas)."""
    if geometry.is_empty:
        raise errors.InvalidInput("the message's area is empty")
    size = areas.area_km2(geometry)
    if size > cfg.orders.max_area_km2:
        raise errors.InvalidInput(f"the message's area is {size:,.0f} km², more than "
                                  f"orders.max_area_km2 ({cfg.orders.max_area_km2:,.0f})")
    vertices = shapely.get_num_coordinates(geometry)
    if vertices > cfg.orders.max_vertices:
        raise errors.InvalidInput(f"the message's area has {vertices} vertices, more than "
                                  f"orders.max_vertices ({cfg.orders.max_vertices})")
    try:
        areas.check_served(geometry, table)
    except geo_errors.GeoError as exc:
        raise errors.InvalidInput(f"area: {exc.reason}") from exc
    return geometry
