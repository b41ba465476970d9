"""A real WebRTC call from Python (aiortc): joins a session, negotiates through the server, counts frames."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

from telehealth.media.client import ProtocolError, TelehealthClient
from telehealth.media.tracks import PatternVideoTrack, ToneAudioTrack

log = logging.getLogger("telehealth.media")

# An answerer whose peer is in the call but whose offer has not come asks for one (`restart_request`) after
# this many seconds, up to OFFER_ASKS times: a kept offer can be lost with a broker restart.
OFFER_WAIT_S = 5.0
OFFER_ASKS = 3


class CallPeer:
    """One participant's side of a call. The clinic offers; the specialist answers.

    aiortc has no ICE restart: when the path must change, the offerer starts a fresh peer connection
    and a new offer (marked `ice_restart`), and the answerer replaces its connection on receiving it.
    A dropped WebSocket alone changes nothing: media keeps flowing peer to peer while `resume` rejoins.
    """

    def __init__(self, client: TelehealthClient, consultation_id: int, *, force_relay: bool = False,
                 width: int = 320, height: int = 240, offer_wait_s: float = OFFER_WAIT_S) -> None:
        self.offer_wait_s = offer_wait_s
        self._offer_watch: asyncio.Task[None] | None = None
        self._offered_on: RTCPeerConnection | None = None  # the connection an offer was made on
        self.client = client
        self.consultation_id = consultation_id
        self.force_relay = force_relay
        self.width = width
        self.height = height
        self.session_id: int | None = None
        self.role = ""
        self.ice_servers: list[dict[str, Any]] = []
        self.pc: RTCPeerConnection | None = None
        self.frames: dict[str, int] = {"audio": 0, "video": 0}
        self.first_frame_at: dict[str, float] = {}
        self.connected_at: float | None = None
        self.ended: dict[str, Any] | None = None
        self._events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._early: list[tuple[str, dict[str, Any]]] = []  # events before the join returned
        self._seen: set[str] = set()  # ids of signals handled (one may come both kept and sent)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._frame_seen = asyncio.Event()
        client.listeners.append(self._on_event)

    def _on_event(self, name: str, data: dict[str, Any]) -> None:
        if name not in ("signal", "peer_joined", "session_ended"):
            return
        if self.session_id is None:
            if len(self._early) < 500:
                self._early.append((name, data))
        elif data.get("session_id") == self.session_id:
            self._events.put_nowait((name, data))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- joining and negotiation ----------------------------------------------------------------

    async def join(self) -> dict[str, Any]:
        joined = await self.client.call("session.join", consultation_id=self.consultation_id, fresh=True)
        self.session_id = int(joined["session_id"])
        self.role = str(joined["role"])
        self.ice_servers = list(joined["ice_servers"])
        if self.pc is None:
            self._new_peer_connection()
        # What the other side sent before this join: kept for it by the server, or sent while it was on its way.
        for data in joined.get("signals") or []:
            self._events.put_nowait(("signal", data))
        for name, data in self._early:
            if data.get("session_id") == self.session_id:
                self._events.put_nowait((name, data))
        self._early.clear()
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._signal_loop(), name="call-signal-loop")
        if self.role == "offerer" and (joined["peer_present"] or joined.get("peer_expected")):
            await self._offer(restart=False)
        if self.role == "answerer" and joined["peer_present"]:
            self._expect_offer()
        return joined

    def _expect_offer(self) -> None:
        if self._offer_watch is not None:
            self._offer_watch.cancel()
        self._offer_watch = asyncio.create_task(self._watch_for_offer(self.pc), name="call-offer-watch")
        self._tasks.add(self._offer_watch)
        self._offer_watch.add_done_callback(self._tasks.discard)

    async def _watch_for_offer(self, pc: RTCPeerConnection | None) -> None:
        for _ in range(OFFER_ASKS):
            await asyncio.sleep(self.offer_wait_s)
            if self.ended or pc is None or self.pc is not pc or pc.remoteDescription is not None:
                return
            log.info("call %s: no offer yet; asking for one", self.session_id)
            with contextlib.suppress(ProtocolError, asyncio.TimeoutError, ConnectionError):
                await self.client.call("session.signal", session_id=self.session_id, kind="restart_request",
                                       payload={})

    async def resume(self) -> dict[str, Any]:
        """After the WebSocket came back: join again; the media path did not change, so no renegotiation."""
        return await self.client.call("session.join", consultation_id=self.consultation_id, fresh=False)

    def _configuration(self) -> RTCConfiguration:
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                   for s in self.ice_servers]
        policy = RTCIceTransportPolicy.RELAY if self.force_relay else RTCIceTransportPolicy.ALL
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)

    def _new_peer_connection(self) -> RTCPeerConnection:
        if self.pc is not None:
            self._spawn(self.pc.close())
        pc = RTCPeerConnection(self._configuration())
        self.pc = pc
        pc.addTrack(ToneAudioTrack())
        pc.addTrack(PatternVideoTrack(self.width, self.height))

        @pc.on("track")  # type: ignore[untyped-decorator]
        def on_track(track: MediaStreamTrack) -> None:
            self._spawn(self._consume(track))

        @pc.on("iceconnectionstatechange")  # type: ignore[untyped-decorator]
        async def on_ice_state() -> None:
            state = pc.iceConnectionState
            if state == "completed" and self.connected_at is None:
                self.connected_at = time.monotonic()
            if self.session_id is not None and self.client.connected:
                with contextlib.suppress(ProtocolError, asyncio.TimeoutError, ConnectionError):
                    await self.client.call("session.ice_state", session_id=self.session_id,
                                           state="connected" if state == "completed" else state)

        return pc

    async def _offer(self, restart: bool) -> None:
        if restart:
            self._new_peer_connection()
        assert self.pc is not None and self.session_id is not None
        # Noted before the first await: a peer_joined handled meanwhile must not offer a second time.
        self._offered_on = self.pc
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.client.call("session.signal", session_id=self.session_id, kind="offer",
                               payload={"sdp": self.pc.localDescription.sdp, "ice_restart": restart})

    async def _signal_loop(self) -> None:
        while True:
            name, data = await self._events.get()
            try:
                await self._handle(name, data)
            except (TimeoutError, ProtocolError, ConnectionError) as exc:
                log.warning("call %s: could not handle %s: %s", self.session_id, name, exc)

    async def _handle(self, name: str, data: dict[str, Any]) -> None:
        if name == "session_ended":
            self.ended = data
            return
        if name == "peer_joined":
            if self.role != "offerer":
                self._expect_offer()
                return
            if data.get("fresh", True):
                # The other side has a new peer connection (a reload): start over with one of ours. On its
                # first join it got our offer, if we had made one, with its join.
                assert self.pc is not None
                if data.get("resumed") or self.pc.remoteDescription is not None:
                    await self._offer(restart=True)
                elif self._offered_on is not self.pc:
                    await self._offer(restart=False)
            elif self._path_broken():
                await self._offer(restart=True)
            return
        kind, payload = data["kind"], data.get("payload") or {}
        if data.get("id"):
            if data["id"] in self._seen:
                return
            self._seen.add(data["id"])
        if kind == "offer":
            if payload.get("ice_restart") or (self.pc is not None and self.pc.remoteDescription is not None):
                self._new_peer_connection()
            assert self.pc is not None and self.session_id is not None
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=payload["sdp"], type="offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.client.call("session.signal", session_id=self.session_id, kind="answer",
                                   payload={"sdp": self.pc.localDescription.sdp})
        elif kind == "answer" and self.pc is not None:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=payload["sdp"], type="answer"))
        elif kind == "candidate" and self.pc is not None and payload.get("candidate"):
            # Browsers trickle; aiortc puts its own candidates in the SDP.
            line = str(payload["candidate"])
            candidate = candidate_from_sdp(line.split(":", 1)[1] if line.startswith("candidate:") else line)
            candidate.sdpMid = payload.get("sdpMid")
            candidate.sdpMLineIndex = payload.get("sdpMLineIndex")
            await self.pc.addIceCandidate(candidate)
        elif kind == "restart_request" and self.role == "offerer":
            await self._offer(restart=True)

    def _path_broken(self) -> bool:
        return self.pc is None or self.pc.iceConnectionState in ("failed", "closed", "disconnected")

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.frames[track.kind] += 1
            self.first_frame_at.setdefault(track.kind, time.monotonic())
            self._frame_seen.set()

    # -- observing and ending -------------------------------------------------------------------

    async def wait_frames(self, kind: str, count: int, timeout: float = 20.0) -> int:
        async def wait() -> int:
            while self.frames[kind] < count:
                self._frame_seen.clear()
                await self._frame_seen.wait()
            return self.frames[kind]

        return await asyncio.wait_for(wait(), timeout)

    def relayed(self) -> bool:
        """Whether the selected ICE pair goes through a TURN relay (on either side)."""
        if self.pc is None:
            return False
        for transceiver in self.pc.getTransceivers():
            ice = transceiver.receiver.transport.transport
            pair = ice._connection._nominated.get(1)  # aioice keeps the selected pair per component
            if pair is not None:
                return "relay" in (pair.local_candidate.type, pair.remote_candidate.type)
        return False

    async def hangup(self) -> None:
        if self.session_id is not None:
            with contextlib.suppress(ProtocolError):
                await self.client.call("session.hangup", session_id=self.session_id)
        await self.close()

    async def close(self) -> None:
        if self._on_event in self.client.listeners:
            self.client.listeners.remove(self._on_event)
        if self._loop_task is not None:
            self._loop_task.cancel()
        if self.pc is not None:
            await self.pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
