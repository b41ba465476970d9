"""The booked consultations' figures apart from on-demand ones, on a small data set worked out by hand, and
through the statistics API after a real booking."""

from __future__ import annotations

import datetime as dt

from telehealth.domain import OrgLevel, Urgency
from telehealth.records.models import Appointment, CallSession
from telehealth.records.stats import StatsInput, compute
from tests.records.test_stats import SLA, TZ, Log, S, consultation, local, org


def appointment(aid: int, cid: int, created: dt.datetime, starts: dt.datetime, status: str) -> Appointment:
    return Appointment(aid, cid, 10, 1, "cardiology", 100, starts, 30, None, None, status, "", created, None, None,
                       None, None, 0, 200, created, created, 1)


def session(sid: int, cid: int, started: dt.datetime) -> CallSession:
    return CallSession(sid, cid, 200, 100, started, started, started + dt.timedelta(minutes=20), "hangup")


def test_lead_time_punctuality_and_no_shows_are_counted_apart_from_on_demand() -> None:
    log = Log()
    # c4 was missed twice: booked again after the first no-show, missed again.
    log.add(4, "no_show", local(5, 12, 15))
    log.add(4, "no_show", local(6, 12, 15))
    data = StatsInput(
        start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1), tz=TZ, sla_s=SLA,
        consultations=[consultation(1, 10, "cardiology", Urgency.urgent, S.closed, local(2, 8)),
                       consultation(2, 10, "cardiology", Urgency.routine, S.ended, local(2, 9)),
                       consultation(3, 10, "cardiology", Urgency.routine, S.ended, local(2, 9)),
                       consultation(4, 10, "cardiology", Urgency.routine, S.requested, local(2, 12))],
        events=log.events,
        # c2's call began 2 minutes after its time (on time), c3's 10 minutes after (late).
        sessions=[session(1, 2, local(3, 10, 2)), session(2, 3, local(4, 9, 10))],
        organisations=[org(1, OrgLevel.city_hospital, 1, "Hospital", leads=True),
                       org(10, OrgLevel.village_clinic, 1, "Clinic")],
        users=[], scope_org_ids={1, 10},
        appointments=[appointment(1, 2, local(2, 9), local(3, 10), "held"),  # 25 h ahead
                      appointment(2, 3, local(2, 9), local(4, 9), "held"),  # 48 h ahead
                      appointment(3, 4, local(2, 12), local(6, 12), "no_show")])  # 96 h ahead (the last time)
    booked = compute(data)["booked"]
    assert booked == {
        "on_demand": 1, "booked": 3, "by_status": {"held": 2, "no_show": 1},
        # Lead times 90,000, 172,800 and 345,600 s: nearest rank 2 of 3 and 3 of 3.
        "lead_time_p50_s": 172800.0, "lead_time_p90_s": 345600.0,
        "held": 2, "started_on_time": 1, "on_time_share": 0.5, "start_offset_p50_s": 120.0, "on_time_s": 300.0,
        # Two missed times against two held calls.
        "no_shows": 2, "no_show_share": 0.5,
    }


def test_without_bookings_every_consultation_is_on_demand() -> None:
    data = StatsInput(
        start=dt.date(2026, 11, 1), end=dt.date(2026, 12, 1), tz=TZ, sla_s=SLA,
        consultations=[consultation(1, 10, "cardiology", Urgency.urgent, S.closed, local(2, 8))], events=[],
        sessions=[], organisations=[org(10, OrgLevel.village_clinic, 1, "Clinic")], users=[], scope_org_ids={10})
    booked = compute(data)["booked"]
    assert (booked["on_demand"], booked["booked"], booked["lead_time_p50_s"], booked["on_time_share"],
            booked["no_show_share"]) == (1, 0, None, None, None)
