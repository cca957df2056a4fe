// Past orders: lifted and expired ones, newest first; each links to its page (versions, counts).
import { ordersTable } from "./orders.js";
import { h, fill } from "./ui.js";

export const strings = {
  ja: { title: "過去の避難情報", none: "過去の避難情報はありません。", lifted: "解除済", expired: "期限切れ", state: "状態" },
  en: { title: "Past orders", none: "No past orders.", lifted: "Lifted", expired: "Expired", state: "State" },
};

export function mount(el, ctx) {
  const { t, api } = ctx;
  const body = h("div", {}, h("p", { class: "loading" }, "…"));
  fill(el, h("h1", {}, t("title")), body);
  (async () => {
    const [lifted, expired] = await Promise.all([api.get("/v1/staff/orders?state=lifted"),
      api.get("/v1/staff/orders?state=expired")]);
    if (!lifted.ok || !expired.ok) { ctx.notify((lifted.data || expired.data || {}).error); return; }
    const all = [...lifted.data.orders, ...expired.data.orders]
      .sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    fill(body, all.length ? ordersTable(all, ctx) : h("p", {}, t("none")));
  })();
}
