"""The texts of sheet advice, in Japanese and English, one entry per advice code.

Placeholders: {hazards} (hazard names joined), {hazard} (one hazard, as in "flood depth"),
{depth}, {duration}, {floor}, {days}, {zone}, {shelter}, {shelter_id}. Wording follows the
Cabinet Office's 避難情報に関するガイドライン (避難行動判定フロー, 警戒レベル).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

HAZARD_JA: Final = {
    "flood": "洪水", "landslide": "土砂災害", "storm_surge": "高潮", "earthquake": "地震",
    "tsunami": "津波", "fire": "大規模な火事", "inland_flood": "内水氾濫", "volcano": "火山現象",
}
HAZARD_EN: Final = {
    "flood": "floods", "landslide": "landslides", "storm_surge": "storm surges",
    "earthquake": "earthquakes", "tsunami": "tsunamis", "fire": "large fires",
    "inland_flood": "inland flooding", "volcano": "volcanic eruptions",
}
# One water hazard in front of a noun ("flood depth", "storm surge depth").
WATER_EN: Final = {"flood": "flood", "storm_surge": "storm surge",
                   "inland_flood": "inland flood"}
DEPTH: Final = {
    "<0.5": ("0.5m未満", "under 0.5 m"), "0.5-3": ("0.5〜3m", "0.5–3 m"),
    "3-5": ("3〜5m", "3–5 m"), ">5": ("5m以上", "over 5 m"),
}
DURATION: Final = {
    "<12h": ("12時間未満", "under 12 hours"), "12h-1d": ("12時間〜1日", "12 hours to a day"),
    "1d-3d": ("1〜3日", "one to three days"), "3d-1w": ("3日〜1週間", "three days to a week"),
    "1w-2w": ("1〜2週間", "one to two weeks"), "2w-4w": ("2〜4週間", "two to four weeks"),
    ">4w": ("4週間以上", "over four weeks"),
}
ZONE: Final = {
    "warning": ("土砂災害警戒区域", "landslide warning zone (土砂災害警戒区域)"),
    "special": ("土砂災害特別警戒区域", "landslide special warning zone (土砂災害特別警戒区域)"),
}

TEXTS: Final = {
    "house_collapse_zone": (
        "自宅は家屋倒壊等氾濫想定区域にあります。洪水で家屋が倒壊・流失するおそれがあるため、"
        "何階にいても自宅にとどまるのは危険です。早めに立退き避難をしてください。",
        "Your home is in a zone where floods can sweep houses away (家屋倒壊等氾濫想定区域): "
        "staying in is not safe on any floor — leave early."),
    "landslide_zone": (
        "自宅は{zone}にあります。土砂災害のおそれがあるときは自宅にとどまらず、"
        "早めに安全な場所へ立退き避難をしてください。",
        "Your home is in a {zone}: when a landslide threatens, do not stay in — leave early "
        "for a safe place."),
    "tsunami_zone": (
        "自宅は津波浸水想定区域にあります。強い揺れや長い揺れを感じたとき、津波警報などが出たときは、"
        "警戒レベルを待たずに、すぐ高台や津波避難ビルへ避難してください。",
        "Your home is in the tsunami inundation zone: after strong or long shaking, or when a "
        "tsunami warning is issued, do not wait for an alert level — go to high ground or a "
        "tsunami evacuation building at once."),
    "floor_inundated": (
        "{hazard}の想定浸水深は{depth}で、{floor}階まで浸水するおそれがあります。"
        "自宅にとどまるのは危険です。立退き避難をしてください。",
        "Expected {hazard} depth is {depth}, enough to flood {floor}: staying in is not safe "
        "— leave."),
    "depth_unbounded": (
        "{hazard}の想定浸水深は{depth}で、{floor}階でも浸水するおそれがあります。ハザードマップで"
        "正確な深さを確かめ、浸水しない高さにいられなければ立退き避難をしてください。",
        "Expected {hazard} depth is {depth}, which may reach {floor} too: check the exact "
        "depth on the hazard map, and leave unless you can stay above it."),
    "floor_unknown": (
        "自宅は{hazards}による浸水が想定される区域にあります。お住まいの階をシートに記入すると、"
        "自宅にとどまれるかどうかを判定できます。",
        "Your home may be flooded by {hazards}: add the floor you live on to the sheet to tell "
        "whether staying in is safe."),
    "supplies_short": (
        "浸水が{duration}続くおそれがありますが、備蓄は{days}日分です。水が引くまで自宅で"
        "過ごせないため、立退き避難をするか、備蓄を増やしてください。",
        "The water may stay for {duration}, but your supplies last {days} days: you could "
        "not wait it out at home — leave, or stock more."),
    "stay_possible": (
        "{hazards}のとき、想定される浸水より高い階にとどまれ、水が引くまでの備蓄もあります。"
        "自宅にとどまる屋内安全確保も選べますが、周りが浸水すると外に出られなくなることに"
        "注意してください。",
        "For {hazards}, you are above the expected water and your supplies outlast it: staying "
        "in (屋内安全確保) is an option, though you may be cut off until the water recedes."),
    "stay_possible_if_supplies": (
        "{hazards}のとき、想定される浸水より高い階にとどまれます。水が引くまで過ごせる水・"
        "食料などの備えが十分にあれば、自宅にとどまる屋内安全確保も選べます。",
        "For {hazards}, you are above the expected water: if your water, food and other "
        "supplies last until it recedes, staying in (屋内安全確保) is an option."),
    "stay_not_safe": (
        "避難先に「自宅にとどまる」がありますが、{hazards}のとき自宅は安全ではありません。"
        "立退き避難の避難先を決めてください。",
        "Your plan says stay in, but your home is not safe from {hazards}: choose a place to "
        "go instead."),
    "no_destination": (
        "避難先が決まっていません。指定緊急避難場所や、安全な場所にある親戚・知人宅などを"
        "決めておきましょう。",
        "No destination yet: choose a designated evacuation site, or a relative's or friend's "
        "home in a safe place."),
    "shelter_unknown": (
        "避難先の避難所（ID: {shelter_id}）が避難所の一覧に見つかりません。廃止や変更の"
        "可能性があるため、避難先を選び直してください。",
        "Your destination shelter (ID {shelter_id}) is not in the shelter list: it may have "
        "closed or changed, so choose your destination again."),
    "shelter_not_designated": (
        "避難先「{shelter}」は、{hazards}の指定緊急避難場所ではありません。{hazards}のときの"
        "避難先を別に決めておきましょう。",
        "Your destination shelter {shelter} is not designated for {hazards}: choose another "
        "destination for {hazards}."),
    "no_trigger": (
        "{hazards}の危険がありますが、避難を始める警戒レベルが決まっていません。避難に時間が"
        "かかる人がいれば警戒レベル3、そうでなければ遅くとも警戒レベル4で避難しましょう。",
        "Your home is exposed to {hazards}, but the sheet does not say at which alert level you "
        "leave: level 3 if anyone needs time, otherwise level 4 at the latest."),
    "leave_at_level_3": (
        "避難に時間がかかる家族がいます。{hazards}のときは、警戒レベル3（高齢者等避難）で"
        "避難を始めましょう。",
        "Someone in your household needs time or help to leave: for {hazards}, leave at level "
        "3 (高齢者等避難, elderly and others evacuate)."),
    "trigger_level_5": (
        "{hazards}の避難開始が警戒レベル5になっています。警戒レベル5（緊急安全確保）は、"
        "災害が既に発生・切迫していて安全に避難できるとは限らない状況です。警戒レベル4までに"
        "必ず避難してください。",
        "For {hazards}, your plan waits for level 5 (緊急安全確保), when disaster is already "
        "happening or imminent and leaving may no longer be safe: leave by level 4."),
    "support_unassigned": (
        "避難に支援が必要な家族がいますが、支援する人が決まっていません。近所の人や"
        "自主防災組織、市町村（個別避難計画）に相談しておきましょう。",
        "A member needs help to leave but no helper is named: ask your neighbours, the local "
        "voluntary disaster-prevention group or your municipality (個別避難計画, individual "
        "evacuation plan)."),
    "pets_shelter": (
        "ペットと同行避難する場合は、避難所でのペットの受け入れ方法を事前に確かめ、ケージや"
        "フードを用意しておきましょう。",
        "Evacuating with pets: check in advance how your shelter takes them, and keep a "
        "carrier and food ready."),
    "hazards_unknown": (
        "ハザードマップで自宅の災害の危険（浸水の深さ、土砂災害警戒区域など）を確かめて、"
        "シートに記入しましょう。",
        "Check your home on the hazard map (flood depth, landslide zones and so on) and add "
        "what it shows to the sheet."),
    "no_mapped_hazard": (
        "ハザードマップでは、自宅は災害の想定区域に入っていません。原則として自宅の外への避難は"
        "不要ですが、周りより低い土地や崖の近くでは、市町村の避難情報に従って避難してください。",
        "The hazard map puts your home in no hazard zone, so as a rule you need not leave it; "
        "but if it stands lower than its surroundings or near a slope, follow your "
        "municipality's evacuation information."),
}


def hazards_ja(hazards: Sequence[str]) -> str:
    """Hazard names joined the Japanese way (洪水・土砂災害)."""
    return "・".join(HAZARD_JA[h] for h in hazards)


def hazards_en(hazards: Sequence[str]) -> str:
    """Hazard names joined the English way (floods, landslides and tsunamis)."""
    names = [HAZARD_EN[h] for h in hazards]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def floor_en(floor: int) -> str:
    """A floor as English says it; Japanese 1階 is the ground floor."""
    return "the ground floor" if floor == 1 else f"floor {floor}"
