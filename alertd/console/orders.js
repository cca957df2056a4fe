// Active orders: a list with live delivery counts and their areas on one map.
import { createMap, orderLayer, L } from "./map.js";
import { pick, num, when } from "./i18n.js";
import { h, fill, levelChip, HAZARDS, COUNTS } from "./ui.js";

export const strings = {
  ja: {
    title: "発令中の避難情報", none: "発令中の避難情報はありません。", issue: "新規発令",
    level: "レベル", hazard: "災害", headline: "見出し", issued: "発令", expires: "期限",
    matched: "対象", sent: "送信済", pending: "送信待ち", failed: "失敗", invalid_token: "無効トークン",
    open: "詳細", map: "発令中の区域の地図",
  },
  en: {
    title: "Active orders", none: "No active orders.", issue: "Issue an order",
    level: "Level", hazard: "Hazard", headline: "Headline", issued: "Issued", expires: "Expires",
    matched: "Matched", sent: "Sent", pending: "Pending", failed: "Failed", invalid_token: "Invalid token",
    open: "Details", map: "Map of the active orders' areas",
  },
};

/** A table of orders (summaries of GET /v1/staff/orders) with links to their pages. */
export function ordersTable(list, ctx) {
  const { t, lang } = ctx;
  return h("table", { class: "orders" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, t("level")), h("th", { scope: "col" }, t("hazard")),
      h("th", { scope: "col" }, t("headline")), h("th", { scope: "col" }, t("issued")),
      COUNTS.map((k) => h("th", { scope: "col", class: "num" }, t(k))))),
    h("tbody", {}, list.map((o) => h("tr", { dataset: { order: o.id } },
      h("td", {}, levelChip(o.level, lang)),
      h("td", {}, pick(HAZARDS[o.hazard]) || o.hazard),
      h("td", {}, h("a", { href: `#/orders/${o.id}` }, pick(o.headline) || o.id)),
      h("td", {}, when(o.created_at)),
      COUNTS.map((k) => h("td", { class: "num", dataset: { count: k } }, num(o[k] ?? 0)))))));
}

export function mount(el, ctx) {
  const { t, api } = ctx;
  const list = h("div", { "aria-live": "polite" }, h("p", { class: "loading" }, "…"));
  const mapEl = h("div", { id: "orders-map" });
  fill(el, h("h1", {}, t("title")),
    ctx.can("operator") ? h("p", {}, h("a", { class: "button", href: "#/orders/new", id: "issue-link" }, t("issue"))) : null,
    h("div", { class: "layout" }, h("section", {}, list), h("section", {}, mapEl)));
  let mapped = null;
  let overlay = null;
  createMap(mapEl, ctx.session, { label: t("map") }).then((m) => { mapped = m; draw(); })
    .catch((e) => ctx.notify(String(e)));
  let orders = [];
  function draw() {
    if (!mapped) return;
    if (overlay) overlay.remove();
    overlay = L.layerGroup(orders.filter((o) => o.area).map((o) => orderLayer(o, mapped.collection))).addTo(mapped.map);
  }
  ctx.every(3000, async () => {
    const r = await api.get("/v1/staff/orders?state=active");
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    const summaries = r.data.orders;
    // the list's areas: each order's own page has them (the list holds no areas)
    const missing = summaries.filter((o) => !orders.find((p) => p.id === o.id && p.version === o.version && p.area));
    const full = await Promise.all(missing.map((o) => api.get(`/v1/staff/orders/${o.id}`)));
    const areas = new Map(orders.map((o) => [o.id + ":" + o.version, o.area]));
    full.forEach((f) => { if (f.ok) areas.set(f.data.id + ":" + f.data.version, f.data.area); });
    orders = summaries.map((o) => ({ ...o, area: areas.get(o.id + ":" + o.version) }));
    fill(list, orders.length ? ordersTable(orders, ctx) : h("p", {}, t("none")));
    draw();
  });
}
