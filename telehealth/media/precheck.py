"""The pre-call connection check: the clinic's browser (or the Python client) makes a WebRTC connection to
the server's own aiortc peer with the ICE servers of a real call, sends audio and video for a few seconds
and receives a test pattern back; the peer measures what arrived (upload bitrate, loss, jitter) and the
round trip, and the verdict says in plain words what the link can carry.

aiortc runs in worker processes of their own, never on the signaling event loop: `PrecheckService` (in the
server) hands each check to a worker over a queue and hears back the answer SDP, then the measurements.
The number of checks at once is capped; one more is refused with `busy` and how long to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from telehealth.errors import ErrorCode, TelehealthError

log = logging.getLogger("telehealth.precheck")

# What a link must carry, measured in each direction. A call steps video down to 320x240 at 15 frames a
# second on a weak link, which needs about 150 kbit/s; audio (Opus) holds from about 40 kbit/s.
VIDEO_MIN_KBPS = 150
AUDIO_MIN_KBPS = 40
# A call pauses video only past 10 % loss (web/static/js/adapt.js): the check recommends audio only a little
# before that, and never for the 3 % a village line loses at random.
VIDEO_MAX_LOSS_PCT = 8.0
AUDIO_MAX_LOSS_PCT = 15.0
VIDEO_MAX_RTT_MS = 400
AUDIO_MAX_RTT_MS = 1000
AUDIO_CLOCK = 48_000
# The downlink test sends video at a fixed rate, the lowest rung a call steps down to, rather than letting the
# encoder push as much as it likes: a probe that floods a weak link would measure its own queue (loss and
# delay it caused), not the link. A link that delivers this rate carries video towards the clinic.
DOWNLINK_VIDEO_BPS = 120_000
DOWNLINK_AUDIO_BPS = 32_000  # what a browser's Opus sends for speech
PROBE_DELIVERED_SHARE = 0.85
WARMUP_S = 1.5


@dataclass(frozen=True)
class Measurement:
    """One direction of the link, as the receiving side saw it."""

    kbps: float
    loss_pct: float
    jitter_ms: float | None
    rtt_ms: float | None
    video_frames: int
    audio_frames: int


def verdict(up: Measurement | None, down: Measurement | None, *, connected: bool, camera: bool = True,
            candidate_types: frozenset[str] = frozenset(), turn_configured: bool = False,
            probe_kbps: float | None = None) -> dict[str, str]:
    """`video_ok`, `audio_only` or `cannot_connect`, and the likely cause in plain words.

    The upload is the client's own congestion-controlled media, so its rate is what the link let through.
    The download is the server's probe at a fixed rate (`probe_kbps`, as sent): the link carries video
    towards the clinic when it delivered nearly all of it.
    """
    if not connected or up is None:
        if candidate_types and candidate_types <= {"host"}:
            cause = ("no_udp" if not turn_configured else "turn_unreachable")
        elif turn_configured and "relay" not in candidate_types:
            cause = "turn_unreachable"
        else:
            cause = "no_udp" if not candidate_types else "blocked"
        return {"verdict": "cannot_connect", "cause": cause}
    worst_loss = max(up.loss_pct, down.loss_pct if down else 0.0)
    slowest = min(up.kbps, down.kbps if down else up.kbps)
    if down is None:
        down_carries_video = True
    elif probe_kbps:
        down_carries_video = down.kbps >= PROBE_DELIVERED_SHARE * probe_kbps
    else:
        down_carries_video = down.kbps >= VIDEO_MIN_KBPS
    rtts = [r for r in (up.rtt_ms, down.rtt_ms if down else None) if r is not None]
    rtt = min(rtts) if rtts else 0.0
    carries_video = up.kbps >= VIDEO_MIN_KBPS and down_carries_video
    if carries_video and worst_loss <= VIDEO_MAX_LOSS_PCT and rtt <= VIDEO_MAX_RTT_MS and camera:
        return {"verdict": "video_ok", "cause": ""}
    if slowest >= AUDIO_MIN_KBPS and worst_loss <= AUDIO_MAX_LOSS_PCT and rtt <= AUDIO_MAX_RTT_MS:
        cause = "camera_blocked" if not camera else "slow_link" if not carries_video else \
            "packet_loss" if worst_loss > VIDEO_MAX_LOSS_PCT else "long_delay"
        return {"verdict": "audio_only", "cause": cause}
    cause = "packet_loss" if worst_loss > AUDIO_MAX_LOSS_PCT else "long_delay" if rtt > AUDIO_MAX_RTT_MS \
        else "slow_link"
    return {"verdict": "cannot_connect" if slowest < AUDIO_MIN_KBPS / 2 else "audio_only", "cause": cause}


# -- the worker side (runs in its own process) -----------------------------------------------------------


async def _run_check(job: dict[str, Any], send: Any) -> None:
    """Answer the offer, exchange media for `seconds`, report what arrived."""
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    from telehealth.media.tracks import PatternVideoTrack, ToneAudioTrack

    servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
               for s in job["ice_servers"]]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    frames = {"audio": 0, "video": 0}
    connected = asyncio.Event()
    consumers: list[asyncio.Task[None]] = []

    async def consume(track: Any) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                frames[track.kind] += 1

    @pc.on("track")  # type: ignore[untyped-decorator]
    def on_track(track: Any) -> None:
        consumers.append(asyncio.ensure_future(consume(track)))

    @pc.on("iceconnectionstatechange")  # type: ignore[untyped-decorator]
    def on_state() -> None:
        if pc.iceConnectionState in ("completed", "connected"):
            connected.set()

    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=job["sdp"], type="offer"))
        # The downlink test: a tone and a moving pattern at a modest size.
        pc.addTrack(ToneAudioTrack())
        pc.addTrack(PatternVideoTrack(320, 240))
        await pc.setLocalDescription(await pc.createAnswer())
        send(("answer", job["id"], pc.localDescription.sdp))
        try:
            await asyncio.wait_for(connected.wait(), job.get("connect_timeout", 15.0))
        except TimeoutError:
            send(("result", job["id"], {"connected": False, "ice_state": pc.iceConnectionState}))
            return
        # The first moments are the encoders' start (a key frame, the sender's bandwidth estimate ramping
        # up): measure the link after them. The round trip is the least seen over the check, the link's own
        # delay rather than the queue the test's media built in front of it.
        rtts: list[float] = []
        await _sample_rtt(pc, WARMUP_S, rtts)
        started = time.monotonic()
        first = await _snapshot(pc)
        await _sample_rtt(pc, job["seconds"], rtts)
        elapsed = time.monotonic() - started
        last = await _snapshot(pc)
        received = last["bytes_in"] - first["bytes_in"]
        got, lost = last["packets"] - first["packets"], max(0, last["lost"] - first["lost"])
        send(("result", job["id"], {
            "connected": True, "seconds": round(elapsed, 2), "up_kbps": round(received * 8 / elapsed / 1000, 1),
            "up_loss_pct": round(100 * lost / (got + lost), 2) if got + lost > 0 else 0.0,
            "up_jitter_ms": round(last["jitter_ms"], 1) if last["jitter_ms"] is not None else None,
            "rtt_ms": round(min(rtts), 1) if rtts else None,
            "down_sent_kbps": round((last["bytes_out"] - first["bytes_out"]) * 8 / elapsed / 1000, 1),
            "video_frames": frames["video"], "audio_frames": frames["audio"]}))
    finally:
        for task in consumers:
            task.cancel()
        await pc.close()


async def _snapshot(pc: Any) -> dict[str, Any]:
    """Bytes in and out over the transports, RTP packets received and lost, the audio's jitter."""
    out: dict[str, Any] = {"bytes_in": 0, "bytes_out": 0, "packets": 0, "lost": 0, "jitter_ms": None}
    for report in (await pc.getStats()).values():
        if report.type == "transport":
            out["bytes_in"] += report.bytesReceived
            out["bytes_out"] += report.bytesSent
        elif report.type == "inbound-rtp":
            out["packets"] += report.packetsReceived
            out["lost"] += max(0, report.packetsLost)
            if report.kind == "audio" and report.jitter is not None:
                out["jitter_ms"] = report.jitter / AUDIO_CLOCK * 1000
    return out


async def _sample_rtt(pc: Any, seconds: float, into: list[float]) -> None:
    """Wait `seconds`, noting the round trip the peer's receiver reports every half second."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(0.5, left))
        for report in (await pc.getStats()).values():
            if report.type == "remote-inbound-rtp" and report.roundTripTime is not None:
                into.append(report.roundTripTime * 1000)


def worker_main(jobs: Any, results: Any, per_worker: int, addresses: tuple[str, ...] = ()) -> None:
    """A worker process: up to `per_worker` checks at once on its own event loop."""
    if addresses:
        import aioice.ice

        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(addresses)
    # This process only runs checks: every VP8 encoder in it sends the probe's fixed rate, whatever the
    # receiver's bandwidth estimate says.
    import aiortc.codecs.vpx

    aiortc.codecs.vpx.DEFAULT_BITRATE = aiortc.codecs.vpx.MIN_BITRATE = DOWNLINK_VIDEO_BPS
    aiortc.codecs.vpx.MAX_BITRATE = DOWNLINK_VIDEO_BPS
    import aiortc.codecs.opus

    opus_init = aiortc.codecs.opus.OpusEncoder.__init__

    def speech_rate(self: Any) -> None:
        opus_init(self)
        self.codec.bit_rate = DOWNLINK_AUDIO_BPS

    aiortc.codecs.opus.OpusEncoder.__init__ = speech_rate  # type: ignore[method-assign]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(per_worker)
        running: set[asyncio.Task[None]] = set()

        async def one(job: dict[str, Any]) -> None:
            async with slots:
                try:
                    await _run_check(job, results.put)
                except Exception as exc:  # reported to the server, which tells the client
                    results.put(("error", job["id"], f"{type(exc).__name__}: {exc}"))

        while True:
            job = await loop.run_in_executor(None, jobs.get)
            if job is None:
                break
            task = asyncio.ensure_future(one(job))
            running.add(task)
            task.add_done_callback(running.discard)
        for task in list(running):
            task.cancel()

    asyncio.run(main())


# -- the server side ------------------------------------------------------------------------------------


@dataclass
class _Pending:
    answer: asyncio.Future[str]
    result: asyncio.Future[dict[str, Any]]
    started: float


class PrecheckService:
    """Worker processes for the checks, and the bookkeeping of the ones in flight on this node."""

    def __init__(self, workers: int = 1, per_worker: int = 2, seconds: float = 5.0,
                 addresses: tuple[str, ...] = ()) -> None:
        self.addresses = tuple(addresses)
        self.workers = max(1, workers)
        self.capacity = self.workers * max(1, per_worker)
        self.per_worker = max(1, per_worker)
        self.seconds = seconds
        self._ctx = multiprocessing.get_context("spawn")
        self._jobs: Any = None
        self._results: Any = None
        self._procs: list[Any] = []
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._reader: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        # Workers start with the first check: a node whose clinics never check spawns no processes.
        self.workers_started = False
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.workers_started = True
        self._loop = asyncio.get_running_loop()
        self._jobs = self._ctx.Queue()
        self._results = self._ctx.Queue()
        for _ in range(self.workers):
            proc = self._ctx.Process(target=worker_main, args=(self._jobs, self._results, self.per_worker,
                                                               self.addresses),
                                     daemon=True, name="telehealth-precheck")
            proc.start()
            self._procs.append(proc)
        self._reader = threading.Thread(target=self._read, name="precheck-results", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stopping:
            try:
                kind, job_id, value = self._results.get(timeout=0.5)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._deliver, kind, job_id, value)

    def _deliver(self, kind: str, job_id: str, value: Any) -> None:
        pending = self._pending.get(job_id)
        if pending is None:
            return
        if kind == "answer" and not pending.answer.done():
            pending.answer.set_result(value)
        elif kind == "result":
            if not pending.answer.done():
                pending.answer.set_exception(TelehealthError(ErrorCode.unavailable, "the check could not start"))
            if not pending.result.done():
                pending.result.set_result(value)
        elif kind == "error":
            error = TelehealthError(ErrorCode.unavailable, "the connection check failed on the server")
            log.warning("pre-call check %s failed in its worker: %s", job_id, value)
            for fut in (pending.answer, pending.result):
                if not fut.done():
                    fut.set_exception(error)

    @property
    def in_flight(self) -> int:
        return sum(1 for p in self._pending.values() if not p.result.done())

    def retry_after_s(self) -> int:
        """How long until a slot frees: the oldest check in flight ends first."""
        now = time.monotonic()
        running = [p.started for p in self._pending.values() if not p.result.done()]
        return max(1, int(self.seconds + 15 - (now - min(running)))) if running else 1

    async def begin(self, sdp: str, ice_servers: list[dict[str, Any]]) -> tuple[str, str]:
        """Hand an offer to a worker; (check id, answer SDP). Refuses with `busy` when all slots are taken."""
        if self._jobs is None:
            raise TelehealthError(ErrorCode.unavailable, "connection checks are not running on this node")
        if self.in_flight >= self.capacity:
            raise TelehealthError(ErrorCode.busy, "busy, retry in {seconds} s", seconds=self.retry_after_s())
        job_id = f"pc{next(self._ids)}"
        loop = asyncio.get_running_loop()
        pending = _Pending(loop.create_future(), loop.create_future(), time.monotonic())
        self._pending[job_id] = pending
        self._jobs.put({"id": job_id, "sdp": sdp, "ice_servers": ice_servers, "seconds": self.seconds})
        try:
            answer = await asyncio.wait_for(asyncio.shield(pending.answer), 20)
        except TimeoutError:
            self._pending.pop(job_id, None)
            raise TelehealthError(ErrorCode.unavailable, "the connection check did not start; try again") from None
        except TelehealthError:
            self._pending.pop(job_id, None)  # the worker could not use this offer
            raise TelehealthError(ErrorCode.invalid_input, "the offer could not be answered: send a WebRTC offer "
                                                           "with audio and video") from None
        return job_id, answer

    async def result(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        """The worker's measurements, waiting up to `timeout` s (None while still measuring)."""
        pending = self._pending.get(job_id)
        if pending is None:
            raise TelehealthError(ErrorCode.not_found, "no such connection check on this node")
        try:
            return await asyncio.wait_for(asyncio.shield(pending.result), timeout)
        except TimeoutError:
            return None

    def forget(self, job_id: str) -> None:
        self._pending.pop(job_id, None)

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self.tasks):
            task.cancel()
        if not self.workers_started:
            return
        for _ in self._procs:
            with contextlib.suppress(Exception):
                self._jobs.put(None)
        for proc in self._procs:
            await asyncio.get_running_loop().run_in_executor(None, proc.join, 5)
            if proc.is_alive():
                proc.kill()
        self._procs.clear()
