/*
 * The staff console shell: sign-in, navigation, language, the page area.
 *
 * ADDING A PAGE. A page is one ES module in this directory that exports
 *
 *     export const strings = { ja: { key: "…" }, en: { key: "…" } };  // its own texts
 *     export function mount(el, ctx) { …; return () => { … } }         // the return: unmount
 *
 * and is registered with ONE line in ROUTES below:
 *
 *     { path: "shelters", load: () => import("./shelters.js"), nav: { ja: "避難所", en: "Shelters" }, role: "viewer" },
 *
 * `path` is the part after "#/" (":name" segments become ctx.params.name); `nav` puts it in the
 * navigation (leave it out for pages reached by links); `role` is the least staff role that
 * sees it (viewer < operator < admin) — the server refuses anyway, this only hides.
 *
 * ctx (what mount receives):
 *   ctx.t(key, vars)     the page's strings in the current language (then the shell's)
 *   ctx.lang             "ja" or "en"
 *   ctx.session          {role, label, csrf, expires_at, tile_url, tile_attribution}
 *   ctx.can(role)        whether the signed-in token holds at least `role`
 *   ctx.api              get/post/patch/del/call of ./api.js (session cookie + CSRF header)
 *   ctx.params           the ":name" segments of the path
 *   ctx.navigate(path)   go to "#/path"
 *   ctx.confirm(text, okLabel) → Promise<boolean>  a modal confirmation
 *   ctx.notify(text, kind)    a message in the page's alert region ("error" | "info")
 *   ctx.every(ms, fn)    run fn now and every ms while the page is mounted (stopped on unmount)
 * Switching language mounts the page again. Shared helpers: ./ui.js (h, LEVELS, HAZARDS),
 * ./map.js (a Leaflet map with the municipal areas), ./i18n.js.
 */
import * as api from "./api.js";
import * as i18n from "./i18n.js";
import { fill, h } from "./ui.js";

const ROUTES = [
  { path: "orders", load: () => import("./orders.js"), nav: { ja: "発令中の避難情報", en: "Active orders" }, role: "viewer" },
  { path: "orders/new", load: () => import("./order_new.js"), nav: { ja: "新規発令", en: "Issue an order" }, role: "operator" },
  { path: "approvals", load: () => import("./approvals.js"), nav: { ja: "承認待ち", en: "Pending approvals" }, role: "viewer" },
  { path: "history", load: () => import("./history.js"), nav: { ja: "過去の避難情報", en: "Past orders" }, role: "viewer" },
  { path: "orders/:id", load: () => import("./order.js"), role: "viewer" }, // after orders/new
  { path: "shelters", load: () => import("./shelters.js"), nav: { ja: "避難所", en: "Shelters" }, role: "viewer" },
  { path: "feeds", load: () => import("./feeds.js"), nav: { ja: "フィード", en: "Feeds" }, role: "viewer" },
  { path: "feeds/quarantine/:id", load: () => import("./feeds.js"), role: "viewer" },
  { path: "audit", load: () => import("./audit.js"), nav: { ja: "監査ログ", en: "Audit log" }, role: "admin" },
];
const HOME = "orders";
const ROLES = ["viewer", "operator", "admin"];

const STRINGS = {
  ja: {
    brand: "alertd 職員コンソール", logout: "ログアウト", lang: "English",
    "signin.title": "職員コンソールにログイン", "signin.token": "職員トークン",
    "signin.help": "`alertd staff-token create --role operator` で作成したトークンを入力してください。",
    "signin.submit": "ログイン", "signin.failed": "ログインできません: {reason}",
    "session.ended": "セッションが終了しました。もう一度ログインしてください。",
    "notfound": "このページはありません。", "forbidden": "この操作には {role} 権限が必要です。",
    cancel: "キャンセル", ok: "OK", "role.viewer": "閲覧者", "role.operator": "操作者", "role.admin": "管理者",
    "load.failed": "読み込めませんでした: {reason}",
  },
  en: {
    brand: "alertd staff console", logout: "Sign out", lang: "日本語",
    "signin.title": "Sign in to the staff console", "signin.token": "Staff token",
    "signin.help": "Enter a token made with `alertd staff-token create --role operator`.",
    "signin.submit": "Sign in", "signin.failed": "Cannot sign in: {reason}",
    "session.ended": "Your session ended. Please sign in again.",
    "notfound": "There is no such page.", "forbidden": "This needs the {role} role.",
    cancel: "Cancel", ok: "OK", "role.viewer": "viewer", "role.operator": "operator", "role.admin": "admin",
    "load.failed": "Could not load: {reason}",
  },
};

let session = null;
let unmount = null;
let mountSeq = 0;
let t = i18n.translator(STRINGS);

const $ = (id) => document.getElementById(id);
const can = (role) => !!session && ROLES.indexOf(session.role) >= ROLES.indexOf(role);

function notify(text, kind = "error") {
  const box = $("notice");
  box.className = `notice ${kind}`;
  box.textContent = text;
  box.hidden = !text;
}

function confirmDialog(text, okLabel) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel || t("ok");
  $("confirm-cancel").textContent = t("cancel");
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("confirm-cancel").focus();
  });
}

function match(hash) {
  const want = hash.replace(/^#\/?/, "").split("?")[0] || HOME;
  const parts = want.split("/");
  for (const route of ROUTES) {
    const pattern = route.path.split("/");
    if (pattern.length !== parts.length) continue;
    const params = {};
    if (pattern.every((p, i) => (p.startsWith(":") ? ((params[p.slice(1)] = decodeURIComponent(parts[i])), true) : p === parts[i]))) {
      return { route, params, path: want };
    }
  }
  return { route: null, params: {}, path: want };
}

function renderShell() {
  t = i18n.translator(STRINGS);
  document.title = t("brand");
  $("brand").textContent = t("brand");
  $("lang").textContent = t("lang");
  $("lang").setAttribute("lang", i18n.current() === "ja" ? "en" : "ja");
  $("logout").textContent = t("logout");
  $("who").textContent = `${session.label || ""} (${t(`role.${session.role}`)})`;
  const here = match(location.hash).path;
  fill($("nav"), h("ul", {}, ROUTES.filter((r) => r.nav && can(r.role)).map((r) =>
    h("li", {}, h("a", { href: `#/${r.path}`, "aria-current": r.path === here ? "page" : null },
      i18n.pick(r.nav))))));
  $("top").hidden = false;
}

async function show() {
  if (!session) return;
  const seq = ++mountSeq;
  if (unmount) { try { unmount(); } catch (e) { console.warn(e); } unmount = null; }
  notify("");
  renderShell();
  const page = $("page");
  const { route, params } = match(location.hash);
  if (!route) { fill(page, h("p", {}, t("notfound"))); return; }
  if (!can(route.role)) { fill(page, h("p", {}, t("forbidden", { role: t(`role.${route.role}`) }))); return; }
  fill(page, h("p", { class: "loading" }, "…"));
  const mod = await route.load();
  if (seq !== mountSeq) return; // another navigation won meanwhile
  const timers = [];
  const pageT = i18n.translator(STRINGS, mod.strings);
  const ctx = {
    t: pageT, lang: i18n.current(), session, can, api, params,
    navigate: (path) => { location.hash = `#/${path}`; },
    confirm: confirmDialog,
    notify: (text, kind) => { if (seq === mountSeq) notify(text, kind); }, // not once left
    every: (ms, fn) => { fn(); timers.push(setInterval(fn, ms)); },
  };
  fill(page);
  const own = mod.mount(page, ctx);
  unmount = () => { timers.forEach(clearInterval); if (typeof own === "function") own(); };
}

function signInForm(message) {
  session = null;
  mountSeq++;
  if (unmount) { unmount(); unmount = null; }
  $("top").hidden = true;
  notify(message || "");
  t = i18n.translator(STRINGS);
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h("form", { class: "signin", id: "signin" },
    h("h1", {}, t("signin.title")),
    h("label", { for: "token" }, t("signin.token")), input,
    h("p", { class: "help" }, t("signin.help")),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, t("signin.submit")),
      h("button", { type: "button", class: "secondary", lang: i18n.current() === "ja" ? "en" : "ja",
        onclick: () => { i18n.setLang(i18n.current() === "ja" ? "en" : "ja"); signInForm(); } }, t("lang"))));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await api.post("/v1/console/session", { token: input.value.trim() });
    if (r.status !== 201) { notify(t("signin.failed", { reason: r.data && r.data.error })); input.focus(); return; }
    input.value = "";
    start(r.data);
  });
  fill($("page"), form);
  input.focus();
}

function start(data) {
  session = data;
  api.setCsrf(data.csrf);
  show();
}

async function boot() {
  api.onSessionEnded(() => signInForm(t("session.ended")));
  $("lang").addEventListener("click", () => { i18n.setLang(i18n.current() === "ja" ? "en" : "ja"); show(); });
  $("logout").addEventListener("click", async () => {
    await api.del("/v1/console/session");
    api.setCsrf("");
    signInForm();
  });
  window.addEventListener("hashchange", show);
  const r = await api.get("/v1/console/session");
  if (r.ok && r.data.signed_in) start(r.data);
  else signInForm();
}

boot();
