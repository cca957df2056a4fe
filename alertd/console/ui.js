// Small DOM helpers and the shared vocabulary of orders (levels with their official names and
// colours, hazards), for every page.

/** An element: h("button", {class: "x", onclick: f}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c);
  return el;
}

// 警戒レベル: official names (内閣府 避難情報に関するガイドライン) and colours.
export const LEVELS = {
  3: { ja: "高齢者等避難", en: "Evacuation of elderly etc.", colour: "#d7191c", text: "#fff" },
  4: { ja: "避難指示", en: "Evacuation order", colour: "#7b2a8c", text: "#fff" },
  5: { ja: "緊急安全確保", en: "Emergency safety measures", colour: "#111111", text: "#fff" },
};

export const HAZARDS = {
  flood: { ja: "洪水", en: "Flood" },
  landslide: { ja: "崖崩れ・土石流・地滑り", en: "Landslide" },
  storm_surge: { ja: "高潮", en: "Storm surge" },
  earthquake: { ja: "地震", en: "Earthquake" },
  tsunami: { ja: "津波", en: "Tsunami" },
  fire: { ja: "大規模な火事", en: "Large fire" },
  inland_flood: { ja: "内水氾濫", en: "Inland flooding" },
  volcano: { ja: "火山現象", en: "Volcanic phenomena" },
};

/** A level chip: "警戒レベル4 避難指示" in the level's colour. */
export function levelChip(level, lang) {
  const l = LEVELS[level];
  if (!l) return h("span", { class: "chip" }, String(level));
  const word = lang === "en" ? `Level ${level}` : `警戒レベル${level}`;
  return h("span", { class: `chip level-${level}` }, `${word} ${l[lang] || l.ja}`);
}

export const COUNTS = ["matched", "sent", "pending", "failed", "invalid_token"];

/** A random Idempotency-Key for one issuing. */
export const newKey = () => (crypto.randomUUID ? crypto.randomUUID()
  : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16)).join(""));
