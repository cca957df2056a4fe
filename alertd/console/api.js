// Calls of the staff API with the console's session: the cookie goes by itself (same
// origin), unsafe methods carry the session's CSRF token in X-CSRF-Token.
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
let csrf = "";
let onEnded = () => {};

/** Remember the session's CSRF token (from sign-in or GET /v1/console/session). */
export function setCsrf(token) { csrf = token || ""; }

/** What to do when the server says the session ended (401). */
export function onSessionEnded(fn) { onEnded = fn; }

/**
 * One request: resolves to {status, ok, data} (data: the parsed JSON or null).
 * A 401 also calls the session-ended handler (sign in again).
 */
export async function call(method, path, body, headers = {}) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (UNSAFE.has(method) && csrf) h["X-CSRF-Token"] = csrf;
  const resp = await fetch(path, {
    method, headers: h, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (resp.status !== 204) {
    const text = await resp.text();
    try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  }
  if (resp.status === 401 && !path.startsWith("/v1/console/session")) onEnded();
  return { status: resp.status, ok: resp.ok, data };
}

export const get = (path) => call("GET", path);
export const post = (path, body, headers) => call("POST", path, body, headers);
export const patch = (path, body) => call("PATCH", path, body);
export const del = (path) => call("DELETE", path);
