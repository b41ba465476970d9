"""The pre-call connection check over HTTP: the clinic's browser (or the Python client) sends an offer, the
server's own WebRTC peer (in a worker process) answers and exchanges media for a few seconds, the client
reports what it received, and the verdict is returned and kept per clinic.

    GET  /api/precheck/config        ICE servers (those of a real call, TURN included) and the duration
    POST /api/precheck               {"sdp"}: the offer, with its candidates -> {"id", "sdp", "seconds", "warmup_s"}
    POST /api/precheck/{id}/report   the client's side -> {"verdict", "cause", "up", "down"}
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.media.precheck import WARMUP_S, Measurement, PrecheckService, verdict
from telehealth.server import keys
from telehealth.server.admin_pages import admin_scope
from telehealth.server.api import audit, read_json
from telehealth.server.auth import allow, current_user, page
from telehealth.server.pages import render
from telehealth.signaling.ice import ice_servers
from telehealth.signaling.messages import parse_body, require

log = logging.getLogger("telehealth.precheck")
MAX_SDP = 32 * 1024
CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")


@dataclass(frozen=True)
class OfferBody:
    sdp: str

    def validate(self) -> None:
        require(0 < len(self.sdp) <= MAX_SDP and self.sdp.startswith("v=0"),
                f"`sdp` must be an SDP offer (starting with v=0, at most {MAX_SDP} bytes)")


@dataclass(frozen=True)
class DownBody:
    kbps: float = 0.0
    loss_pct: float = 0.0
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    video_frames: int = 0
    audio_frames: int = 0

    def validate(self) -> None:
        require(0 <= self.kbps <= 1e6 and 0 <= self.loss_pct <= 100, "`down` figures are out of range")
        require(self.video_frames >= 0 and self.audio_frames >= 0, "frame counts cannot be negative")


@dataclass(frozen=True)
class ReportBody:
    connected: bool
    camera: bool = True
    candidate_types: list[str] = field(default_factory=list)
    down: DownBody | None = None

    def validate(self) -> None:
        require(all(t in CANDIDATE_TYPES for t in self.candidate_types),
                f"`candidate_types` are among {', '.join(CANDIDATE_TYPES)}")


async def precheck_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS].precheck
    app[keys.PRECHECK] = PrecheckService(settings.workers, settings.per_worker, settings.seconds,
                                         settings.addresses)
    yield
    await app[keys.PRECHECK].stop()


def _clinic(request: web.Request) -> int:
    user = current_user(request)
    if user.organisation_id is None:
        raise TelehealthError(ErrorCode.forbidden, "a connection check belongs to a clinic")
    return user.organisation_id


@allow(Role.clinic_doctor)
async def handle_config(request: web.Request) -> web.StreamResponse:
    settings = request.app[keys.SETTINGS]
    servers = ice_servers(settings.ice, current_user(request).id, dt.datetime.now(dt.UTC).timestamp())
    return web.json_response({"ice_servers": servers, "seconds": settings.precheck.seconds,
                              "turn_configured": bool(settings.ice.turn_urls)})


@allow(Role.clinic_doctor)
async def handle_begin(request: web.Request) -> web.StreamResponse:
    org_id = _clinic(request)
    body = parse_body(OfferBody, await read_json(request))
    app = request.app
    service = app[keys.PRECHECK]
    settings = app[keys.SETTINGS]
    user = current_user(request)
    servers = ice_servers(settings.ice, user.id, dt.datetime.now(dt.UTC).timestamp())
    if not service.workers_started:
        service.start()
    job_id, answer = await service.begin(body.sdp, servers)
    check_id = uuid.uuid4().hex
    store = app[keys.STORE]
    await store.insert_precheck(check_id, org_id, user.id, dt.datetime.now(dt.UTC))

    async def keep_uplink() -> None:
        try:
            result = await service.result(job_id, settings.precheck.seconds + 40)
            await store.set_precheck_uplink(check_id, result or {"connected": False, "ice_state": "timeout"})
        except Exception:
            log.warning("could not keep the uplink figures of check %s", check_id, exc_info=True)
        finally:
            service.forget(job_id)

    task = asyncio.get_running_loop().create_task(keep_uplink())
    service.tasks.add(task)
    task.add_done_callback(service.tasks.discard)
    return web.json_response({"id": check_id, "sdp": answer, "seconds": settings.precheck.seconds,
                              "warmup_s": WARMUP_S}, status=201)


@allow(Role.clinic_doctor)
async def handle_report(request: web.Request) -> web.StreamResponse:
    org_id = _clinic(request)
    check_id = request.match_info["check_id"]
    body = parse_body(ReportBody, await read_json(request))
    store = request.app[keys.STORE]
    check = await store.get_precheck(check_id)
    if check is None or check["org_id"] != org_id:
        raise TelehealthError(ErrorCode.not_found, "no such connection check for your clinic")
    if check["finished_at"] is not None:
        raise TelehealthError(ErrorCode.conflict, "this check has been reported already")
    deadline = asyncio.get_running_loop().time() + request.app[keys.SETTINGS].precheck.seconds + 30
    while check is not None and check["uplink"] is None and body.connected:
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.25)  # the node that ran the check writes the server's side when it ends
        check = await store.get_precheck(check_id)
    uplink = (check or {}).get("uplink") or {}
    up = Measurement(uplink.get("up_kbps", 0.0), uplink.get("up_loss_pct", 0.0), uplink.get("up_jitter_ms"),
                     uplink.get("rtt_ms"), uplink.get("video_frames", 0), uplink.get("audio_frames", 0)) \
        if uplink.get("connected") else None
    down = Measurement(body.down.kbps, body.down.loss_pct, body.down.jitter_ms, body.down.rtt_ms,
                       body.down.video_frames, body.down.audio_frames) if body.down else None
    outcome = verdict(up, down, connected=body.connected and up is not None, camera=body.camera,
                      candidate_types=frozenset(body.candidate_types),
                      turn_configured=bool(request.app[keys.SETTINGS].ice.turn_urls),
                      probe_kbps=uplink.get("down_sent_kbps"))
    downlink = {**(asdict(body.down) if body.down else {}), "camera": body.camera,
                "candidate_types": sorted(set(body.candidate_types)), "connected": body.connected}
    await store.finish_precheck(check_id, downlink=downlink, verdict=outcome["verdict"], cause=outcome["cause"],
                                now=dt.datetime.now(dt.UTC))
    await audit(request, "precheck.report", f"organisation:{org_id}", {"verdict": outcome["verdict"]})
    return web.json_response({**outcome, "up": asdict(up) if up else None, "down": asdict(down) if down else None,
                              "probe_kbps": uplink.get("down_sent_kbps")})


@page(Role.clinic_doctor)
async def handle_precheck_page(request: web.Request) -> web.StreamResponse:
    return render(request, "clinic/precheck.html")


@page(Role.admin)
async def handle_network_page(request: web.Request) -> web.StreamResponse:
    """Each clinic's network readiness over time: its connection checks, newest first."""
    alliance = await admin_scope(request, current_user(request))
    store = request.app[keys.STORE]
    orgs = {o.id: o for o in await store.list_organisations(alliance) if not o.level.is_hospital}
    checks = await store.list_prechecks(org_ids=list(orgs), limit=500)
    by_org: dict[int, list[dict[str, Any]]] = {}
    for check in checks:
        by_org.setdefault(check["org_id"], []).append(check)
    await audit(request, "admin.network", "prechecks", {"results": len(checks)})
    return render(request, "admin/network.html", {
        "clinics": sorted(orgs.values(), key=lambda o: (o.level.value, o.name)), "by_org": by_org})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/clinic/precheck", handle_precheck_page)
    app.router.add_get("/admin/network", handle_network_page)
    app.router.add_get("/api/precheck/config", handle_config)
    app.router.add_post("/api/precheck", handle_begin)
    app.router.add_post("/api/precheck/{check_id}/report", handle_report)
