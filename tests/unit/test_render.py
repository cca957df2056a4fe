"""Push texts rendered from the templates (pure)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from alertd import errors, render

HEADLINE = {"ja": "阿武隈川が氾濫のおそれ", "en": "The Abukuma River may flood"}
TEMPLATES = Path(__file__).parents[2] / "config" / "templates"


def test_japanese_level4_wording() -> None:
    """A level-4 order in Japanese says 避難指示 and 危険な場所から全員避難."""
    t = render.order_text("order", "ja", 4, "flood", HEADLINE, {"ja": "高台へ避難"})
    assert t.title == "【警戒レベル4 避難指示】洪水"
    assert t.body == "阿武隈川が氾濫のおそれ\n危険な場所から全員避難してください。\n高台へ避難"


@pytest.mark.parametrize(("level", "name"), [
    (3, "警戒レベル3 高齢者等避難"), (4, "警戒レベル4 避難指示"), (5, "警戒レベル5 緊急安全確保"),
])
def test_official_japanese_level_names(level: int, name: str) -> None:
    """Each level carries its official name: 高齢者等避難, 避難指示, 緊急安全確保."""
    assert render.order_text("order", "ja", level, "flood", HEADLINE, {}).title == f"【{name}】洪水"


@pytest.mark.parametrize(("lang", "names"), [
    ("en", ("Alert Level 3: Evacuation of Elderly People, etc.",
            "Alert Level 4: Evacuation Instructions",
            "Alert Level 5: Emergency Safety Measures")),
    ("zh-Hans", ("警戒等级3：高龄者等避难", "警戒等级4：避难指示", "警戒等级5：紧急确保安全")),
    ("zh-Hant", ("警戒等級3：高齡者等避難", "警戒等級4：避難指示", "警戒等級5：緊急確保安全")),
    ("ko", ("경계 레벨 3 고령자 등 피난", "경계 레벨 4 피난 지시", "경계 레벨 5 긴급 안전 확보")),
    ("vi", ("Cấp độ cảnh báo 3: Sơ tán người cao tuổi, v.v.",
            "Cấp độ cảnh báo 4: Chỉ thị sơ tán",
            "Cấp độ cảnh báo 5: Đảm bảo an toàn khẩn cấp")),
])
def test_level_names_per_language(lang: str, names: tuple[str, str, str]) -> None:
    """The level names follow the government's multilingual terms."""
    cat = render.catalogue()
    assert tuple(cat[lang][f"levels.{n}"] for n in (3, 4, 5)) == names


@pytest.mark.parametrize("lang", render.LANGUAGES)
def test_every_language_keeps_the_level_number_visible(lang: str) -> None:
    """Every language's level names and titles show the level number as a digit."""
    for level in (3, 4, 5):
        name = render.catalogue()[lang][f"levels.{level}"]
        assert str(level) in name
        assert name in render.order_text("order", lang, level, "tsunami", {}, {}).title


@pytest.mark.parametrize(("locale", "lang"), [
    ("ja", "ja"), ("ja-JP", "ja"), ("JA", "ja"), ("ja-easy", "ja-easy"), ("ja-Hira", "ja-easy"),
    ("ja-Hira-JP", "ja-easy"), ("en", "en"), ("en-US", "en"), ("en_GB", "en"),
    ("zh", "zh-Hans"), ("zh-CN", "zh-Hans"), ("zh-SG", "zh-Hans"), ("zh-Hans", "zh-Hans"),
    ("zh-Hans-JP", "zh-Hans"), ("zh-hans-hk", "zh-Hans"), ("zh-TW", "zh-Hant"),
    ("zh-HK", "zh-Hant"), ("zh-MO", "zh-Hant"), ("zh-Hant", "zh-Hant"),
    ("zh-Hant-TW", "zh-Hant"), ("ZH-HANT", "zh-Hant"), ("yue-HK", "zh-Hant"), ("ko-KR", "ko"),
    ("vi-VN", "vi"), ("tl", "tl"), ("fil", "tl"), ("fil-PH", "tl"), ("ne-NP", "ne"),
    ("pt", "pt"), ("pt-BR", "pt"), ("pt-PT", "pt"), ("es", "ja"), ("id-ID", "ja"), ("", "ja"),
])
def test_locale_resolution(locale: str, lang: str) -> None:
    """Device locales map to template languages, case-insensitively; unknown ones to ja."""
    assert render.language(locale) == lang


def test_staff_text_is_used_in_the_devices_language() -> None:
    """An en-US device gets the English staff headline under English level wording."""
    t = render.order_text("order", "en-US", 4, "landslide", HEADLINE, {})
    assert t.title == "Alert Level 4: Evacuation Instructions (landslide)"
    assert t.body == (
        "The Abukuma River may flood\n"
        "Everyone in a dangerous place must evacuate now.\n"
        "Check the latest information on TV, radio and from your municipality.")


def test_template_replaces_staff_text_missing_in_the_devices_language() -> None:
    """A Vietnamese phone never gets Japanese staff text: the Vietnamese generic sentence
    stands in for the headline and the instruction written in Japanese only."""
    t = render.order_text("order", "vi-VN", 4, "flood", {"ja": "日本語のみ"}, {"ja": "高台へ"})
    assert t.title == "Cấp độ cảnh báo 4: Chỉ thị sơ tán (lũ lụt)"
    assert t.body == (
        "Đã ban hành Cấp độ cảnh báo 4: Chỉ thị sơ tán do nguy cơ lũ lụt.\n"
        "Tất cả mọi người ở nơi nguy hiểm hãy sơ tán ngay.\n"
        "Hãy kiểm tra thông tin mới nhất trên tivi, radio và từ chính quyền địa phương.")
    assert "日本語" not in t.body and "高台" not in t.body


def test_staff_text_tagged_with_a_region_reaches_its_language() -> None:
    """Staff text tagged zh-TW reaches a zh-Hant-TW phone; a zh-CN phone gets the template."""
    staff = {"ja": "避難してください", "zh-TW": "請立即避難"}
    assert render.staff_text(staff, "zh-Hant") == "請立即避難"
    assert render.staff_text(staff, "zh-Hans") is None
    hant = render.order_text("order", "zh-Hant-TW", 4, "flood", staff, {})
    assert hant.body.startswith("請立即避難\n")
    hans = render.order_text("order", "zh-CN", 4, "flood", staff, {})
    assert hans.body.startswith("因有洪水的危险，已发布警戒等级4：避难指示。\n")


def test_easy_japanese_device_gets_easy_japanese() -> None:
    """A ja-easy device gets やさしい日本語, not the ja staff text."""
    t = render.order_text("order", "ja-easy", 4, "flood", HEADLINE, {})
    assert t.title == "【けいかいレベル4 ひなんしじ】こうずい（かわの みずが あふれる）"
    assert t.body.splitlines()[1] == "あぶない ところに いる ひとは、みんな にげて ください。"
    assert HEADLINE["ja"] not in t.body


def test_lift_wording() -> None:
    """A lifting says 解除 in Japanese and Lifted in English."""
    ja = render.order_text("order_lifted", "ja", 4, "flood", HEADLINE, {})
    assert ja == render.Text("【解除】警戒レベル4 避難指示（洪水）",
                             "警戒レベル4 避難指示（洪水）は解除されました。\n"
                             "引き続き最新の情報に注意してください。")
    en = render.order_text("order_lifted", "en", 4, "flood", HEADLINE, {})
    assert en.title == "Lifted: Alert Level 4: Evacuation Instructions (flood)"


def test_shelter_text_with_and_without_address() -> None:
    """A shelter opening names the address when known and leaves no empty brackets."""
    t = render.shelter_text("ja", "渡利小学校", "福島市渡利", "medium")
    assert t == render.Text("【避難所開設】渡利小学校",
                            "渡利小学校（福島市渡利）が開設されました。やや混雑しています。")
    bare = render.shelter_text("en", "Watari Elementary School", "", None)
    assert bare.body == "Watari Elementary School is now open."


def test_long_title_is_cut_safely() -> None:
    """A shelter name too long for a title is cut at TITLE_MAX_CHARS with an ellipsis."""
    t = render.shelter_text("ja", "避" * 300, "", None)
    assert len(t.title) == render.TITLE_MAX_CHARS + 1
    assert t.title.endswith("…") and "避" * 300 in t.body


def test_warning_text() -> None:
    """A JMA heads-up says what JMA issued where, at which level equivalent, and what to do."""
    ja = render.warning_text("ja", 3, "landslide", "レベル３大雨警報", "福島市")
    assert ja == render.Text(
        "【気象警報・警戒レベル3相当】土砂災害",
        "気象庁が福島市にレベル３大雨警報を発表しました。\n"
        "避難先と避難経路を確認し、早めに避難できるよう準備してください。")
    en = render.warning_text("en-GB", 3, "landslide", "レベル３大雨警報", "Fukushima City",
                             render.Plan(trigger=3))
    assert en == render.Text(
        "Weather warning, Alert Level 3 equivalent: landslide",
        "The Japan Meteorological Agency has issued レベル３大雨警報 for Fukushima City.\n"
        "Your plan is to evacuate at Alert Level 3. Evacuate now.")


SHELTER = "渡利小学校"


@pytest.mark.parametrize(("plan", "ja", "en"), [
    (render.Plan(place="home"), "自宅が避難指示の対象区域です。",
     "Your home is in the area under Evacuation Instructions."),
    (render.Plan(place="relative", place_label="実家"),
     "親せき・知人の家（実家）が避難指示の対象区域です。",
     "Your relative's or friend's home (実家) is in the area under Evacuation Instructions."),
    (render.Plan(trigger=3), "あなたの計画では警戒レベル3で避難します。今すぐ避難してください。",
     "Your plan is to evacuate at Alert Level 3. Evacuate now."),
    (render.Plan(trigger=5),
     "あなたの計画では警戒レベル5で避難します。今のうちに避難の準備をしてください。",
     "Your plan is to evacuate at Alert Level 5. Get ready to evacuate now."),
    (render.Plan(destination=render.Destination("shelter", "open", SHELTER, "low")),
     "あなたの避難先「渡利小学校」は開設済みです（混雑：空き）。",
     "Your evacuation shelter, 渡利小学校, is open (crowding: not crowded)."),
    (render.Plan(destination=render.Destination("shelter", "open", SHELTER)),
     "あなたの避難先「渡利小学校」は開設済みです（混雑：情報なし）。",
     "Your evacuation shelter, 渡利小学校, is open (crowding: unknown)."),
    (render.Plan(destination=render.Destination("shelter", "not_open", SHELTER),
                 nearest=render.Nearest("福島第一小学校", 1234)),
     "あなたの避難先「渡利小学校」はまだ開設されていません。"
     "洪水に対応した開設済みの避難所で最も近いのは「福島第一小学校」（1.2km）です。",
     "Your evacuation shelter, 渡利小学校, is not open yet. "
     "Nearest open shelter for flood: 福島第一小学校 (1.2 km)."),
    (render.Plan(destination=render.Destination("shelter", "full", SHELTER)),
     "あなたの避難先「渡利小学校」は満員です。"
     "近くで開設済みの避難所の情報はまだありません。市町村の情報を確認してください。",
     "Your evacuation shelter, 渡利小学校, is full. "
     "No open shelter nearby is known yet. Check your municipality's information."),
    (render.Plan(destination=render.Destination("shelter", "unsuitable", SHELTER),
                 nearest=render.Nearest("福島第一小学校", 456)),
     "あなたの避難先「渡利小学校」は洪水の避難先に指定されていません。"
     "洪水に対応した開設済みの避難所で最も近いのは「福島第一小学校」（460m）です。",
     "Your evacuation shelter, 渡利小学校, is not designated for flood. "
     "Nearest open shelter for flood: 福島第一小学校 (460 m)."),
    (render.Plan(destination=render.Destination("stay", "safe")),
     "あなたの計画では自宅にとどまります（屋内安全確保）。上の階など安全な場所にいてください。",
     "Your plan is to stay at home. Stay in a safe place such as an upper floor."),
    (render.Plan(destination=render.Destination("stay", "not_safe"),
                 nearest=render.Nearest("福島第一小学校", 2050)),
     "自宅にとどまるのは危険です。自宅の外の安全な場所へ避難してください。"
     "洪水に対応した開設済みの避難所で最も近いのは「福島第一小学校」（2.0km）です。",
     "Staying at home is not safe. Evacuate to a safe place outside your home. "
     "Nearest open shelter for flood: 福島第一小学校 (2.0 km)."),
    (render.Plan(destination=render.Destination("relative", "safe", "伊達の実家")),
     "あなたの避難先は伊達の実家です。", "Your planned destination: 伊達の実家."),
    (render.Plan(destination=render.Destination("hotel", "not_safe")),
     "あなたの避難先（ホテル・旅館）も危険な区域にあります。別の安全な場所へ避難してください。"
     "近くで開設済みの避難所の情報はまだありません。市町村の情報を確認してください。",
     "Your planned destination (a hotel) is also in a dangerous area. Evacuate to another "
     "safe place. No open shelter nearby is known yet. Check your municipality's information."),
])
def test_plan_phrases(plan: render.Plan, ja: str, en: str) -> None:
    """Each part of a household's plan is said for a level-4 flood order in ja and en."""
    assert render.plan_text("ja", plan, 4, "flood") == ja
    assert render.plan_text("en", plan, 4, "flood") == en


def test_plan_at_level_5_moves_only_as_far_as_safe() -> None:
    """At level 5 a reached trigger says to move only as far as is still safe."""
    text = render.plan_text("ja", render.Plan(trigger=4), 5, "flood")
    assert text == ("あなたの計画では警戒レベル4で避難します。外への移動がかえって危険なときは、"
                    "近くの頑丈な建物や自宅の上の階など、少しでも安全な場所へ移動してください。")


def test_plan_in_an_order_push() -> None:
    """The plan sits between the level's advice and the instruction, whole sentences."""
    plan = render.Plan(place="home", trigger=3,
                       destination=render.Destination("shelter", "open", SHELTER, "high"))
    t = render.order_text("order", "ja", 4, "flood", HEADLINE, {}, plan)
    assert t.body.splitlines() == [
        "阿武隈川が氾濫のおそれ",
        "危険な場所から全員避難してください。",
        "自宅が避難指示の対象区域です。あなたの計画では警戒レベル3で避難します。"
        "今すぐ避難してください。あなたの避難先「渡利小学校」は開設済みです（混雑：混雑）。",
        "テレビ・ラジオや市町村からの最新の情報を確認してください。",
    ]


def test_plan_values_are_checked() -> None:
    """Unknown place kinds, destination states and trigger levels are refused."""
    with pytest.raises(ValueError):
        render.Plan(place="garage")
    with pytest.raises(ValueError):
        render.Plan(trigger=2)
    with pytest.raises(ValueError):
        render.Destination("shelter", "safe")
    with pytest.raises(ValueError):
        render.Destination("stay", "open")


@pytest.mark.parametrize(("metres", "ja", "pt"), [
    (0, "10m", "10 m"), (14, "10m", "10 m"), (994, "990m", "990 m"), (995, "1.0km", "1,0 km"),
    (1234, "1.2km", "1,2 km"), (15_080, "15.1km", "15,1 km"),
])
def test_distances(metres: float, ja: str, pt: str) -> None:
    """Distances are rounded to 10 m below a kilometre, else to 0.1 km with the local mark."""
    cat = render.catalogue()
    assert render.distance(cat["ja"], metres) == ja
    assert render.distance(cat["pt"], metres) == pt


# The template files themselves.

def _read(path: Path) -> dict[str, str]:
    raw = tomllib.loads(path.read_text("utf-8"))
    return {f"{s}.{k}": v for s, table in raw.items() for k, v in table.items()}


def test_shipped_languages() -> None:
    """Exactly the ten languages are shipped, and the catalogue loads without a problem."""
    shipped = {p.name.removesuffix(".toml") for p in TEMPLATES.glob("*.toml")}
    assert shipped == set(render.LANGUAGES)
    assert set(render.catalogue()) == set(render.LANGUAGES)


@pytest.mark.parametrize("lang", [lang for lang in render.LANGUAGES if lang != "ja"])
def test_language_file_matches_ja_keys_and_placeholders(lang: str) -> None:
    """Every language file has exactly the keys of ja.toml, each with the same placeholders."""
    ja, other = _read(TEMPLATES / "ja.toml"), _read(TEMPLATES / f"{lang}.toml")
    assert sorted(other) == sorted(ja)
    for key, text in ja.items():
        assert render.fields(other[key]) == render.fields(text), key


def _files(**changes: str) -> dict[str, str]:
    files = {p.name: p.read_text("utf-8") for p in TEMPLATES.glob("*.toml")}
    files.update({name.replace("_", "-") + ".toml": text for name, text in changes.items()})
    return files


def _replace(lang: str, old: str, new: str) -> str:
    text = (TEMPLATES / f"{lang}.toml").read_text("utf-8")
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"en": _replace("en", 'hotel = "a hotel"\n', "")},
     ["templates/en.toml: missing key destinations.hotel"]),
    ({"ko": _replace("ko", "[units]\n", '[units]\nmiles = "{n} mi"\n')},
     ["templates/ko.toml: unknown key units.miles (not in ja.toml)"]),
    ({"vi": _replace("vi", "Cơ quan Khí tượng Nhật Bản đã ban hành {warning} cho {area}",
                     "Cơ quan Khí tượng Nhật Bản đã ban hành {warning}")},
     ["templates/vi.toml: key warning.body uses {action}, {warning}; "
      "ja.toml uses {action}, {area}, {warning}"]),
    ({"zh_Hans": _replace("zh-Hans", "{shelter}{address}已开设", "{shelter}{adress}已开设")},
     ["templates/zh-Hans.toml: key shelter_opened.body uses {adress}, {crowding}, {shelter}; "
      "ja.toml uses {address}, {crowding}, {shelter}"]),
    ({"ja": _replace("ja", '"{hazard}の危険があるため', '"{hazzard}の危険があるため')},
     ["templates/ja.toml: key generic.headline uses unknown placeholder {hazzard}",
      *(f"templates/{lang}.toml: key generic.headline uses {{hazard}}, {{level_name}}; "
        "ja.toml uses {hazzard}, {level_name}" for lang in sorted(render.LANGUAGES)
        if lang != "ja")]),
    ({"ja": _replace("ja", "[format]\n", '[format]\nextra = "x"\n')},
     ["templates/ja.toml: unknown key format.extra",
      *(f"templates/{lang}.toml: missing key format.extra" for lang in sorted(render.LANGUAGES)
        if lang != "ja")]),
    ({"pt": _replace("pt", 'm = "{n} m"', 'm = "{n m"')},
     ["templates/pt.toml: key units.m: expected '}' before end of string"]),
    ({"tl": _replace("tl", 'hotel = "hotel"', "hotel = 3")},
     ["templates/tl.toml: key destinations.hotel is not a string",
      "templates/tl.toml: missing key destinations.hotel"]),
    ({"ne": _replace("ne", 'hotel = "होटल"', 'hotel = " "')},
     ["templates/ne.toml: key destinations.hotel is empty"]),
])
def test_catalogue_problems_name_file_and_key(changes: dict[str, str],
                                              expected: list[str]) -> None:
    """A broken template file is reported with its file and key, every problem once."""
    assert render.check(_files(**changes))[1] == expected


def test_file_that_is_not_toml() -> None:
    """A file that is not TOML is named with the parser's reason."""
    problems = render.check(_files(en="[levels\n"))[1]
    assert len(problems) == 1
    assert problems[0].startswith("templates/en.toml: not valid TOML: ")


def test_missing_reference_file() -> None:
    """Without ja.toml there is nothing to fall back to: that is a problem."""
    files = {name: text for name, text in _files().items() if name != "ja.toml"}
    assert render.check(files)[1] == ["templates/ja.toml is missing"]


def test_catalogue_raises_config_error_listing_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    """catalogue() raises ConfigError with every problem, and caches only a good catalogue."""
    broken = _files(en=_replace("en", 'hotel = "a hotel"\n', ""),
                    ko=_replace("ko", 'hotel = "호텔"\n', ""))
    original = render.check
    monkeypatch.setattr(render, "check", lambda _files: original(broken))
    render.catalogue.cache_clear()
    try:
        with pytest.raises(errors.ConfigError) as caught:
            render.catalogue()
        assert caught.value.reason == ("templates/en.toml: missing key destinations.hotel; "
                                       "templates/ko.toml: missing key destinations.hotel")
    finally:
        monkeypatch.undo()
        render.catalogue.cache_clear()
    assert set(render.catalogue()) == set(render.LANGUAGES)
