"""Connection checks: a clinic's browser tests its link against the server's own WebRTC peer before a call;
the verdict is kept per clinic, and administrators follow each clinic's network readiness."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from telehealth.domain import Role
from telehealth.errors import ErrorCode, TelehealthError
from telehealth.media.precheck import WARMUP_S, Measurement, PrecheckService, verdict
from telehealth.records.models import Organisation
from telehealth.schema import Items, Range, Text, require
from telehealth.signaling.ice import ice_servers

if TYPE_CHECKING:
    from telehealth.services.context import Actor, Services

log = logging.getLogger("telehealth.precheck")
MAX_SDP = 32 * 1024
CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")
# How long a report waits for the node that ran the check to write the server's side.
REPORT_GRACE_S = 30
# A check's TURN credential lasts its media time and this much more: the page fetches the configuration, gathers
# (a TURN allocation over a slow line), offers and waits for the worker's answer before media flows.
CHECK_SETUP_S = 60


@dataclass(frozen=True)
class OfferBody:
    sdp: Annotated[str, Text(1, MAX_SDP)]

    def validate(self) -> None:
        require(self.sdp.startswith("v=0"), "`sdp` must be an SDP offer (starting with v=0, at most {max} bytes)",
                field="sdp", max=MAX_SDP)


@dataclass(frozen=True)
class DownBody:
    kbps: Annotated[float, Range(0, 1e6)] = 0.0
    loss_pct: Annotated[float, Range(0, 100)] = 0.0
    jitter_ms: Annotated[float, Range(0, 1e6)] | None = None
    rtt_ms: Annotated[float, Range(0, 1e6)] | None = None
    video_frames: Annotated[int, Range(0)] = 0
    audio_frames: Annotated[int, Range(0)] = 0


@dataclass(frozen=True)
class ReportBody:
    connected: bool
    camera: bool = True
    candidate_types: Annotated[list[str], Items(16)] = field(default_factory=list)
    down: DownBody | None = None

    def validate(self) -> None:
        require(all(t in CANDIDATE_TYPES for t in self.candidate_types),
                "`candidate_types` are among {allowed}", field="candidate_types", allowed=", ".join(CANDIDATE_TYPES))


@dataclass(frozen=True)
class Started:
    id: str
    sdp: str
    seconds: float
    warmup_s: float


class Prechecks:
    def __init__(self, services: Services) -> None:
        self._s = services
        # The worker processes that run the server's peer; set by the app while it runs.
        self.media: PrecheckService | None = None

    def _clinic(self, actor: Actor) -> int:
        if actor.user.role is not Role.clinic_doctor or actor.user.organisation_id is None:
            raise TelehealthError(ErrorCode.forbidden, "a connection check belongs to a clinic")
        return actor.user.organisation_id

    def ice(self, actor: Actor) -> list[dict[str, Any]]:
        """The ICE servers of a real call, TURN included, for the check's own connection: the clinic doctor is a
        participant of that call with the server, and the credential lasts as long as a check may take."""
        self._clinic(actor)
        settings = self._s.settings
        return ice_servers(settings.ice, actor.id, self._s.clock(), ttl_s=int(settings.precheck.seconds) + CHECK_SETUP_S)

    async def begin(self, actor: Actor, body: OfferBody) -> Started:
        org_id = self._clinic(actor)
        media = self.media
        if media is None:
            raise TelehealthError(ErrorCode.unavailable, "connection checks are not running on this server")
        seconds = self._s.settings.precheck.seconds
        if not media.workers_started:
            media.start()
        job_id, answer = await media.begin(body.sdp, self.ice(actor))
        check_id = uuid.uuid4().hex
        store = self._s.store
        await store.insert_precheck(check_id, org_id, actor.id, self._s.now())

        async def keep_uplink() -> None:
            try:
                result = await media.result(job_id, seconds + 40)
                await store.set_precheck_uplink(check_id, result or {"connected": False, "ice_state": "timeout"})
            except Exception:
                log.warning("could not keep the uplink figures of check %s", check_id, exc_info=True)
            finally:
                media.forget(job_id)

        task = asyncio.get_running_loop().create_task(keep_uplink())
        media.tasks.add(task)
        task.add_done_callback(media.tasks.discard)
        return Started(check_id, answer, seconds, WARMUP_S)

    async def report(self, actor: Actor, check_id: str, body: ReportBody) -> dict[str, Any]:
        """The clinic's side of a check: the verdict from both directions, kept and audited."""
        org_id = self._clinic(actor)
        store = self._s.store
        check = await store.get_precheck(check_id[:64])
        if check is None or check["org_id"] != org_id:
            raise TelehealthError(ErrorCode.not_found, "no such connection check for your clinic")
        if check["finished_at"] is not None:
            raise TelehealthError(ErrorCode.conflict, "this check has been reported already")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._s.settings.precheck.seconds + REPORT_GRACE_S
        while check is not None and check["uplink"] is None and body.connected:
            if loop.time() > deadline:
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
                          turn_configured=bool(self._s.settings.ice.turn_urls),
                          probe_kbps=uplink.get("down_sent_kbps"))
        downlink = {**(asdict(body.down) if body.down else {}), "camera": body.camera,
                    "candidate_types": sorted(set(body.candidate_types)), "connected": body.connected}
        async with self._s.unit(actor) as unit:
            await store.finish_precheck(check_id, downlink=downlink, verdict=outcome["verdict"],
                                        cause=outcome["cause"], now=unit.now)
            unit.audit("precheck.report", f"organisation:{org_id}", {"verdict": outcome["verdict"]})
        return {**outcome, "up": asdict(up) if up else None, "down": asdict(down) if down else None,
                "probe_kbps": uplink.get("down_sent_kbps")}

    async def network(self, actor: Actor) -> tuple[list[Organisation], dict[int, list[dict[str, Any]]]]:
        """Each grassroots institution the administrator manages, with its checks, newest first."""
        _, managed = await self._s.accounts.managed_organisations(actor)
        orgs = {i: o for i, o in managed.items() if not o.level.is_hospital}
        checks = await self._s.store.list_prechecks(org_ids=list(orgs), limit=500)
        by_org: dict[int, list[dict[str, Any]]] = {}
        for check in checks:
            by_org.setdefault(check["org_id"], []).append(check)
        await self._s.audit(actor, "admin.network", "prechecks", {"results": len(checks)})
        return sorted(orgs.values(), key=lambda o: (o.level.value, o.name)), by_org
