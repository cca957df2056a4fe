// Four-eyes: orders and changes waiting for a second operator, with the numbers their preview
// showed. Another operator approves (then it goes out) or rejects; the operator who asked may
// only withdraw it (reject): the server refuses their approval (403), and the page says so.
import { previewTable, previewStrings, levelName } from "./order_new.js";
import { areas } from "./map.js";
import { pick, num, when } from "./i18n.js";
import { h, fill, levelChip, HAZARDS } from "./ui.js";

export const strings = {
  ja: {
    ...previewStrings.ja,
    title: "承認待ち", none: "承認待ちの避難情報はありません。", "kind.issue": "新規発令", "kind.amend": "変更",
    requested: "依頼: {who}（{at}）", reasons: "承認が必要な理由",
    approve: "承認して送信", reject: "却下", withdraw: "取り下げ", "preview.by": "市町村別", municipality: "市町村",
    "own": "あなたの依頼です。別の操作者が承認する必要があります（同じ操作者による承認はサーバーが拒否します）。",
    "approve.confirm": "{level}（{hazard}）を {n} 台の端末に送信します。承認しますか？", "approve.ok": "承認して送信",
    "reject.confirm": "この依頼を却下します。何も送信されません。よろしいですか？", "reject.reason": "却下の理由（任意）",
    approved: "承認しました。送信を開始しました。", rejected: "却下しました。", failed: "できませんでした（{status}）: {reason}",
    expired: "期限切れ",
  },
  en: {
    ...previewStrings.en,
    title: "Pending approvals", none: "Nothing is waiting for approval.", "kind.issue": "New order", "kind.amend": "Change",
    requested: "Requested by {who} ({at})", reasons: "Why approval is needed",
    approve: "Approve and send", reject: "Reject", withdraw: "Withdraw", "preview.by": "By municipality", municipality: "Municipality",
    "own": "You asked for this: another operator must approve it (the server refuses an approval by the same operator).",
    "approve.confirm": "Send {level} ({hazard}) to {n} devices? Approve?", "approve.ok": "Approve and send",
    "reject.confirm": "Reject this request? Nothing is sent.", "reject.reason": "Reason for rejecting (optional)",
    approved: "Approved: sending has started.", rejected: "Rejected.", failed: "Could not do it ({status}): {reason}",
    expired: "expired",
  },
};

export function mount(el, ctx) {
  const { t, lang, api } = ctx;
  const body = h("div", { id: "approvals", "aria-live": "polite" }, h("p", { class: "loading" }, "…"));
  fill(el, h("h1", {}, t("title")), body);
  let shown = "";

  async function act(item, what) {
    let r;
    if (what === "approve") {
      const ok = await ctx.confirm(t("approve.confirm", { level: levelName(item.level, lang),
        hazard: pick(HAZARDS[item.hazard]), n: num(item.devices) }), t("approve.ok"));
      if (!ok) return;
      r = await api.post(`/v1/staff/orders/${item.id}/approve`);
    } else {
      if (!(await ctx.confirm(t("reject.confirm"), t("reject")))) return;
      r = await api.post(`/v1/staff/orders/${item.id}/reject`, {});
    }
    if (!r.ok) { ctx.notify(t("failed", { status: r.status, reason: r.data && r.data.error })); return; }
    ctx.notify(t(what === "approve" ? "approved" : "rejected"), "info");
    shown = "";
    if (what === "approve") ctx.navigate(`orders/${item.id}`);
    else await refresh();
  }

  async function card(item, collection) {
    const own = ctx.session.staff_id && item.requested_by === ctx.session.staff_id;
    const buttons = ctx.can("operator") ? h("div", { class: "actions" },
      own ? null : h("button", { type: "button", class: "approve", onclick: () => act(item, "approve") }, t("approve")),
      h("button", { type: "button", class: "danger reject", onclick: () => act(item, "reject") }, t(own ? "withdraw" : "reject"))) : null;
    return h("article", { class: "approval", dataset: { order: item.id } },
      h("h2", {}, levelChip(item.level, lang), " ", t(`kind.${item.kind}`), " — ", pick(item.headline)),
      h("p", { class: "muted" }, t("requested", { who: item.requested_label || item.requested_by, at: when(item.requested_at) }),
        item.expired ? ` · ${t("expired")}` : ""),
      h("p", {}, `${pick(HAZARDS[item.hazard]) || item.hazard}`),
      previewTable(item, collection, t, `preview-${item.id}`),
      item.reasons && item.reasons.length ? h("div", { class: "reasons" }, h("p", {}, t("reasons")),
        h("ul", {}, item.reasons.map((r) => h("li", { lang: "en" }, r)))) : null,
      own ? h("p", { class: "pending-approval own" }, t("own")) : null,
      buttons);
  }

  async function refresh() {
    const r = await api.get("/v1/staff/orders?state=pending_approval");
    if (!r.ok) { ctx.notify(r.data && r.data.error); return; }
    const key = JSON.stringify(r.data.orders.map((o) => [o.id, o.kind, o.version, o.devices]));
    if (key === shown) return; // unchanged: keep focus and the reader's place
    shown = key;
    if (!r.data.orders.length) { fill(body, h("p", {}, t("none"))); return; }
    const collection = await areas();
    fill(body, await Promise.all(r.data.orders.map((o) => card(o, collection))));
  }
  ctx.every(3000, refresh);
}
