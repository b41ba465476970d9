// The pages' JSON API calls against a real HTTP server on loopback: the CSRF token on writes, JSON both ways,
// the server's error envelope (and what stands in for it when a body is not one), a server that is not there.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { HttpError, errorFrom, getJSON, postForm, request, sendJSON } from "../../web/static/js/http.js";

let server;
let base;
const seen = [];

before(async () => {
  globalThis.document = { body: { dataset: { csrf: "token-123" } } };
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => { body += chunk; });
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, csrf: req.headers["x-csrf-token"] ?? null,
        type: req.headers["content-type"] ?? null, body });
      const reply = (status, payload, headers = {}) => {
        res.writeHead(status, { "Content-Type": "application/json", ...headers });
        res.end(payload === undefined ? "" : JSON.stringify(payload));
      };
      if (req.url === "/api/ok") reply(200, { echo: body ? JSON.parse(body) : null });
      else if (req.url === "/api/upload") reply(201, { size: body.length });
      else if (req.url === "/api/conflict") reply(409, { error: { code: "invalid_transition", message: "already signed" } });
      else if (req.url === "/api/busy") reply(503, { error: { code: "busy", message: "busy, retry in 7 s" } }, { "Retry-After": "7" });
      else if (req.url === "/api/empty") reply(204);
      else {
        res.writeHead(502, { "Content-Type": "text/html" });
        res.end("<html><body>Bad gateway</body></html>");
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server.close();
  delete globalThis.document;
});

test("a read carries no CSRF token and returns the JSON", async () => {
  assert.deepEqual(await getJSON(`${base}/api/ok`), { echo: null });
  assert.deepEqual(seen.at(-1), { method: "GET", url: "/api/ok", csrf: null, type: null, body: "" });
});

test("a write carries the page's CSRF token and a JSON body", async () => {
  assert.deepEqual(await sendJSON("PUT", `${base}/api/ok`, { slot_id: 4 }), { echo: { slot_id: 4 } });
  const last = seen.at(-1);
  assert.equal(last.method, "PUT");
  assert.equal(last.csrf, "token-123");
  assert.equal(last.type, "application/json");
});

test("an upload goes as it is, with the token", async () => {
  const form = new FormData();
  form.append("file", new Blob(["abc"], { type: "image/png" }), "ecg.png");
  const data = await postForm(`${base}/api/upload`, form);
  assert.ok(data.size > 3);
  assert.equal(seen.at(-1).csrf, "token-123");
  assert.match(seen.at(-1).type, /^multipart\/form-data; boundary=/);
});

test("an empty answer is null", async () => {
  assert.equal(await request(`${base}/api/empty`, { method: "DELETE" }), null);
});

test("the server's error envelope becomes an HttpError with its code, message and status", async () => {
  await assert.rejects(sendJSON("POST", `${base}/api/conflict`, {}), (err) => {
    assert.ok(err instanceof HttpError);
    assert.deepEqual([err.status, err.code, err.message], [409, "invalid_transition", "already signed"]);
    return true;
  });
});

test("a busy server's Retry-After is read", async () => {
  await assert.rejects(getJSON(`${base}/api/busy`), (err) => err.code === "busy" && err.retryAfterS === 7);
});

test("a body that is not the envelope still gives a code and a message", async () => {
  await assert.rejects(getJSON(`${base}/gateway`), (err) => {
    assert.deepEqual([err.status, err.code], [502, "unavailable"]);
    assert.match(err.message, /^502/);
    return true;
  });
});

test("a server that cannot be reached is status 0, code network", async () => {
  const gone = createServer();
  await new Promise((resolve) => gone.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${gone.address().port}/api/ok`;
  await new Promise((resolve) => gone.close(resolve));
  await assert.rejects(getJSON(url), (err) => err.status === 0 && err.code === "network");
});

test("errorFrom on its own: 4xx without an envelope, retry time from the body", () => {
  const plain = errorFrom(404, null, { statusText: "Not Found" });
  assert.deepEqual([plain.code, plain.message, plain.retryAfterS], ["http_error", "404 Not Found", null]);
  const busy = errorFrom(503, { error: { code: "busy", message: "wait", retry_after_s: 3 } });
  assert.equal(busy.retryAfterS, 3);
  const odd = errorFrom(400, { error: "text" });
  assert.equal(odd.code, "http_error");
});
