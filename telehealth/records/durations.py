"""Durations of a consultation derived from its event log and sessions: waiting, ringing, talking."""

from __future__ import annotations

from dataclasses import dataclass

from telehealth.records.models import CallSession, Event


@dataclass(frozen=True)
class Durations:
    waiting_s: float | None  # first queued -> accepted
    ringing_s: float | None  # time spent with at least one specialist being rung
    talking_s: float  # connected -> ended, summed over the sessions

    def as_dict(self) -> dict[str, float | None]:
        return {"waiting_s": self.waiting_s, "ringing_s": self.ringing_s, "talking_s": self.talking_s}


def derive_durations(events: list[Event], sessions: list[CallSession]) -> Durations:
    queued = next((e.at for e in events if e.kind in ("queued", "consent_recorded")), None)
    accepted = next((e.at for e in events if e.kind == "accepted"), None)
    waiting = (accepted - queued).total_seconds() if queued and accepted else None
    ringing = 0.0
    ring_started = None
    for e in events:
        if e.kind == "offered" and ring_started is None:
            ring_started = e.at
        elif e.kind in ("requeued", "accepted", "cancelled", "expired") and ring_started is not None:
            ringing += (e.at - ring_started).total_seconds()
            ring_started = None
    talking = sum((s.ended_at - s.connected_at).total_seconds() for s in sessions
                  if s.connected_at is not None and s.ended_at is not None)
    return Durations(waiting, ringing if any(e.kind == "offered" for e in events) else None, talking)
