"""Field benchmark: real calls between two Chromium windows over emulated clinic links.

    python bench/field.py [--profiles good,township,village,bad] [--seconds 40] [--calls 1]

Everything runs on loopback. The script starts a coturn of its own, one `telehealth serve --demo` node that
hands out TURN credentials for it, and for each named link profile (telehealth/media/linkemu.py) a UDP relay
process with that profile in front of coturn. Two headless Chromium windows with a fake camera and microphone
play the two doctors:

* the clinic's window reaches TURN only through the relay, so all its media crosses the weak link, the way a
  village clinic's traffic crosses its uplink, and it reaches the web server (pages, signaling) through the
  same line's delay; the specialist's window reaches both directly, as a hospital on a good line would; both
  are forced to relay (`iceTransportPolicy: "relay"`).
* the clinic first runs the pre-call check (/clinic/precheck) over that link and its verdict is noted;
* then the clinic asks for a consultation (the real form, consent signed on the pad), the specialist accepts
  it on the dashboard (once the clinic's page is waiting, after 2 s to read the request) and the call runs
  for `--seconds`, after which the specialist hangs up; `--calls N` makes N such calls in a row per profile.

Each window samples its peer connection every 100 ms (getStats, in the page). Per profile:

* `connected`: both windows received audio;
* `setup_ms`: from the specialist's click on Accept until audio arrived on both sides;
* `audio_continuity`: the share of 100 ms windows, from the first audio packet to the hang-up, in which audio
  packets arrived; the lower of the two directions (each is also printed);
* `video_fps`: decoded frames a second of the clinic's video at the specialist's side, over the call;
* `switched_to_audio_only`: the clinic's call paused its video (its own ladder, or the check's advice);
* the pre-check's verdict and cause, and the figures it measured.

`--smoke` makes one short call on the good profile, to show that it runs; it exits 0 whatever the figures.

Prints a table (a row per call), then as its last line one JSON object with the figures per profile (over its
calls: the slowest setup, the lowest continuity, the mean frame rate) and whether each goal was met by every
call: every profile connects; audio continuity >= 0.95 down to `village` and >= 0.8 on `bad`; setup <= 3 s on
`village`; the pre-check verdict matches the profile (`video_ok` on good, township and village, `audio_only`
on bad).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telehealth.media.linkemu import PROFILES  # noqa: E402
from telehealth.records.seed import DEMO_PASSWORD  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # Pages in the background keep their timers: the sampler must tick every 100 ms in both windows.
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
EXPECTED_VERDICT = {"good": "video_ok", "township": "video_ok", "village": "video_ok", "bad": "audio_only"}
CONTINUITY_GOAL = {"good": 0.95, "township": 0.95, "village": 0.95, "bad": 0.8}
SETUP_GOAL_MS = {"village": 3000}
WINDOW_MS = 100
# Seconds the specialist takes to read a request on the dashboard before accepting it.
READING_S = 2.0

# Every peer connection of the page goes through TURN only; the clinic's through the relay's port.
FORCE_RELAY = """
(() => {
  const from = %(turn)d, to = %(relay)d;
  const Native = window.RTCPeerConnection;
  const rewrite = (u) => (to ? u.replace(':' + from, ':' + to) : u);
  class Relayed extends Native {
    constructor(config, ...rest) {
      const c = Object.assign({}, config || {});
      c.iceTransportPolicy = 'relay';
      c.iceServers = (c.iceServers || []).map((s) => Object.assign({}, s, {
        urls: [].concat(s.urls).map(rewrite) }));
      super(c, ...rest);
    }
  }
  window.RTCPeerConnection = Relayed;
})();
"""

# A sample every 100 ms of the call's peer connection: [epoch ms, audio packets in, video frames decoded,
# audio concealed samples, audio samples, audio only (0/1), ladder level].
SAMPLER = """
(() => {
  window.__field = { samples: [], pcAt: null, connectedAt: null, timeline: [] };
  // The call's signaling as this window saw it: [epoch ms, "<" received or ">" sent, event or command].
  const note = (dir, text) => {
    let m;
    try { m = JSON.parse(text); } catch (e) { return; }
    const name = m.type === 'event' ? m.event + (m.data && m.data.kind ? ':' + m.data.kind : '')
      : m.type === 'result' ? 'result#' + m.id : m.type + (m.kind ? ':' + m.kind : '') + '#' + m.id;
    if (/^(session|signal|peer|offer|result|consultation_state)/.test(name) && window.__field.timeline.length < 60) {
      window.__field.timeline.push([Date.now(), dir, name]);
    }
  };
  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(...a) { super(...a); this.addEventListener('message', (e) => note('<', e.data)); }
    send(data) { note('>', data); return super.send(data); }
  };
  const tick = async () => {
    const call = window.telehealthCall;
    if (!call || !call.pc || call.ended) return;
    const at = Date.now();
    if (window.__field.pcAt === null) window.__field.pcAt = at;
    if (window.__field.connectedAt === null && ['connected', 'completed'].includes(call.pc.iceConnectionState)) {
      window.__field.connectedAt = at;
    }
    let audio = null, video = null;
    try {
      (await call.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') audio = r;
        if (r.type === 'inbound-rtp' && r.kind === 'video') video = r;
      });
    } catch (e) { return; }
    window.__field.samples.push([at, audio ? audio.packetsReceived || 0 : 0,
      video ? video.framesDecoded || 0 : 0, audio ? audio.concealedSamples || 0 : 0,
      audio ? audio.totalSamplesReceived || 0 : 0, call.audioOnly ? 1 : 0,
      call.adaptState ? call.adaptState.level : 0]);
  };
  setInterval(tick, WINDOW_MS);
})();
""".replace("WINDOW_MS", str(WINDOW_MS))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_coturn(workdir: Path) -> tuple[subprocess.Popen[Any], int, str]:
    binary = shutil.which("turnserver")
    if binary is None:
        sys.exit("coturn is not installed (apt-get install coturn)")
    port, low = free_port(), 40000 + secrets.randbelow(20000)
    secret = secrets.token_hex(16)
    proc = subprocess.Popen(
        [binary, "-c", str(ROOT / "config" / "turnserver.conf"), "--static-auth-secret", secret,
         "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(port),
         "--min-port", str(low), "--max-port", str(low + 400), "--allow-loopback-peers",
         "--pidfile", str(workdir / "turnserver.pid"), "--realm", "telehealth.bench", "--no-tls", "--no-dtls"],
        stdout=(workdir / "coturn.log").open("wb"), stderr=subprocess.STDOUT)
    return proc, port, secret


async def start_node(workdir: Path, turn_port: int, turn_secret: str) -> tuple[subprocess.Popen[Any], str]:
    port = free_port()
    env = {**os.environ, "TELEHEALTH_SECRET_KEY": secrets.token_hex(16), "TELEHEALTH_LOG_LEVEL": "WARNING",
           "TELEHEALTH_ICE__TURN_URLS": f"turn:127.0.0.1:{turn_port}?transport=udp",
           "TELEHEALTH_TURN__SECRET": turn_secret, "TELEHEALTH_PRECHECK__ADDRESSES": "127.0.0.1",
           "TELEHEALTH_MATCHING__RING_TIMEOUT_S": "30"}
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "telehealth", "serve", "--demo", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(workdir / "data")],
        cwd=ROOT, env=env, stdout=(workdir / "node.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.poll() is not None:
                sys.exit(f"the node exited; see {workdir / 'node.log'}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "/readyz") as resp:
                    if resp.status == 200:
                        # Browsers treat localhost as a secure context: camera without TLS.
                        return proc, f"http://localhost:{port}"
            await asyncio.sleep(0.1)
    sys.exit("the node did not start")


async def start_relay(profile: str, turn_port: int, web_port: int) -> subprocess.Popen[Any]:
    """The clinic's line: UDP to coturn (media) and TCP to the web server (pages and signaling)."""
    proc = await asyncio.to_thread(
        subprocess.Popen, [sys.executable, "-m", "telehealth.media.linkemu", profile,
                           "--target", f"127.0.0.1:{turn_port}", "--tcp-target", f"127.0.0.1:{web_port}"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    tcp = await asyncio.to_thread(proc.stdout.readline)
    line = await asyncio.to_thread(proc.stdout.readline)
    if not tcp.startswith("tcp ") or not line.startswith("listening "):
        sys.exit(f"the link relay did not start: {tcp!r} {line!r}")
    proc.relay_port = int(line.split()[1])  # type: ignore[attr-defined]
    proc.web_port = int(tcp.split()[1])  # type: ignore[attr-defined]
    return proc


def relay_counts(proc: subprocess.Popen[Any]) -> dict[str, Any]:
    stop(proc)
    assert proc.stdout is not None
    with contextlib.suppress(ValueError):
        return dict(json.loads(proc.stdout.read().strip().splitlines()[-1]))
    return {}


class Window:
    """One doctor in one headless Chromium."""

    def __init__(self, context: Any, base: str) -> None:
        self.context = context
        self.base = base
        self.page: Any = None

    @classmethod
    async def open(cls, pw: Any, base: str, profile_dir: Path, turn_port: int, relay_port: int) -> Window:
        ctx = await pw.chromium.launch_persistent_context(
            str(profile_dir), executable_path=CHROMIUM, headless=True, args=ARGS,
            permissions=["camera", "microphone"], locale="en-GB", viewport={"width": 1100, "height": 900})
        await ctx.add_init_script(FORCE_RELAY % {"turn": turn_port, "relay": relay_port})
        await ctx.add_init_script(SAMPLER)
        w = cls(ctx, base)
        w.page = ctx.pages[0] if ctx.pages else await ctx.new_page()
        w.page.set_default_timeout(30_000)
        return w

    async def login(self, username: str) -> None:
        await self.page.goto(self.base + "/login")
        await self.page.fill("#username", username)
        await self.page.fill("#password", DEMO_PASSWORD)
        await self.page.click("form[action='/login'] button[type=submit]")
        await self.page.wait_for_load_state("networkidle")

    async def samples(self) -> list[list[float]]:
        return list(await self.page.evaluate("() => window.__field ? window.__field.samples : []"))

    async def moments(self) -> dict[str, float | None]:
        """When (epoch ms) the page's call had a peer connection, and when ICE connected."""
        return dict(await self.page.evaluate(
            "() => window.__field ? { pc: window.__field.pcAt, connected: window.__field.connectedAt } : {}"))

    async def timeline(self) -> list[list[Any]]:
        return list(await self.page.evaluate("() => window.__field ? window.__field.timeline : []"))

    async def close(self) -> None:
        await self.context.close()


async def precheck(clinic: Window) -> dict[str, Any]:
    page = clinic.page
    await page.goto(clinic.base + "/clinic/precheck")
    async with page.expect_response(lambda r: r.url.endswith("/report"), timeout=60_000) as report:
        await page.click("#btn-precheck")
    measured = await (await report.value).json()
    verdicts = ("video_ok", "audio_only", "cannot_connect", "failed", "busy")
    selector = ", ".join(f"#precheck-state[data-state={v}]" for v in verdicts)
    await page.wait_for_selector(selector, timeout=60_000)
    out = {"verdict": await page.get_attribute("#precheck-state", "data-state"),
           "text": (await page.text_content("#precheck-state") or "").strip()}
    for key in ("up", "down", "rtt", "loss", "jitter"):
        out[key] = (await page.text_content(f"#fig-{key}") or "").strip()
    out["cause"] = measured.get("cause")
    out["measured"] = {side: measured.get(side) for side in ("up", "down", "probe_kbps")}
    return out


async def sign(page: Any) -> None:
    pad = page.locator("#signature-pad")
    await pad.scroll_into_view_if_needed()
    box = await pad.bounding_box()
    await page.mouse.move(box["x"] + 20, box["y"] + box["height"] / 2)
    await page.mouse.down()
    for i in range(1, 12):
        await page.mouse.move(box["x"] + 20 + i * (box["width"] - 40) / 11,
                              box["y"] + box["height"] / 2 + (12 if i % 2 else -12))
    await page.mouse.up()


async def request_consultation(clinic: Window) -> int:
    page = clinic.page
    await page.goto(clinic.base + "/clinic/consultations/new")
    await page.fill("#patient_name", "Field Test Patient")
    await page.select_option("#patient_sex", "female")
    await page.fill("#patient_birth_year", "1960")
    await page.select_option("#specialty", "cardiology")
    await page.select_option("#urgency", "urgent")
    await page.fill("#chief_complaint", "Palpitations since this morning")
    await page.select_option("#consent_by", "patient")
    await page.fill("#consent_name", "Field Test Patient")
    await sign(page)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/clinic/consultations/*")
    return int(page.url.rsplit("/", 1)[1])


def continuity(samples: list[list[float]]) -> tuple[float | None, float | None]:
    """(share of 100 ms windows with audio from the first packet on, epoch ms of the first packet)."""
    first = next((i for i, s in enumerate(samples) if s[1] > 0), None)
    if first is None:
        return None, None
    windows = heard = 0
    for prev, cur in zip(samples[first:], samples[first + 1:], strict=False):
        # A late tick spans several windows: it counts as that many, with audio in at most one per packet.
        span = max(1, round((cur[0] - prev[0]) / WINDOW_MS))
        windows += span
        heard += min(span, int(cur[1] - prev[1]))
    return (heard / windows if windows else None), samples[first][0]


def video_fps(samples: list[list[float]]) -> float | None:
    started = next((s for s in samples if s[1] > 0), None)
    if started is None or samples[-1][0] <= started[0]:
        return None
    return (samples[-1][2] - started[2]) / ((samples[-1][0] - started[0]) / 1000)


def concealed_pct(samples: list[list[float]]) -> float | None:
    if not samples or not samples[-1][4]:
        return None
    return 100 * samples[-1][3] / samples[-1][4]


async def run_profile(pw: Any, name: str, index: int, base: str, turn_port: int, workdir: Path,
                      seconds: float, calls: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pre-call check, then `calls` calls in a row over one link: (each call's figures, the link's counts)."""
    relay = await start_relay(name, turn_port, int(base.rsplit(":", 1)[1]))
    clinic = specialist = None
    results: list[dict[str, Any]] = []
    link: dict[str, Any] = {}
    try:
        # The clinic reaches the web server through the same line (its delay), as a village clinic would.
        clinic_base = f"http://localhost:{relay.web_port}"  # type: ignore[attr-defined]
        clinic = await Window.open(pw, clinic_base, workdir / f"clinic-{index}-{name}", turn_port,
                                   relay.relay_port)  # type: ignore[attr-defined]
        specialist = await Window.open(pw, base, workdir / f"specialist-{index}-{name}", turn_port, 0)
        # A clinic of its own for each profile: its pre-check is the one the call is told about.
        await clinic.login(f"village{index + 1}")
        await specialist.login("cardio.chief")
        await specialist.page.wait_for_selector("#connection[data-state=online]")
        print(f"[{name}] pre-call check...", file=sys.stderr, flush=True)
        checked = await precheck(clinic)
        print(f"[{name}] pre-check: {checked['verdict']}", file=sys.stderr, flush=True)
        for n in range(calls):
            if n:
                await specialist.page.goto(base + "/")
                await specialist.page.wait_for_selector("#connection[data-state=online]")
            print(f"[{name}] call {n + 1} of {calls}...", file=sys.stderr, flush=True)
            result = {"profile": name, "call": n + 1, "precheck": checked}
            results.append(result)
            await one_call(clinic, specialist, seconds, result)
            print(f"[{name}] {json.dumps(result)}", file=sys.stderr, flush=True)
    finally:
        for w in (clinic, specialist):
            if w is not None:
                with contextlib.suppress(Exception):
                    await w.close()
        link = relay_counts(relay)
    return results, link


async def one_call(clinic: Window, specialist: Window, seconds: float, result: dict[str, Any]) -> None:
    name = result["profile"]
    result["connected"] = False
    cid = await request_consultation(clinic)
    await specialist.page.wait_for_selector(f"#offer[data-consultation='{cid}']:not([hidden])", timeout=60_000)
    # The specialist reads the request before accepting; the clinic's page is waiting by then.
    await clinic.page.wait_for_selector("#page[data-watching=true]", timeout=60_000)
    await asyncio.sleep(READING_S)
    accepted_at = time.time() * 1000
    await specialist.page.click("#btn-accept")
    await asyncio.sleep(seconds)
    clinic_samples = await clinic.samples()
    specialist_samples = await specialist.samples()
    # Where the setup time went: each side's peer connection made, then ICE connected.
    for side, window in (("clinic", clinic), ("specialist", specialist)):
        moments = await window.moments()
        for key, value in moments.items():
            result[f"{side}_{key}_ms"] = round(value - accepted_at) if value else None
    for side, window in (("clinic", clinic), ("specialist", specialist)):
        steps = [f"{round(at - accepted_at)}{d}{what}" for at, d, what in await window.timeline()
                 if at >= accepted_at - 100]
        print(f"[{name}] {side} signaling (ms after Accept): {' '.join(steps[:24])}", file=sys.stderr, flush=True)
    with contextlib.suppress(Exception):
        await specialist.page.click("#btn-hangup", timeout=5_000)
    up, up_first = continuity(specialist_samples)  # the clinic's audio, heard by the specialist
    down, down_first = continuity(clinic_samples)  # the specialist's audio, heard at the clinic
    result["connected"] = up_first is not None and down_first is not None
    if up_first is not None and down_first is not None:
        result["setup_ms"] = round(max(up_first, down_first) - accepted_at)
    both = [c for c in (up, down) if c is not None]
    result["audio_continuity"] = round(min(both), 3) if len(both) == 2 else 0.0
    result["audio_continuity_up"] = _round(up, 3)
    result["audio_continuity_down"] = _round(down, 3)
    result["audio_concealed_pct_up"] = _round(concealed_pct(specialist_samples), 2)
    result["video_fps"] = _round(video_fps(specialist_samples), 1)
    result["video_fps_down"] = _round(video_fps(clinic_samples), 1)
    result["switched_to_audio_only"] = any(s[5] for s in clinic_samples)
    result["clinic_levels"] = sorted({int(s[6]) for s in clinic_samples})
    result["specialist_levels"] = sorted({int(s[6]) for s in specialist_samples})
    result["goals"] = judge(result)


def summarise(name: str, calls: list[dict[str, Any]], link: dict[str, Any]) -> dict[str, Any]:
    """One profile over its calls: the worst setup and continuity, the mean frame rate; goals met by every call."""
    setups = [c["setup_ms"] for c in calls if c.get("setup_ms") is not None]
    fps = [c["video_fps"] for c in calls if c.get("video_fps") is not None]
    fps_down = [c["video_fps_down"] for c in calls if c.get("video_fps_down") is not None]
    precheck = calls[0]["precheck"] if calls else None
    goals = {k: bool(calls) and all(c["goals"].get(k) for c in calls) for k in (calls[0]["goals"] if calls else {})}
    return {
        "calls": len(calls),
        "connected": bool(calls) and all(c["connected"] for c in calls),
        "setup_ms": max(setups) if len(setups) == len(calls) and setups else None,
        "setup_ms_each": [c.get("setup_ms") for c in calls],
        "audio_continuity": min((c["audio_continuity"] for c in calls), default=None),
        "audio_continuity_up": _least(c.get("audio_continuity_up") for c in calls),
        "audio_continuity_down": _least(c.get("audio_continuity_down") for c in calls),
        "audio_concealed_pct_up": _most(c.get("audio_concealed_pct_up") for c in calls),
        "video_fps": round(sum(fps) / len(fps), 1) if fps else None,
        "video_fps_down": round(sum(fps_down) / len(fps_down), 1) if fps_down else None,
        "switched_to_audio_only": any(c.get("switched_to_audio_only") for c in calls),
        "goals": goals,
        "precheck_verdict": (precheck or {}).get("verdict"),
        "precheck": precheck,
        "link": link,
    }


def _least(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _most(values: Any) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def judge(r: dict[str, Any]) -> dict[str, bool]:
    name = r["profile"]
    goals = {"connected": bool(r["connected"]),
             "audio_continuity": (r.get("audio_continuity") or 0) >= CONTINUITY_GOAL.get(name, 0.8),
             "verdict": (r.get("precheck") or {}).get("verdict") == EXPECTED_VERDICT.get(name)}
    if name in SETUP_GOAL_MS:
        goals["setup_ms"] = r.get("setup_ms") is not None and r["setup_ms"] <= SETUP_GOAL_MS[name]
    return goals


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'profile':<9} {'call':>4} {'link':<26} {'conn':<5} {'setup ms':>8} {'audio up':>8} {'audio dn':>8} "
            f"{'fps up':>6} {'fps dn':>6} {'audio only':<10} {'pre-check':<24} goals")
    lines = [head, "-" * len(head)]
    for r in results:
        p = PROFILES[r["profile"]]
        link = ("unlimited" if not p.rate_kbps else
                f"{p.rate_kbps:g} kbit/s {2 * p.delay_ms:g} ms {p.loss_pct:g} %")
        pre = r.get("precheck") or {}
        failed = [k for k, ok in r["goals"].items() if not ok]
        lines.append(
            f"{r['profile']:<9} {r.get('call', 1):>4} {link:<26} {'yes' if r['connected'] else 'NO':<5} {_fmt(r.get('setup_ms')):>8} "
            f"{_fmt(r.get('audio_continuity_up')):>8} {_fmt(r.get('audio_continuity_down')):>8} "
            f"{_fmt(r.get('video_fps')):>6} {_fmt(r.get('video_fps_down')):>6} "
            f"{'yes' if r.get('switched_to_audio_only') else 'no':<10} "
            f"{(pre.get('verdict') or '-') + ' ' + (pre.get('up') or ''):<24} "
            f"{'met' if not failed else 'MISSED: ' + ', '.join(failed)}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="good,township,village,bad",
                        help="comma-separated link profiles, of: " + ", ".join(PROFILES))
    parser.add_argument("--seconds", type=float, default=40.0, help="how long each call runs")
    parser.add_argument("--calls", type=int, default=1,
                        help="calls in a row per profile (each judged; the summary keeps the worst setup)")
    parser.add_argument("--smoke", action="store_true",
                        help="one short call on the good profile: shows that it runs (exits 0 once it has run)")
    args = parser.parse_args()
    if args.smoke:
        args.profiles, args.seconds, args.calls = "good", 3.0, 1
    names = [n.strip() for n in args.profiles.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        parser.error(f"unknown profile(s): {', '.join(unknown)}")
    if not 1 <= args.calls <= 10:
        parser.error("--calls must be between 1 and 10")
    if len(names) > 6:
        parser.error("at most six profiles a run (the demo has six village clinics)")
    if not Path(CHROMIUM).exists():
        sys.exit("chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    results: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="telehealth-field-") as tmp:
        workdir = Path(tmp)
        coturn, turn_port, turn_secret = start_coturn(workdir)
        node = None
        try:
            node, base = await start_node(workdir, turn_port, turn_secret)
            async with async_playwright() as pw:
                for i, name in enumerate(names):
                    calls, link = await run_profile(pw, name, i, base, turn_port, workdir, args.seconds, args.calls)
                    results.extend(calls)
                    summary[name if name not in summary else f"{name}#{i + 1}"] = summarise(name, calls, link)
        finally:
            if node is not None:
                stop(node)
            stop(coturn)
    print(table(results))
    all_met = bool(summary) and all(all(p["goals"].values()) and p["calls"] == args.calls for p in summary.values())
    print(json.dumps({"seconds": args.seconds, "calls_per_profile": args.calls, "profiles": summary,
                      "all_goals_met": all_met, "smoke": args.smoke}))
    return 0 if all_met or args.smoke else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
