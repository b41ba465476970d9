// Times on the pages as the server's localtime filter writes them: the alliance's zone, 24-hour.
import { test } from "node:test";
import assert from "node:assert/strict";

import { fileStamp, formatAmount, formatWhen } from "../../web/static/js/when.js";

const SHANGHAI = { zone: "Asia/Shanghai" };
// 06:29:08 UTC is 14:29:08 in Shanghai (UTC+8, no summer time).
const MOMENT = "2026-12-03T06:29:08.5+00:00";

test("a moment in Chinese and in English, in the alliance's zone", () => {
  assert.equal(formatWhen(MOMENT, "datetime", { ...SHANGHAI, lang: "zh_CN" }), "2026年12月3日 14:29");
  assert.equal(formatWhen(MOMENT, "datetime", { ...SHANGHAI, lang: "en" }), "3 Dec 2026, 14:29");
  assert.equal(formatWhen(MOMENT, "date", { ...SHANGHAI, lang: "zh_CN" }), "2026年12月3日");
  assert.equal(formatWhen(MOMENT, "seconds", { ...SHANGHAI, lang: "en" }), "14:29:08");
});

test("24-hour in the afternoon and past midnight, and the day moves with the zone", () => {
  assert.equal(formatWhen("2026-12-03T15:05:00Z", "datetime", { ...SHANGHAI, lang: "en" }), "3 Dec 2026, 23:05");
  assert.equal(formatWhen("2026-12-03T16:05:00Z", "datetime", { ...SHANGHAI, lang: "en" }), "4 Dec 2026, 00:05");
  assert.equal(formatWhen("2026-12-03T16:05:00Z", "time", { zone: "UTC", lang: "en" }), "16:05");
});

test("nothing is a dash, and what is no time is shown as it came", () => {
  assert.equal(formatWhen(null, "datetime", { ...SHANGHAI, lang: "en" }), "—");
  assert.equal(formatWhen("soon", "datetime", { ...SHANGHAI, lang: "en" }), "soon");
});

test("amounts in words and a local file stamp", () => {
  assert.equal(formatAmount(5, "minute", { lang: "en" }), "5 minutes");
  assert.equal(formatAmount(1, "second", { lang: "en" }), "1 second");
  assert.equal(formatAmount(5, "minute", { lang: "zh_CN" }), "5分钟");
  assert.equal(fileStamp(new Date(MOMENT), SHANGHAI), "20261203-142908");
});
