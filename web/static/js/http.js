// The pages' calls to the JSON API: the CSRF token on every write, JSON in and out, one error shape
// (the server's {"error": {"code", "message"}} envelope, see docs/protocol.md).

export class HttpError extends Error {
  constructor(status, code, message, retryAfterS = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
}

// The error a failed answer stands for. A body that is not the server's envelope (a proxy's HTML page, an
// empty answer) still gives an error with a code, so callers never read fields of undefined.
export function errorFrom(status, data, { statusText = "", retryAfter = null } = {}) {
  const error = data && typeof data === "object" && data.error && typeof data.error === "object" ? data.error : {};
  const code = typeof error.code === "string" ? error.code : status >= 500 ? "unavailable" : "http_error";
  const message = typeof error.message === "string" && error.message
    ? error.message : `${status} ${statusText}`.trim();
  let retry = Number.parseInt(retryAfter ?? "", 10);
  if (!Number.isFinite(retry)) retry = Number.isFinite(error.retry_after_s) ? error.retry_after_s : null;
  return new HttpError(status, code, message, retry);
}

export function csrfToken() {
  return globalThis.document?.body?.dataset?.csrf ?? "";
}

async function readBody(resp) {
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// One request. `json` is sent as a JSON body, `body` as it is (a FormData upload); the answer's JSON is
// returned. A failed answer throws an HttpError; a request that never reached the server throws one with
// status 0 and code "network".
export async function request(url, { method = "GET", json, body, keepalive = false, fetch = globalThis.fetch } = {}) {
  const headers = {};
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let resp;
  try {
    resp = await fetch(url, { method, headers, body, keepalive, credentials: "same-origin" });
  } catch (err) {
    throw new HttpError(0, "network", (err && err.message) || "network error");
  }
  const data = await readBody(resp);
  if (!resp.ok) {
    throw errorFrom(resp.status, data, { statusText: resp.statusText, retryAfter: resp.headers.get("Retry-After") });
  }
  return data;
}

export const getJSON = (url, options = {}) => request(url, options);
export const sendJSON = (method, url, json, options = {}) => request(url, { ...options, method, json });
export const postForm = (url, form, options = {}) => request(url, { ...options, method: "POST", body: form });
