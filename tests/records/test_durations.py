"""Waiting, ringing and talking time derived from a hand-made event log."""

import datetime as dt

from telehealth.records.durations import derive_durations
from telehealth.records.models import CallSession, Event

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def ev(kind: str, seconds: float) -> Event:
    return Event(0, 1, None, kind, None, at(seconds), {})


def test_durations_from_events_and_sessions() -> None:
    events = [ev("requested", 0), ev("queued", 0), ev("offered", 10), ev("declined", 20), ev("requeued", 20),
              ev("offered", 50), ev("accepted", 65)]
    sessions = [CallSession(1, 1, 2, 3, at(66), at(67), at(127), "network"),
                CallSession(2, 1, 2, 3, at(130), at(131), at(431), "hangup"),
                CallSession(3, 1, 2, 3, at(440), None, at(450), "network")]
    d = derive_durations(events, sessions)
    assert d.waiting_s == 65
    assert d.ringing_s == 10 + 15
    assert d.talking_s == 60 + 300


def test_a_request_never_rung_or_accepted() -> None:
    d = derive_durations([ev("requested", 0), ev("queued", 0), ev("cancelled", 30)], [])
    assert d.waiting_s is None and d.ringing_s is None and d.talking_s == 0
