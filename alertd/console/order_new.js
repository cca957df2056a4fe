// Issuing an order: area, level, hazard, texts, expiry; a preview of the devices reached per
// municipality; sending asks for confirmation naming that number. An answer 202
// pending_approval is shown as waiting for a second operator.
import { areaPicker, strings as areaStrings } from "./area_picker.js";
import { areas, areaByCode } from "./map.js";
import { pick, num } from "./i18n.js";
import { h, fill, LEVELS, HAZARDS, levelChip, newKey } from "./ui.js";

/** The strings of previewTable, for every page that shows a preview. */
export const previewStrings = {
  ja: { "preview.total": "対象端末: {n} 台", "preview.by": "市町村別", municipality: "市町村", devices: "端末数" },
  en: { "preview.total": "Devices reached: {n}", "preview.by": "By municipality", municipality: "Municipality", devices: "Devices" },
};

export const strings = {
  ja: {
    ...areaStrings.ja,
    ...previewStrings.ja,
    title: "避難情報の新規発令", level: "警戒レベル", hazard: "災害の種類", "headline.ja": "見出し（日本語）",
    "headline.en": "見出し（英語）", "instruction.ja": "行動の指示（日本語）", "instruction.en": "行動の指示（英語）",
    expires: "期限（日本時間、空欄は既定）", preview: "対象端末数を確認", send: "発令する",
    "preview.needed": "送信の前に対象端末数を確認してください。", "preview.stale": "入力が変わりました。もう一度確認してください。",
    "need.area": "対象区域を選んでください。", "need.headline": "日本語の見出しを入力してください。",
    "confirm.send": "{level}（{hazard}）を {n} 台の端末に送信します。よろしいですか？", "confirm.ok": "送信する",
    "pending": "第二の操作者の承認待ちです。承認されるまで何も送信されません。", "pending.link": "承認待ちの一覧へ",
    "sent": "発令しました。", failed: "発令できませんでした: {reason}",
  },
  en: {
    ...areaStrings.en,
    ...previewStrings.en,
    title: "Issue an evacuation order", level: "Alert level", hazard: "Hazard", "headline.ja": "Headline (Japanese)",
    "headline.en": "Headline (English)", "instruction.ja": "Instruction (Japanese)", "instruction.en": "Instruction (English)",
    expires: "Expires (Japan time; empty: the default)", preview: "Preview devices reached", send: "Issue",
    "preview.needed": "Preview the devices reached before sending.", "preview.stale": "The form changed. Preview again.",
    "need.area": "Choose the area.", "need.headline": "Enter the Japanese headline.",
    "confirm.send": "Send {level} ({hazard}) to {n} devices?", "confirm.ok": "Send",
    "pending": "Waiting for a second operator's approval. Nothing is sent until then.", "pending.link": "Pending approvals",
    "sent": "Order issued.", failed: "Could not issue: {reason}",
  },
};

/** The name of a level in the current language: "警戒レベル4 避難指示". */
export function levelName(level, lang) {
  const l = LEVELS[level];
  return lang === "en" ? `Alert level ${level} ${l.en}` : `警戒レベル${level} ${l.ja}`;
}

/** A preview answer as a table of municipalities. */
export function previewTable(answer, collection, t, id = "preview") {
  const rows = Object.entries(answer.by_area || {}).map(([code, n]) => {
    const f = areaByCode(collection, code);
    return h("tr", {}, h("td", {}, f ? pick({ ja: f.properties.name, en: f.properties.name_en }) : code),
      h("td", { class: "num" }, num(n)));
  });
  return h("div", { class: "preview", id },
    h("p", { id: `${id}-total` }, h("strong", {}, t("preview.total", { n: num(answer.devices) }))),
    rows.length ? h("table", {}, h("caption", { class: "muted" }, t("preview.by")),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("municipality")), h("th", { scope: "col", class: "num" }, t("devices")))),
      h("tbody", {}, rows)) : null);
}

export function mount(el, ctx) {
  const { t, lang, api } = ctx;
  const field = (id, label, input) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const levelInputs = [3, 4, 5].map((n) => h("label", {},
    h("input", { type: "radio", name: "level", value: String(n), id: `level-${n}`, checked: n === 4 }), levelChip(n, lang)));
  const hazard = h("select", { id: "hazard" }, Object.entries(HAZARDS).map(([k, v]) => h("option", { value: k }, pick(v))));
  const headlineJa = h("input", { id: "headline-ja", required: true, maxlength: "200" });
  const headlineEn = h("input", { id: "headline-en", maxlength: "200", lang: "en" });
  const instrJa = h("textarea", { id: "instruction-ja", rows: "2", maxlength: "1000" });
  const instrEn = h("textarea", { id: "instruction-en", rows: "2", maxlength: "1000", lang: "en" });
  const expires = h("input", { id: "expires", type: "datetime-local" });
  const previewBtn = h("button", { type: "button", id: "preview-button", class: "secondary" }, t("preview"));
  const sendBtn = h("button", { type: "submit", id: "send-button", class: "danger", disabled: true }, t("send"));
  const result = h("div", { "aria-live": "polite", id: "preview-area" }, h("p", { class: "muted" }, t("preview.needed")));
  const pickerEl = h("div");
  const mapEl = h("div", { id: "issue-map" });
  const form = h("form", { id: "issue-form", novalidate: true },
    pickerEl,
    h("fieldset", { class: "levels" }, h("legend", {}, t("level")), h("div", { class: "row" }, levelInputs)),
    field("hazard", t("hazard"), hazard),
    field("headline-ja", t("headline.ja"), headlineJa), field("headline-en", t("headline.en"), headlineEn),
    field("instruction-ja", t("instruction.ja"), instrJa), field("instruction-en", t("instruction.en"), instrEn),
    field("expires", t("expires"), expires),
    h("div", { class: "actions" }, previewBtn, sendBtn), result);
  fill(el, h("h1", {}, t("title")), h("div", { class: "layout" }, h("section", {}, form), h("section", {}, mapEl)));

  let picker = null;
  let previewed = null; // {text, answer, key}
  const body = () => {
    const texts = (ja, en) => Object.fromEntries([["ja", ja.value.trim()], ["en", en.value.trim()]].filter(([, v]) => v));
    const out = { level: Number(form.querySelector("input[name=level]:checked").value), hazard: hazard.value,
      area: picker && picker.value(), headline: texts(headlineJa, headlineEn) };
    const instruction = texts(instrJa, instrEn);
    if (Object.keys(instruction).length) out.instruction = instruction;
    if (expires.value) out.expires_at = `${expires.value.length === 16 ? expires.value + ":00" : expires.value}+09:00`;
    return out;
  };
  const changed = () => {
    if (previewed && JSON.stringify(body()) !== previewed.text) {
      previewed = null;
      sendBtn.disabled = true;
      fill(result, h("p", { class: "muted" }, t("preview.stale")));
    }
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  areaPicker(pickerEl, mapEl, ctx, changed).then((p) => { picker = p; }).catch((e) => ctx.notify(String(e)));

  const check = (b) => {
    if (!b.area) return t("need.area");
    if (!b.headline.ja) return t("need.headline");
    return null;
  };
  previewBtn.addEventListener("click", async () => {
    const b = body();
    const problem = check(b);
    if (problem) { ctx.notify(problem); return; }
    ctx.notify("");
    previewBtn.disabled = true;
    const r = await api.post("/v1/staff/orders:preview", b);
    previewBtn.disabled = false;
    if (!r.ok) { ctx.notify(t("failed", { reason: r.data && r.data.error })); return; }
    previewed = { text: JSON.stringify(b), answer: r.data, key: newKey() };
    fill(result, previewTable(r.data, await areas(), t));
    sendBtn.disabled = false;
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const b = body();
    if (!previewed || JSON.stringify(b) !== previewed.text) { ctx.notify(t("preview.needed")); return; }
    const ok = await ctx.confirm(t("confirm.send", { level: levelName(b.level, lang), hazard: pick(HAZARDS[b.hazard]),
      n: num(previewed.answer.devices) }), t("confirm.ok"));
    if (!ok) return;
    sendBtn.disabled = true;
    const r = await api.post("/v1/staff/orders", b, { "Idempotency-Key": previewed.key });
    if (r.status === 202) {
      fill(result, h("div", { class: "pending-approval", id: "pending-approval", role: "status" },
        h("p", {}, t("pending")), h("a", { href: "#/approvals" }, t("pending.link"))));
      return;
    }
    if (!r.ok) { sendBtn.disabled = false; ctx.notify(t("failed", { reason: r.data && r.data.error })); return; }
    ctx.navigate(`orders/${r.data.id}`);
  });
}
