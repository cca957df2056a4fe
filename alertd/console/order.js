// One order: its live delivery progress (polled every 2 s, announced politely), its area on
// the map, its versions; for operators, raise the level, change the area, lift.
import { areaPicker, strings as areaStrings } from "./area_picker.js";
import { createMap, orderLayer } from "./map.js";
import { levelName, previewTable, previewStrings } from "./order_new.js";
import { areas } from "./map.js";
import { pick, num, when } from "./i18n.js";
import { h, fill, levelChip, HAZARDS, COUNTS, LEVELS, newKey } from "./ui.js";

export const strings = {
  ja: {
    ...areaStrings.ja,
    ...previewStrings.ja,
    "need.area": "対象区域を選んでください。",
    trail: "監査記録", "trail.at": "日時", "trail.who": "職員", "trail.action": "操作", "trail.status": "結果",
    actions: "操作", progress: "配信状況", matched: "対象", sent: "送信済", pending: "送信待ち", failed: "失敗",
    invalid_token: "無効トークン", lifted: "解除通知", complete: "配信完了", sending: "配信中", queuing: "あと{n}台を配信待ちに追加中",
    state: "状態", "state.active": "発令中", "state.lifted": "解除済", "state.expired": "期限切れ",
    "state.pending_approval": "承認待ち", "state.rejected": "却下",
    hazard: "災害", expires: "期限", issued: "発令", versions: "版の履歴", version: "版", level: "レベル", at: "日時",
    raise: "レベルを引き上げる", "raise.to": "引き上げ後のレベル", "raise.confirm": "{level} に引き上げます。対象の端末に更新が送信されます。よろしいですか？",
    change: "区域を変更する", "change.preview": "新しい区域の対象端末数を確認", "change.apply": "この区域に変更する",
    "change.confirm": "区域を変更します（新しい区域の対象端末: {n} 台）。よろしいですか？",
    lift: "解除する", "lift.confirm": "この避難情報を解除します。受信した {n} 台の端末に解除が通知されます。よろしいですか？",
    "lift.ok": "解除する", done: "更新しました。", "pending.link": "承認待ちの一覧へ",
    "pending.change": "変更（{level}）が第二の操作者の承認待ちです。", "pending.approval": "第二の操作者の承認待ちです。承認されるまで何も送信されません。",
    failed_to: "できませんでした: {reason}", map: "この避難情報の区域", instruction: "行動の指示",
  },
  en: {
    ...areaStrings.en,
    ...previewStrings.en,
    "need.area": "Choose the area.",
    trail: "Audit trail", "trail.at": "At", "trail.who": "Staff", "trail.action": "Action", "trail.status": "Status",
    actions: "Actions", progress: "Delivery progress", matched: "Matched", sent: "Sent", pending: "Pending", failed: "Failed",
    invalid_token: "Invalid token", lifted: "Lifting notices", complete: "Delivery complete", sending: "Sending", queuing: "{n} more devices being queued",
    state: "State", "state.active": "Active", "state.lifted": "Lifted", "state.expired": "Expired",
    "state.pending_approval": "Waiting for approval", "state.rejected": "Rejected",
    hazard: "Hazard", expires: "Expires", issued: "Issued", versions: "Versions", version: "Version", level: "Level", at: "At",
    raise: "Raise the level", "raise.to": "New level", "raise.confirm": "Raise to {level}? Devices in the area get an update.",
    change: "Change the area", "change.preview": "Preview devices in the new area", "change.apply": "Change to this area",
    "change.confirm": "Change the area (devices in the new area: {n})?",
    lift: "Lift", "lift.confirm": "Lift this order? The {n} devices that received it are told.",
    "lift.ok": "Lift", done: "Updated.", "pending.link": "Pending approvals",
    "pending.change": "A change ({level}) waits for a second operator's approval.", "pending.approval": "Waiting for a second operator's approval. Nothing is sent until then.",
    failed_to: "Could not do it: {reason}", map: "This order's area", instruction: "Instruction",
  },
};

export function mount(el, ctx) {
  const { t, lang, api, params } = ctx;
  const id = params.id;
  const head = h("div", { id: "order-head" }, h("p", { class: "loading" }, "…"));
  const progress = h("section", { id: "progress", "aria-labelledby": "progress-title" });
  const versions = h("section", { id: "versions" });
  const trail = h("section", { id: "trail" });
  const actions = h("section", { id: "actions" });
  const mapEl = h("div", { id: "order-map" });
  fill(el, head, h("div", { class: "layout" }, h("div", {}, progress, actions, versions, trail), h("section", {}, mapEl)));

  let order = null;
  let mapped = null;
  let overlay = null;
  let drawnVersion = null;
  createMap(mapEl, ctx.session, { label: t("map") }).then((m) => { mapped = m; draw(); }).catch((e) => ctx.notify(String(e)));
  function draw() {
    if (!mapped || !order || drawnVersion === order.version) return;
    if (overlay) overlay.remove();
    overlay = orderLayer(order, mapped.collection).addTo(mapped.map);
    drawnVersion = order.version;
    try { mapped.map.fitBounds(overlay.getBounds(), { maxZoom: 12 }); } catch { /* an empty area */ }
  }

  const live = h("dl", { class: "progress", "aria-live": "polite", "aria-atomic": "true", id: "counts" });
  const bar = h("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", id: "bar" }, h("span"));
  const phase = h("p", { id: "phase", role: "status" });
  fill(progress, h("h2", { id: "progress-title" }, t("progress")), phase, bar, live);

  function render() {
    const o = order;
    fill(head, h("h1", {}, levelChip(o.level, lang), " ", pick(o.headline)),
      h("p", { class: "row" },
        h("span", { class: "chip state", id: "order-state" }, t(`state.${o.expired && o.state === "active" ? "expired" : o.state}`)),
        h("span", {}, `${t("hazard")}: ${pick(HAZARDS[o.hazard]) || o.hazard}`),
        h("span", {}, `${t("issued")}: ${when(o.created_at)}`), h("span", {}, `${t("expires")}: ${when(o.expires_at)}`)),
      o.instruction && Object.keys(o.instruction).length ? h("p", {}, `${t("instruction")}: ${pick(o.instruction)}`) : null,
      o.pending_change ? h("p", { class: "pending-approval", id: "pending-change", role: "status" },
        t("pending.change", { level: levelName(o.pending_change.level, lang) }), " ",
        h("a", { href: "#/approvals" }, t("pending.link"))) : null);
    fill(live, [...COUNTS, "lifted"].map((k) => h("div", {}, h("dt", {}, t(k)),
      h("dd", { dataset: { count: k } }, num((o.deliveries || {})[k] ?? o[k] ?? 0)))));
    const matched = o.matched || 0;
    const finished = (o.sent || 0) + (o.failed || 0) + (o.invalid_token || 0);
    const share = matched ? Math.round((100 * finished) / matched) : 100;
    bar.setAttribute("aria-valuemax", String(matched));
    bar.setAttribute("aria-valuenow", String(finished));
    bar.setAttribute("aria-label", t("progress"));
    bar.firstChild.style.width = `${share}%`;
    const queuing = o.queuing || 0;  // a streamed fan-out still queuing devices
    phase.textContent = (o.pending || 0) === 0 && queuing === 0 ? t("complete")
      : `${t("sending")} ${share}%` + (queuing ? ` · ${t("queuing", { n: num(queuing) })}` : "");
    fill(versions, h("h2", {}, t("versions")), h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("version")), h("th", { scope: "col" }, t("level")),
        h("th", { scope: "col" }, t("at")), COUNTS.map((k) => h("th", { scope: "col", class: "num" }, t(k))))),
      h("tbody", {}, (o.versions || []).map((v) => h("tr", {}, h("td", {}, String(v.version)), h("td", {}, levelChip(v.level, lang)),
        h("td", {}, when(v.created_at)), COUNTS.map((k) => h("td", { class: "num" }, num(v[k] ?? 0))))))));
    draw();
  }

  let actionsFor = null;
  function renderActions() {
    const key = `${order.version}:${order.state}:${order.expired}`;
    if (actionsFor === key) return;
    actionsFor = key;
    if (!ctx.can("operator") || order.state !== "active" || order.expired) { fill(actions); return; }
    const higher = [3, 4, 5].filter((n) => n > order.level);
    const to = h("select", { id: "raise-to" }, higher.map((n) => h("option", { value: String(n) }, levelName(n, lang))));
    const raise = h("button", { type: "button", id: "raise-button", onclick: () => doRaise(Number(to.value)) }, t("raise"));
    const lift = h("button", { type: "button", id: "lift-button", class: "danger", onclick: doLift }, t("lift"));
    const change = h("button", { type: "button", id: "change-button", class: "secondary", onclick: openChange }, t("change"));
    fill(actions, h("h2", {}, t("actions")), h("div", { class: "actions" },
      higher.length ? [h("label", { for: "raise-to" }, t("raise.to")), to, raise] : null, change, lift),
    h("div", { id: "change-area" }));
  }

  async function answered(r) {
    if (r.status === 202) { ctx.notify(t("pending.approval"), "info"); return; }
    if (!r.ok) { ctx.notify(t("failed_to", { reason: r.data && r.data.error })); return; }
    ctx.notify(t("done"), "info");
    actionsFor = null;
    await refresh();
  }
  async function doRaise(level) {
    if (!(await ctx.confirm(t("raise.confirm", { level: levelName(level, lang) }), t("raise")))) return;
    await answered(await api.patch(`/v1/staff/orders/${id}`, { level }));
  }
  async function doLift() {
    if (!(await ctx.confirm(t("lift.confirm", { n: num(order.matched || 0) }), t("lift.ok")))) return;
    await answered(await api.post(`/v1/staff/orders/${id}/lift`));
  }
  async function openChange() {
    const box = el.querySelector("#change-area");
    const pickerEl = h("div");
    const changeMap = h("div", { id: "change-map" });
    const result = h("div", { "aria-live": "polite" });
    const previewBtn = h("button", { type: "button", class: "secondary", id: "change-preview" }, t("change.preview"));
    const apply = h("button", { type: "button", id: "change-apply", disabled: true }, t("change.apply"));
    fill(box, pickerEl, changeMap, h("div", { class: "actions" }, previewBtn, apply), result);
    let seen = null;
    const picker = await areaPicker(pickerEl, changeMap, ctx, () => { apply.disabled = true; seen = null; });
    previewBtn.addEventListener("click", async () => {
      const area = picker.value();
      if (!area) { ctx.notify(t("need.area")); return; }
      const r = await api.post("/v1/staff/orders:preview", { level: order.level, hazard: order.hazard, area, headline: order.headline });
      if (!r.ok) { ctx.notify(t("failed_to", { reason: r.data && r.data.error })); return; }
      seen = { area, answer: r.data, key: newKey() };
      fill(result, previewTable(r.data, await areas(), t));
      apply.disabled = false;
    });
    apply.addEventListener("click", async () => {
      if (!seen) return;
      if (!(await ctx.confirm(t("change.confirm", { n: num(seen.answer.devices) }), t("change.apply")))) return;
      await answered(await api.patch(`/v1/staff/orders/${id}`, { area: seen.area }));
    });
  }

  // The order's audit trail (admins: the server refuses others, so it is not asked for).
  let trailFor = null;
  async function refreshTrail() {
    if (!ctx.can("admin") || trailFor === order.version + order.state) return;
    trailFor = order.version + order.state;
    const r = await api.get(`/v1/staff/audit?target=${encodeURIComponent(id)}`);
    if (!r.ok) return;
    fill(trail, h("h2", {}, t("trail")), h("table", {},
      h("thead", {}, h("tr", {}, ["at", "who", "action", "status"].map((k) => h("th", { scope: "col" }, t(`trail.${k}`))))),
      h("tbody", {}, r.data.entries.map((e) => h("tr", {}, h("td", {}, when(e.at)),
        h("td", {}, `${e.staff_label || e.staff_id || ""} (${e.via})`), h("td", {}, e.action), h("td", {}, String(e.status)))))));
  }

  async function refresh() {
    const r = await api.get(`/v1/staff/orders/${encodeURIComponent(id)}`);
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    order = r.data;
    render();
    renderActions();
    await refreshTrail();
  }
  ctx.every(2000, refresh);
  void LEVELS;
}
