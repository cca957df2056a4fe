// Feeds: the health of each feed, the quarantine (reason and raw input of each refused item),
// the CAP messages received and the JMA warnings in force, with their areas on one map.
// "#/feeds/quarantine/:id" shows one quarantined item.
import { createMap, orderLayer, L } from "./map.js";
import { pick, num, when } from "./i18n.js";
import { h, fill, levelChip, HAZARDS } from "./ui.js";

export const strings = {
  ja: {
    title: "フィード", health: "フィードの状態", feed: "フィード", kind: "種類", "last.success": "最終成功",
    "last.error": "最新のエラー", failures: "連続失敗", seen: "取得件数", skipped: "スキップ", quarantined: "隔離",
    posted: "APIへの投稿 (staff-api)", never: "なし", "show.quarantine": "隔離された入力を見る: {name}",
    quarantine: "隔離された入力", source: "入力元", all: "すべて", received: "受信", reason: "理由", id: "ID",
    view: "表示", "view.label": "隔離された入力 {id} を表示", more: "さらに表示", "quarantine.none": "隔離された入力はありません。",
    cap: "受信したCAPメッセージ", sender: "送信者", identifier: "識別子", sent: "送信時刻", type: "種別",
    outcome: "処理結果", order: "避難情報", "cap.none": "受信したCAPメッセージはありません。",
    "outcome.order": "発令", "outcome.updated": "更新", "outcome.lifted": "解除", "outcome.waiting": "参照待ち",
    "outcome.duplicate": "重複", "outcome.recorded": "記録のみ", "outcome.ignored": "無視",
    warnings: "県内の気象警報・注意報", area: "区域", warning: "種類", status: "状態", "level.eq": "警戒レベル相当",
    reported: "発表時刻", "warnings.none": "発表中の警報・注意報はありません。",
    map: "CAPによる避難情報の区域と気象警報の地図", "legend.warning": "警報・注意報（警戒レベル相当）",
    "legend.cap": "CAPによる発令中の避難情報", "level.n": "レベル{n}相当", "level.other": "注意報など",
    item: "隔離された入力 #{id}", back: "フィードに戻る", size: "大きさ", bytes: "{n} バイト",
    raw: "受信した内容（テキストとして表示）", truncated: "先頭の {n} バイトのみを表示しています。",
    "not.utf8": "UTF-8 ではないバイトを含みます（� で表示）。", download: "元のバイト列をダウンロード",
    "item.missing": "この入力はありません（保存期間を過ぎて削除された可能性があります）。",
  },
  en: {
    title: "Feeds", health: "Feed health", feed: "Feed", kind: "Kind", "last.success": "Last success",
    "last.error": "Last error", failures: "Failures in a row", seen: "Items", skipped: "Skipped", quarantined: "Quarantined",
    posted: "Posted to the API (staff-api)", never: "never", "show.quarantine": "Show the quarantine of {name}",
    quarantine: "Quarantine", source: "Source", all: "All", received: "Received", reason: "Reason", id: "ID",
    view: "View", "view.label": "View quarantined item {id}", more: "Show more", "quarantine.none": "Nothing is quarantined.",
    cap: "CAP messages received", sender: "Sender", identifier: "Identifier", sent: "Sent", type: "Type",
    outcome: "Outcome", order: "Order", "cap.none": "No CAP message received.",
    "outcome.order": "issued", "outcome.updated": "updated", "outcome.lifted": "lifted", "outcome.waiting": "waiting",
    "outcome.duplicate": "duplicate", "outcome.recorded": "recorded", "outcome.ignored": "ignored",
    warnings: "JMA warnings in the prefecture", area: "Area", warning: "Warning", status: "Status", "level.eq": "Level equivalent",
    reported: "Reported", "warnings.none": "No warning in force.",
    map: "Map of CAP orders' areas and JMA warnings", "legend.warning": "Warnings (level equivalent)",
    "legend.cap": "Active orders from CAP", "level.n": "Level {n} eq.", "level.other": "Advisories etc.",
    item: "Quarantined item #{id}", back: "Back to feeds", size: "Size", bytes: "{n} bytes",
    raw: "What was received (shown as text)", truncated: "Only the first {n} bytes are shown.",
    "not.utf8": "It holds bytes that are not UTF-8 (shown as �).", download: "Download the original bytes",
    "item.missing": "There is no such item (it may have been purged after its retention).",
  },
};

// Warning colours by 警戒レベル相当 (JMA's: 注意報 yellow, 警報 red, 土砂災害警戒情報 purple,
// 特別警報 black).
const WARNING_COLOURS = { 2: "#f2c500", 3: "#d7191c", 4: "#7b2a8c", 5: "#111111" };

export function mount(el, ctx) {
  if (ctx.params.id) return mountItem(el, ctx);
  const { t, api } = ctx;
  const health = h("div", {}, h("p", { class: "loading" }, "…"));
  const sourceSel = h("select", { id: "quarantine-source" }, h("option", { value: "" }, t("all")));
  const qList = h("div", { "aria-live": "polite" });
  const more = h("button", { type: "button", class: "secondary", id: "quarantine-more", hidden: true }, t("more"));
  const capList = h("div", {});
  const warnList = h("div", {});
  const mapEl = h("div", { id: "feeds-map" });
  fill(el, h("h1", {}, t("title")),
    h("section", { "aria-labelledby": "health-h" }, h("h2", { id: "health-h" }, t("health")), health),
    h("section", { "aria-labelledby": "quarantine-h" }, h("h2", { id: "quarantine-h" }, t("quarantine")),
      h("div", { class: "row" }, h("label", { for: "quarantine-source" }, t("source")), sourceSel), qList, more),
    h("section", { "aria-labelledby": "cap-h" }, h("h2", { id: "cap-h" }, t("cap")), capList),
    h("div", { class: "layout" },
      h("section", { "aria-labelledby": "warnings-h" }, h("h2", { id: "warnings-h" }, t("warnings")), warnList),
      h("section", { "aria-label": t("map") }, mapEl, legend(t))));

  let items = [];
  let mapped = null;
  let capOrders = {};
  let warnings = [];
  let overlay = null;
  createMap(mapEl, ctx.session, { label: t("map") }).then((m) => { mapped = m; drawMap(); })
    .catch((e) => ctx.notify(String(e)));

  async function loadHealth() {
    const r = await api.get("/v1/staff/feeds");
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    const { feeds, posted } = r.data;
    const sources = [...feeds.map((f) => f.name), posted.source];
    if (sourceSel.options.length !== sources.length + 1) {
      const keep = sourceSel.value;
      fill(sourceSel, h("option", { value: "" }, t("all")), sources.map((s) => h("option", { value: s, selected: s === keep }, s)));
    }
    const held = (f, name) => (f.quarantined ? h("button", { type: "button", class: "link",
      "aria-label": t("show.quarantine", { name }), onclick: () => { sourceSel.value = name; loadQuarantine(); qList.scrollIntoView(); } },
    num(f.quarantined)) : "0");
    fill(health, h("div", { class: "table-wrap" }, h("table", { id: "feed-health" },
      h("thead", {}, h("tr", {}, ["feed", "kind", "last.success", "last.error", "failures", "seen", "skipped", "quarantined"]
        .map((k) => h("th", { scope: "col", class: ["failures", "seen", "skipped", "quarantined"].includes(k) ? "num" : null }, t(k))))),
      h("tbody", {},
        feeds.map((f) => h("tr", { dataset: { feed: f.name } },
          h("th", { scope: "row" }, f.name, h("div", { class: "muted small" }, f.url)),
          h("td", {}, f.kind),
          h("td", {}, f.last_success ? when(f.last_success) : t("never")),
          h("td", { class: f.last_error ? "error-text" : null }, f.last_error
            ? [h("div", {}, f.last_error), h("div", { class: "muted small" }, when(f.last_error_at))] : "—"),
          h("td", { class: "num" }, num(f.failures)), h("td", { class: "num" }, num(f.items_seen)),
          h("td", { class: "num" }, num(f.items_skipped)), h("td", { class: "num" }, held(f, f.name)))),
        h("tr", { dataset: { feed: posted.source } },
          h("th", { scope: "row" }, t("posted")), h("td", {}, "cap"),
          ["", "", "num", "num", "num"].map((c) => h("td", { class: `muted ${c}` }, "—")),
          h("td", { class: "num" }, held(posted, posted.source)))))));
  }

  async function loadQuarantine(before) {
    const p = new URLSearchParams({ limit: "20" });
    if (sourceSel.value) p.set("source", sourceSel.value);
    if (before) p.set("before", String(before));
    const r = await api.get(`/v1/staff/quarantine?${p}`);
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    items = before ? items.concat(r.data.items) : r.data.items;
    more.hidden = r.data.items.length < 20;
    if (!items.length) { fill(qList, h("p", {}, t("quarantine.none"))); return; }
    fill(qList, h("div", { class: "table-wrap" }, h("table", { id: "quarantine" },
      h("thead", {}, h("tr", {}, ["id", "received", "source", "reason", "size"].map((k) => h("th", { scope: "col" }, t(k))),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, t("view"))))),
      h("tbody", {}, items.map((i) => h("tr", { dataset: { item: String(i.id) } },
        h("td", {}, String(i.id)), h("td", {}, when(i.received_at)), h("td", {}, i.source),
        h("td", { class: "reason" }, i.reason.length > 300 ? `${i.reason.slice(0, 300)}…` : i.reason),
        h("td", { class: "num" }, t("bytes", { n: num(i.raw_size) })),
        h("td", {}, h("a", { class: "button secondary small", href: `#/feeds/quarantine/${i.id}`,
          "aria-label": t("view.label", { id: i.id }) }, t("view")))))))));
  }

  async function loadCap() {
    const r = await api.get("/v1/staff/cap/messages?limit=30");
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    capOrders = r.data.orders;
    const list = r.data.messages;
    fill(capList, list.length ? h("div", { class: "table-wrap" }, h("table", { id: "cap-messages" },
      h("thead", {}, h("tr", {}, ["received", "identifier", "type", "outcome", "order"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, list.map((m) => {
        const o = m.order_id && capOrders[m.order_id];
        return h("tr", { dataset: { identifier: m.identifier } },
          h("td", { class: "small" }, when(m.received_at), h("div", { class: "muted" }, `${t("sent")}: ${when(m.sent)}`)),
          h("td", { class: "small" }, m.identifier, h("div", { class: "muted" }, `${t("sender")}: ${m.sender}`),
            h("div", { class: "muted" }, `${t("source")}: ${m.source}`)),
          h("td", {}, `${m.msg_type} / ${m.status}`),
          h("td", {}, t(`outcome.${m.outcome}`), m.detail ? h("div", { class: "muted small" }, m.detail) : null),
          h("td", {}, o ? h("a", { href: `#/orders/${m.order_id}` }, levelChip(o.level, ctx.lang), " ",
            pick(HAZARDS[o.hazard]) || o.hazard) : "—"));
      })))) : h("p", {}, t("cap.none")));
    drawMap();
  }

  async function loadWarnings() {
    const r = await api.get("/v1/staff/warnings");
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    warnings = r.data.warnings;
    fill(warnList, warnings.length ? h("div", { class: "table-wrap" }, h("table", { id: "warnings" },
      h("thead", {}, h("tr", {}, ["area", "warning", "status", "level.eq", "reported"].map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, warnings.map((w) => h("tr", { dataset: { area: w.area_code } },
        h("td", {}, w.area_name), h("td", {}, w.kind), h("td", {}, w.status),
        h("td", {}, w.level_equivalent ? t("level.n", { n: w.level_equivalent }) : "—"),
        h("td", { class: "small" }, when(w.report_datetime))))))) : h("p", {}, t("warnings.none")));
    drawMap();
  }

  function drawMap() {
    if (!mapped) return;
    const worst = new Map();
    for (const w of warnings) worst.set(w.area_code, Math.max(worst.get(w.area_code) || 2, w.level_equivalent || 2));
    const plain = { ...mapped.baseStyle, fillOpacity: ctx.session.tile_url ? 0.25 : mapped.baseStyle.fillOpacity };
    mapped.base.eachLayer((layer) => {
      const level = worst.get(layer.feature.properties.code);
      layer.setStyle(level ? { ...plain, fillColor: WARNING_COLOURS[level], fillOpacity: 0.55 } : plain);
    });
    if (overlay) overlay.remove();
    const active = Object.entries(capOrders).filter(([, o]) => o.state === "active" && o.area);
    overlay = L.layerGroup(active.map(([id, o]) => orderLayer({ id, ...o }, mapped.collection))).addTo(mapped.map);
  }

  sourceSel.addEventListener("change", () => loadQuarantine());
  more.addEventListener("click", () => loadQuarantine(items.length ? items[items.length - 1].id : undefined));
  loadQuarantine();
  ctx.every(10000, () => Promise.all([loadHealth(), loadCap(), loadWarnings()]));
}

function legend(t) {
  return h("ul", { class: "legend" },
    [2, 3, 4, 5].map((n) => h("li", {}, h("span", { class: `dot warn-${n}`, "aria-hidden": "true" }),
      n === 2 ? t("level.other") : t("level.n", { n }))),
    h("li", {}, h("span", { class: "dot cap-area", "aria-hidden": "true" }), t("legend.cap")));
}

function mountItem(el, ctx) {
  const { t, api } = ctx;
  const id = ctx.params.id;
  const body = h("div", {}, h("p", { class: "loading" }, "…"));
  fill(el, h("p", {}, h("a", { href: "#/feeds" }, `← ${t("back")}`)), h("h1", {}, t("item", { id })), body);
  (async () => {
    const r = await api.get(`/v1/staff/quarantine/${encodeURIComponent(id)}`);
    if (r.status === 404) { fill(body, h("p", {}, t("item.missing"))); return; }
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    const i = r.data;
    const row = (k, v) => h("div", {}, h("dt", {}, t(k)), h("dd", {}, v));
    fill(body,
      h("dl", { class: "facts", id: "quarantine-item" },
        row("source", i.source), row("received", when(i.received_at)),
        row("size", t("bytes", { n: num(i.raw_size) })), row("reason", h("span", { id: "item-reason" }, i.reason))),
      h("h2", {}, t("raw")),
      i.truncated ? h("p", { class: "muted" }, t("truncated", { n: num(new TextEncoder().encode(i.raw).length) })) : null,
      i.raw_utf8 ? null : h("p", { class: "muted" }, t("not.utf8")),
      // textContent only: the input is hostile as likely as not, and is never markup here
      h("pre", { class: "raw", id: "item-raw", tabindex: "0", "aria-label": t("raw") }, i.raw),
      h("p", {}, h("a", { href: `/v1/staff/quarantine/${encodeURIComponent(id)}/raw`, download: `quarantine-${id}.bin` }, t("download"))));
  })();
}
