// Shelters: a searchable table and map markers coloured by status (sized by crowding), the
// evacuee totals, a hazard filter; operators change a status in two clicks (the new status,
// then 確定 with crowding and evacuees).
import { createMap, L } from "./map.js";
import { pick, num, when } from "./i18n.js";
import { h, fill, HAZARDS } from "./ui.js";

export const strings = {
  ja: {
    title: "避難所", search: "名称・住所・IDで検索", "status.filter": "状態", "hazard.filter": "適した災害",
    all: "すべて", name: "名称", address: "住所", hazards: "対応する災害", status: "状態", crowding: "混雑",
    evacuees: "避難者数", capacity: "収容人数", updated: "状態の更新", actions: "状態の変更",
    "status.not_open": "未開設", "status.open": "開設", "status.full": "満員", "status.closed": "閉鎖",
    "crowding.low": "空いている", "crowding.medium": "やや混雑", "crowding.high": "混雑", "crowding.full": "満員",
    "crowding.none": "未報告", "to.open": "開設する", "to.full": "満員にする", "to.closed": "閉鎖する",
    "edit.title": "{name} を「{status}」にします", confirm: "確定", cancel: "キャンセル",
    "changed": "{name} を「{status}」にしました。", "change.failed": "変更できませんでした: {reason}",
    "totals": "集計（検索条件に合う避難所）", "totals.evacuees": "避難者数（開設・満員）",
    "totals.capacity": "収容人数（開設・満員）", none: "条件に合う避難所はありません。",
    "page.of": "{from}–{to} 件目 / {total} 件", prev: "前へ", next: "次へ", map: "避難所の地図（色は状態、大きさは混雑）",
    "capped": "地図と表には最初の {n} 件を表示しています。検索条件を絞ってください。", by: "報告元",
    "by.staff": "職員", legend: "凡例", sort: "並び順", "sort.name": "市町村・名称", "sort.status_at": "更新が新しい順",
    "sort.evacuees": "避難者が多い順", show: "表で見る",
  },
  en: {
    title: "Shelters", search: "Search name, address or ID", "status.filter": "Status", "hazard.filter": "Suited to",
    all: "All", name: "Name", address: "Address", hazards: "Hazards", status: "Status", crowding: "Crowding",
    evacuees: "Evacuees", capacity: "Capacity", updated: "Status updated", actions: "Change status",
    "status.not_open": "Not open", "status.open": "Open", "status.full": "Full", "status.closed": "Closed",
    "crowding.low": "Low", "crowding.medium": "Medium", "crowding.high": "High", "crowding.full": "Full",
    "crowding.none": "Not reported", "to.open": "Open", "to.full": "Mark full", "to.closed": "Close",
    "edit.title": "Set {name} to “{status}”", confirm: "Confirm", cancel: "Cancel",
    "changed": "{name} is now “{status}”.", "change.failed": "Could not change it: {reason}",
    "totals": "Totals (shelters matching the search)", "totals.evacuees": "Evacuees (open and full)",
    "totals.capacity": "Capacity (open and full)", none: "No shelter matches.",
    "page.of": "{from}–{to} of {total}", prev: "Previous", next: "Next", map: "Map of the shelters (colour: status; size: crowding)",
    "capped": "The map and table show the first {n}. Narrow the search.", by: "Reported by",
    "by.staff": "staff", legend: "Legend", sort: "Sort", "sort.name": "Municipality, name", "sort.status_at": "Latest update first",
    "sort.evacuees": "Most evacuees first", show: "Show in table",
  },
};

export const STATUS_COLOURS = { open: "#1e6b35", full: "#b3261e", not_open: "#6b7280", closed: "#1b1f24" };
const STATUSES = ["open", "full", "not_open", "closed"];
const CROWDING = ["low", "medium", "high", "full"];
const RADIUS = { low: 6, medium: 8, high: 10, full: 12 };
const PAGE = 50;
const FETCH = 1000; // shelters a request (the server's most)
const MAX_FETCHES = 5;

/** A status chip in the status's colour, with its name (never colour alone). */
export function statusChip(status, t) {
  return h("span", { class: `chip status-${status}` }, t(`status.${status}`));
}

export function mount(el, ctx) {
  const { t, api } = ctx;
  const canChange = ctx.can("operator");
  const q = h("input", { id: "shelter-q", type: "search", name: "q", maxlength: "100", autocomplete: "off" });
  const statusSel = h("select", { id: "shelter-status", name: "status" },
    h("option", { value: "" }, t("all")), STATUSES.map((s) => h("option", { value: s }, t(`status.${s}`))));
  const hazardSel = h("select", { id: "shelter-hazard", name: "hazard" },
    h("option", { value: "" }, t("all")), Object.entries(HAZARDS).map(([k, v]) => h("option", { value: k }, pick(v))));
  const sortSel = h("select", { id: "shelter-sort", name: "sort" },
    ["name", "status_at", "evacuees"].map((s) => h("option", { value: s }, t(`sort.${s}`))));
  const field = (input, label) => h("div", { class: "field" }, h("label", { for: input.id }, label), input);
  const form = h("form", { class: "row filters", role: "search" },
    field(q, t("search")), field(statusSel, t("status.filter")), field(hazardSel, t("hazard.filter")),
    field(sortSel, t("sort")));
  const totals = h("section", { "aria-labelledby": "shelter-totals-h" });
  const table = h("div", { "aria-live": "polite" }, h("p", { class: "loading" }, "…"));
  const pager = h("div", { class: "row pager" });
  const mapEl = h("div", { id: "shelters-map" });
  fill(el, h("h1", {}, t("title")), form, totals,
    h("div", { class: "layout table-first" }, h("section", {}, table, pager), h("section", {}, mapEl, legend(t))));

  let shelters = [];
  let page = 0;
  let editing = null; // {id, status}
  let mapped = null;
  const markers = new Map();
  let seq = 0;
  let shown = "";

  createMap(mapEl, ctx.session, { label: t("map") }).then((m) => { mapped = m; drawMap(); })
    .catch((e) => ctx.notify(String(e)));

  function query(offset) {
    const p = new URLSearchParams({ limit: String(FETCH), offset: String(offset), sort: sortSel.value });
    if (q.value.trim()) p.set("q", q.value.trim());
    if (statusSel.value) p.set("status", statusSel.value);
    if (hazardSel.value) p.set("hazard", hazardSel.value);
    return `/v1/staff/shelters?${p}`;
  }

  async function load() {
    const mine = ++seq;
    let found = [];
    let first = null;
    let offset = 0;
    for (let i = 0; i < MAX_FETCHES && offset !== null; i++) {
      const r = await api.get(query(offset));
      if (mine !== seq) return; // a newer search won
      if (!r.ok) { ctx.notify(t("load.failed", { reason: r.data && r.data.error })); return; }
      first = first || r.data;
      found = found.concat(r.data.shelters);
      offset = r.data.next_offset;
    }
    const sig = JSON.stringify([first.totals, found]);
    if (sig === shown) return; // nothing changed: the table keeps its focus
    shown = sig;
    shelters = found;
    page = Math.min(page, Math.max(0, Math.ceil(shelters.length / PAGE) - 1));
    drawTotals(first.totals, first.matched > shelters.length ? shelters.length : 0);
    if (!editing) drawTable(); // an open editor is not swept away by a refresh
    drawMap();
  }

  function drawTotals(tot, capped) {
    const item = (label, value, id) => h("div", {}, h("dt", {}, label), h("dd", { id }, num(value)));
    fill(totals, h("h2", { id: "shelter-totals-h" }, t("totals")),
      h("dl", { class: "progress", id: "shelter-totals" },
        STATUSES.map((s) => item(t(`status.${s}`), tot.by_status[s] || 0, `total-${s}`)),
        item(t("totals.evacuees"), tot.evacuees, "total-evacuees"),
        item(t("totals.capacity"), tot.open_capacity, "total-capacity")),
      capped ? h("p", { class: "muted" }, t("capped", { n: num(capped) })) : null);
  }

  function drawTable(focusId) {
    if (!shelters.length) { fill(table, h("p", {}, t("none"))); fill(pager); return; }
    const rows = shelters.slice(page * PAGE, (page + 1) * PAGE);
    const cols = canChange ? 8 : 7;
    fill(table, h("div", { class: "table-wrap" }, h("table", { class: "shelters" },
      h("thead", {}, h("tr", {},
        ["name", "address", "hazards", "status", "crowding", "evacuees", "updated"].map((k) =>
          h("th", { scope: "col", class: k === "evacuees" ? "num" : null }, t(k))),
        canChange ? h("th", { scope: "col" }, t("actions")) : null)),
      h("tbody", {}, rows.flatMap((s) => {
        const tr = h("tr", { dataset: { shelter: s.id }, tabindex: "-1" },
          h("th", { scope: "row" }, s.name, h("div", { class: "muted small" }, s.id)),
          h("td", {}, s.address),
          h("td", { class: "small" }, s.hazards.map((k) => pick(HAZARDS[k]) || k).join("、")),
          h("td", {}, statusChip(s.status, t),
            s.status_by ? h("div", { class: "muted small" }, `${t("by")}: ${s.status_by === "staff" ? t("by.staff") : s.status_by}`) : null),
          h("td", {}, t(`crowding.${s.crowding || "none"}`)),
          h("td", { class: "num" }, s.evacuees === null ? "—" : num(s.evacuees),
            s.capacity ? h("span", { class: "muted" }, ` / ${num(s.capacity)}`) : null),
          h("td", { class: "small" }, when(s.status_at)),
          canChange ? h("td", {}, h("div", { class: "tools" }, ["open", "full", "closed"]
            .filter((to) => to !== s.status).map((to) => h("button", {
              type: "button", class: "secondary small", dataset: { to },
              "aria-label": `${t(`to.${to}`)}: ${s.name}`,
              onclick: () => { editing = { id: s.id, status: to }; drawTable(); },
            }, t(`to.${to}`))))) : null);
        return editing && editing.id === s.id ? [tr, editor(s, cols)] : [tr];
      })))));
    const from = page * PAGE + 1;
    const to = Math.min(shelters.length, (page + 1) * PAGE);
    fill(pager,
      h("button", { type: "button", class: "secondary", disabled: page === 0, onclick: () => { page--; editing = null; drawTable(); } }, t("prev")),
      h("span", {}, t("page.of", { from: num(from), to: num(to), total: num(shelters.length) })),
      h("button", { type: "button", class: "secondary", disabled: to >= shelters.length, onclick: () => { page++; editing = null; drawTable(); } }, t("next")));
    if (focusId) {
      const row = table.querySelector(`tr[data-shelter="${CSS.escape(focusId)}"]`);
      if (row) { row.classList.add("highlight"); row.focus(); }
    }
  }

  function editor(s, cols) {
    const status = editing.status;
    const crowding = h("select", { id: "edit-crowding", disabled: status !== "open" },
      h("option", { value: "" }, t("crowding.none")),
      CROWDING.filter((c) => c !== "full").map((c) => h("option", { value: c, selected: c === s.crowding }, t(`crowding.${c}`))));
    const evacuees = h("input", { id: "edit-evacuees", type: "number", min: "0", max: "1000000", step: "1", inputmode: "numeric",
      value: s.evacuees ?? "", disabled: status === "closed" });
    const ok = h("button", { type: "submit", id: "edit-confirm" }, t("confirm"));
    const form = h("form", { class: "row editor", "aria-label": t("edit.title", { name: s.name, status: t(`status.${status}`) }) },
      h("strong", {}, t("edit.title", { name: s.name, status: t(`status.${status}`) })),
      h("div", { class: "field" }, h("label", { for: "edit-crowding" }, t("crowding")), crowding),
      h("div", { class: "field" }, h("label", { for: "edit-evacuees" }, t("evacuees")), evacuees),
      h("div", { class: "actions" }, ok,
        h("button", { type: "button", class: "secondary", onclick: () => { editing = null; drawTable(s.id); } }, t("cancel"))));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      ok.disabled = true;
      const body = { status };
      if (status === "open" && crowding.value) body.crowding = crowding.value;
      if (status !== "closed" && evacuees.value !== "") body.evacuees = Number(evacuees.value);
      const r = await api.call("PUT", `/v1/staff/shelters/${encodeURIComponent(s.id)}/status`, body);
      ok.disabled = false;
      if (!r.ok) { ctx.notify(t("change.failed", { reason: r.data && r.data.error })); return; }
      editing = null;
      ctx.notify(t("changed", { name: s.name, status: t(`status.${r.data.status}`) }), "info");
      await load();
      drawTable(s.id);
    });
    setTimeout(() => ok.focus(), 0);
    return h("tr", { class: "editing" }, h("td", { colspan: String(cols) }, form));
  }

  function drawMap() {
    if (!mapped) return;
    const keep = new Set(shelters.map((s) => s.id));
    for (const [id, m] of markers) if (!keep.has(id)) { m.remove(); markers.delete(id); }
    for (const s of shelters) {
      const style = { radius: RADIUS[s.crowding] || 5, color: "#fff", weight: 1.5,
        fillColor: STATUS_COLOURS[s.status], fillOpacity: s.status === "not_open" ? 0.6 : 0.9 };
      const label = `${s.name}: ${t(`status.${s.status}`)}` + (s.crowding ? ` (${t(`crowding.${s.crowding}`)})` : "")
        + (s.evacuees !== null ? ` ${t("evacuees")} ${num(s.evacuees)}` : "");
      let m = markers.get(s.id);
      if (!m) {
        m = L.circleMarker([s.lat, s.lon], style).addTo(mapped.map);
        m.on("click", () => show(s.id));
        markers.set(s.id, m);
      } else {
        m.setLatLng([s.lat, s.lon]).setStyle(style);
      }
      m.bindTooltip(label);
      const path = m.getElement && m.getElement();
      if (path) { path.dataset.shelter = s.id; path.dataset.status = s.status; }
    }
  }

  function show(id) {
    const i = shelters.findIndex((s) => s.id === id);
    if (i < 0) return;
    page = Math.floor(i / PAGE);
    drawTable(id);
  }

  let timer = null;
  q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { page = 0; load(); }, 300); });
  for (const sel of [statusSel, hazardSel, sortSel]) sel.addEventListener("change", () => { page = 0; load(); });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); page = 0; load(); });
  ctx.every(15000, load);
  return () => clearTimeout(timer);
}

function legend(t) {
  return h("ul", { class: "legend", "aria-label": t("legend") }, STATUSES.map((s) =>
    h("li", {}, h("span", { class: `dot status-${s}`, "aria-hidden": "true" }), t(`status.${s}`))));
}
