// Japanese first, English switchable; the choice is kept in localStorage. Each page brings
// its own strings ({ja: {...}, en: {...}}); the shell's are below.
const KEY = "alertd.console.lang";
export const LANGS = ["ja", "en"];
let lang = LANGS.includes(localStorage.getItem(KEY)) ? localStorage.getItem(KEY) : "ja";

/** The current language. */
export const current = () => lang;

/** Switch language (persisted). */
export function setLang(value) {
  lang = LANGS.includes(value) ? value : "ja";
  localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang;
}

/** A translator over the given string tables (later ones win), falling back to Japanese,
 * then to the key. `{name}` in a string is replaced by vars.name. */
export function translator(...tables) {
  return (key, vars = {}) => {
    let text;
    for (const l of [lang, "ja"]) {
      for (const table of tables) {
        if (table && table[l] && table[l][key] !== undefined) text = table[l][key];
      }
      if (text !== undefined) break;
    }
    if (text === undefined) text = key;
    return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
  };
}

/** A name in the current language from a {ja, en} pair (or a texts object). */
export function pick(texts) {
  if (!texts || typeof texts === "string") return texts || "";
  return texts[lang] || texts.ja || Object.values(texts)[0] || "";
}

/** A number in the current language's format. */
export const num = (n) => (typeof n === "number" ? n.toLocaleString(lang) : String(n));

/** A time in the current language's format, in Japan time. */
export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(lang === "ja" ? "ja-JP" : "en-GB",
    { timeZone: "Asia/Tokyo", dateStyle: "short", timeStyle: "short" });
}

setLang(lang);
