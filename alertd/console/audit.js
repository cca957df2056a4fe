// The audit log (admins only): every staff action through the API or the console — who,
// what, when, from where, before/after — newest first, with filters and pages.
import { num, when } from "./i18n.js";
import { h, fill } from "./ui.js";

export const strings = {
  ja: {
    title: "監査ログ", action: "操作", target: "対象", staff: "職員トークンID", since: "この日時以降（日本時間）",
    filter: "絞り込む", clear: "条件をクリア", at: "日時", who: "職員", via: "経路", remote: "接続元", status: "結果",
    change: "変更内容", before: "変更前", after: "変更後", none: "該当する記録はありません。", prev: "新しい記録へ",
    next: "古い記録へ", "page": "{from}–{to} 件目", details: "詳細", "status.ok": "成功", "status.refused": "拒否",
    "via.api": "API", "via.console": "コンソール", "via.cli": "CLI", "bad.since": "日時の形式が正しくありません。",
    limit: "表示件数",
  },
  en: {
    title: "Audit log", action: "Action", target: "Target", staff: "Staff token ID", since: "From (Japan time)",
    filter: "Filter", clear: "Clear", at: "When", who: "Staff", via: "Via", remote: "From", status: "Result",
    change: "Change", before: "Before", after: "After", none: "No entries.", prev: "Newer",
    next: "Older", "page": "Entries {from}–{to}", details: "Details", "status.ok": "done", "status.refused": "refused",
    "via.api": "API", "via.console": "console", "via.cli": "CLI", "bad.since": "The date and time are not valid.",
    limit: "Per page",
  },
};

const ACTIONS = ["order.issue", "order.amend", "order.lift", "order.approve", "order.reject", "shelter.status",
  "cap.post", "tip.send", "console.sign_in", "console.sign_out"];

/** "2026-12-02T10:00" typed as Japan time → an RFC 3339 time with its offset. */
export function japanTime(local) {
  return /^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(local) ? `${local}:00+09:00` : null;
}

export function mount(el, ctx) {
  const { t, api } = ctx;
  const input = (id, attrs = {}) => h("input", { id, name: id, autocomplete: "off", ...attrs });
  const action = input("audit-action", { list: "audit-actions", maxlength: "100" });
  const target = input("audit-target", { maxlength: "200" });
  const staffId = input("audit-staff", { maxlength: "36", pattern: "[0-9a-fA-F-]{36}", spellcheck: "false" });
  const since = input("audit-since", { type: "datetime-local" });
  const limit = h("select", { id: "audit-limit" }, [50, 100, 200].map((n) => h("option", { value: String(n) }, String(n))));
  const field = (el2, label) => h("div", { class: "field" }, h("label", { for: el2.id }, label), el2);
  const form = h("form", { class: "row filters", role: "search" },
    field(action, t("action")), h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a }))),
    field(target, t("target")), field(staffId, t("staff")), field(since, t("since")), field(limit, t("limit")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("filter")),
      h("button", { type: "reset", class: "secondary" }, t("clear"))));
  const list = h("div", { "aria-live": "polite" }, h("p", { class: "loading" }, "…"));
  const pager = h("div", { class: "row pager" });
  fill(el, h("h1", {}, t("title")), form, list, pager);

  let pages = [null]; // the `before` of each page seen; the last is the current one
  let seq = 0;

  function query(before) {
    const p = new URLSearchParams({ limit: limit.value });
    if (action.value.trim()) p.set("action", action.value.trim());
    if (target.value.trim()) p.set("target", target.value.trim());
    if (staffId.value.trim()) p.set("staff_id", staffId.value.trim());
    if (since.value) p.set("since", japanTime(since.value) || since.value);
    if (before) p.set("before", String(before));
    return `/v1/staff/audit?${p}`;
  }

  async function load() {
    const mine = ++seq;
    const r = await api.get(query(pages[pages.length - 1]));
    if (mine !== seq) return;
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    ctx.notify("");
    const entries = r.data.entries;
    const skipped = (pages.length - 1) * Number(limit.value);
    fill(list, entries.length ? h("div", { class: "table-wrap" }, h("table", { id: "audit" },
      h("thead", {}, h("tr", {}, ["at", "who", "action", "target", "status", "via", "remote", "change"]
        .map((k) => h("th", { scope: "col" }, t(k))))),
      h("tbody", {}, entries.map((e) => h("tr", { dataset: { entry: String(e.id), action: e.action } },
        h("td", { class: "small" }, when(e.at)),
        h("td", {}, e.staff_label || (e.staff_id ? h("code", { title: e.staff_id }, e.staff_id.slice(0, 8)) : "—"),
          h("div", { class: "muted small" }, e.staff_role ? t(`role.${e.staff_role}`) : "")),
        h("td", {}, h("code", {}, e.action)),
        h("td", { class: "small" }, e.target ? h("code", {}, e.target) : "—"),
        h("td", {}, h("span", { class: `chip ${e.status < 400 ? "ok" : "refused"}` },
          `${e.status < 400 ? t("status.ok") : t("status.refused")} ${e.status}`)),
        h("td", {}, t(`via.${e.via}`)),
        h("td", { class: "small" }, e.remote || "—"),
        h("td", {}, change(e, t))))))) : h("p", {}, t("none")));
    fill(pager,
      h("button", { type: "button", class: "secondary", disabled: pages.length === 1,
        onclick: () => { pages.pop(); load(); } }, t("prev")),
      entries.length ? h("span", {}, t("page", { from: num(skipped + 1), to: num(skipped + entries.length) })) : null,
      h("button", { type: "button", class: "secondary", disabled: !r.data.next, id: "audit-older",
        onclick: () => { pages.push(r.data.next); load(); } }, t("next")));
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (since.value && !japanTime(since.value)) { ctx.notify(t("bad.since")); return; }
    pages = [null];
    load();
  });
  form.addEventListener("reset", () => { setTimeout(() => { pages = [null]; load(); }, 0); });
  limit.addEventListener("change", () => { pages = [null]; load(); });
  load();
}

function change(e, t) {
  if (e.before === null && e.after === null) return "—";
  const block = (label, value) => (value === null || value === undefined ? null
    : h("div", {}, h("strong", {}, label), h("pre", { class: "json" }, JSON.stringify(value, null, 2))));
  return h("details", {}, h("summary", {}, t("details")), block(t("before"), e.before), block(t("after"), e.after));
}
