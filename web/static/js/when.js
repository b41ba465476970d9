// Times as the pages show them: the alliance's time zone (the page's <body data-tz>), 24-hour, and dates as a
// reader of the page's language writes them, `2026年12月3日 14:29` or `3 Dec 2026, 14:29` - the same words as
// the server's `localtime` filter (telehealth/server/i18n.py).

const DEFAULT_ZONE = "Asia/Shanghai";

function pageSettings() {
  const body = typeof document !== "undefined" ? document.body : null;
  return { lang: (body && body.dataset.lang) || "zh_CN", zone: (body && body.dataset.tz) || DEFAULT_ZONE };
}

const STYLES = {
  datetime: { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" },
  date: { year: "numeric", month: "short", day: "numeric" },
  time: { hour: "2-digit", minute: "2-digit" },
  seconds: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
};

// A moment (a Date, an ISO string or epoch milliseconds) in words; style: datetime, date, time or seconds.
export function formatWhen(value, style = "datetime", { lang, zone } = pageSettings()) {
  if (value === null || value === undefined || value === "") return "—";
  const moment = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(moment.getTime())) return String(value);
  const zh = lang === "zh_CN";
  const options = { ...STYLES[style] || STYLES.datetime, timeZone: zone, hourCycle: "h23" };
  if (zh && options.month) options.month = "long"; // 12月, not the short form
  return new Intl.DateTimeFormat(zh ? "zh-CN" : "en-GB", options).format(moment);
}

// A length of time in words: `5 分钟` / `5 minutes`, `45 秒` / `45 seconds`.
export function formatAmount(n, unit, { lang } = pageSettings()) {
  return new Intl.NumberFormat(lang === "zh_CN" ? "zh-CN" : "en-GB",
    { style: "unit", unit, unitDisplay: "long" }).format(n);
}

// The local date and time for a file name: 20261203-142908.
export function fileStamp(moment = new Date(), { zone } = pageSettings()) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(moment).map((p) => [p.type, p.value]));
  return `${parts.year}${parts.month}${parts.day}-${parts.hour}${parts.minute}${parts.second}`;
}
