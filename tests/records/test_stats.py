"""Policy statistics on a small data set whose every figure was worked out by hand (see the comments),
then the same through the HTTP edge on the store: period, alliance scope, bad input."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient

from telehealth.domain import ConsultationState, OrgLevel, Role, Title, Urgency
from telehealth.records.models import (
    Agreement,
    Alliance,
    CallSession,
    Consultation,
    DutyDay,
    Event,
    NewConsultation,
    Organisation,
    SlotDay,
    User,
)
from telehealth.records.quota import SharePolicy
from telehealth.records.stats import StatsInput, compute, percentile
from telehealth.server import keys
from tests.conftest import login

TZ = ZoneInfo("Asia/Shanghai")
SLA = {"emergency": 600.0, "urgent": 3600.0, "routine": 14400.0}
S = ConsultationState


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    """A November 2026 local time in Shanghai, as UTC."""
    return dt.datetime(2026, 11, day, hour, minute, second, tzinfo=TZ).astimezone(dt.UTC)


def org(oid: int, level: OrgLevel, alliance: int | None, name: str, *, leads: bool = False) -> Organisation:
    return Organisation(oid, name, "", level, alliance, leads, False, None, "")


def user(uid: int, org_id: int, title: Title | None, role: Role = Role.specialist) -> User:
    return User(uid, f"u{uid}", f"User {uid}", role, org_id, title, ("cardiology",), "en", False, True)


def consultation(cid: int, clinic: int, specialty: str, urgency: Urgency, state: ConsultationState,
                 created: dt.datetime) -> Consultation:
    return Consultation(cid, cid, clinic, 200, 200, specialty, urgency, False, None, None, False, state, None, 1,
                        created, created, None, None, created, created)


class Log:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, cid: int, kind: str, at: dt.datetime, **data: object) -> None:
        self.events.append(Event(len(self.events) + 1, cid, None, kind, None, at, dict(data)))


def dataset() -> StatsInput:
    # The alliance's lead, an outside hospital, a member hospital, a village clinic and two health centres.
    H, P, M, A, B, C = 1, 2, 3, 10, 11, 12
    orgs = [org(H, OrgLevel.city_hospital, 1, "Hospital", leads=True), org(P, OrgLevel.county_hospital, None, "Outside"),
            org(M, OrgLevel.county_hospital, 1, "Member"),
            org(A, OrgLevel.village_clinic, 1, "Clinic A"), org(B, OrgLevel.township_centre, 1, "Centre B"),
            org(C, OrgLevel.township_centre, 1, "Centre C")]
    users = [user(100, H, Title.attending), user(101, H, Title.resident), user(102, P, Title.chief),
             user(201, B, Title.resident, Role.clinic_doctor)]
    log = Log()
    cs = [
        consultation(1, A, "cardiology", Urgency.urgent, S.closed, local(2, 9)),
        consultation(2, A, "cardiology", Urgency.urgent, S.signed, local(3, 10)),
        consultation(3, B, "neurology", Urgency.emergency, S.ended, local(3, 23, 30)),  # still the 3rd locally
        consultation(4, B, "cardiology", Urgency.urgent, S.expired, local(9, 8)),
        consultation(5, A, "neurology", Urgency.routine, S.cancelled, local(10, 12)),
        consultation(6, A, "cardiology", Urgency.urgent, S.closed, local(10, 14)),
        consultation(7, B, "cardiology", Urgency.routine, S.queued, local(12, 9)),
    ]
    # c1: declined by the resident (needs a senior), accepted after 120 s.
    log.add(1, "queued", local(2, 9))
    log.add(1, "offered", local(2, 9, 0, 10), specialists=[101])
    log.add(1, "declined", local(2, 9, 0, 30), specialist=101, reason="needs_senior")
    log.add(1, "offered", local(2, 9, 0, 40), specialists=[100])
    log.add(1, "accepted", local(2, 9, 2))
    log.add(2, "queued", local(3, 10))
    log.add(2, "accepted", local(3, 10, 10))  # 600 s
    log.add(3, "queued", local(3, 23, 30))
    log.add(3, "accepted", local(3, 23, 35))  # 300 s
    # c4: declined (busy), a ring ran out, then the service level expired.
    log.add(4, "queued", local(9, 8))
    log.add(4, "declined", local(9, 8, 1), specialist=100, reason="busy_with_patient")
    log.add(4, "ring_timeout", local(9, 8, 3), specialist=101)
    log.add(4, "expired", local(9, 9), reason="sla")
    log.add(5, "queued", local(10, 12))
    log.add(5, "cancelled", local(10, 12, 5))
    log.add(6, "queued", local(10, 14))
    log.add(6, "declined", local(10, 14, 1), specialist=101, reason="outside_specialty")
    log.add(6, "accepted", local(10, 15, 6, 40))  # 4000 s: beyond the urgent service level of 3600 s
    log.add(7, "queued", local(12, 9))
    sessions = [
        CallSession(1, 1, 200, 100, local(2, 9, 3), local(2, 9, 3), local(2, 9, 20), "hangup"),
        CallSession(2, 2, 200, 100, local(3, 10, 11), local(3, 10, 11), local(3, 10, 15), "network"),
        CallSession(3, 2, 200, 100, local(3, 10, 16), local(3, 10, 16), local(3, 10, 30), "hangup"),
        CallSession(4, 3, 200, 100, local(3, 23, 36), local(3, 23, 36), local(3, 23, 50), "network"),
        CallSession(5, 6, 200, 100, local(10, 15, 7), local(10, 15, 7), local(10, 15, 30), "hangup"),
    ]
    slot_days = [SlotDay(H, "cardiology", dt.date(2026, 11, 4), 10, 2, 1, 1),
                 SlotDay(H, "cardiology", dt.date(2026, 11, 5), 8, 2, 2, 0),
                 SlotDay(H, "neurology", dt.date(2026, 11, 4), 10, 1, 0, 0),
                 SlotDay(M, "cardiology", dt.date(2026, 11, 4), 10, 1, 0, 0)]
    d = dt.date
    presence = [(100, d(2026, 11, 2)), (100, d(2026, 11, 3)), (100, d(2026, 11, 7)), (100, d(2026, 11, 10)),
                (101, d(2026, 11, 4)), (101, d(2026, 11, 5)),
                (102, d(2026, 11, 5)), (102, d(2026, 11, 6)), (102, d(2026, 11, 11)), (102, d(2026, 11, 12))]
    duty = [DutyDay(1, 100, B, d(2026, 11, 4)), DutyDay(2, 100, B, d(2026, 11, 5)),
            DutyDay(3, 201, B, d(2026, 11, 6)), DutyDay(4, 100, B, d(2026, 11, 8)),
            DutyDay(5, 100, C, d(2026, 11, 2)), DutyDay(6, 100, C, d(2026, 11, 3)), DutyDay(7, 100, C, d(2026, 11, 4)),
            DutyDay(8, 102, C, d(2026, 11, 12)), DutyDay(9, 100, A, d(2026, 11, 2))]
    agreements = [Agreement(1, A, P, dt.datetime(2026, 11, 6, tzinfo=TZ).astimezone(dt.UTC), None, None)]
    return StatsInput(start=d(2026, 11, 2), end=d(2026, 11, 16), tz=TZ, sla_s=SLA, consultations=cs,
                      events=log.events, sessions=sessions, organisations=orgs, users=users, agreements=agreements,
                      duty_days=duty, presence_days=presence, slot_days=slot_days, scope_org_ids={1, 3, 10, 11, 12},
                      alliances=[Alliance(1, "Group", "", "city_group", "", member_share_pct=10)])


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 50) is None
    assert percentile([4000, 120, 600], 50) == 600 and percentile([120, 600, 4000], 90) == 4000
    assert percentile(list(range(1, 11)), 90) == 9 and percentile(list(range(1, 11)), 91) == 10


def test_volume_by_day_week_clinic_specialty_and_urgency() -> None:
    v = compute(dataset())["volume"]
    assert v["total"] == 7
    per_day = {row["date"]: row["total"] for row in v["by_day"]}
    assert len(per_day) == 14 and per_day["2026-11-03"] == 2 and per_day["2026-11-04"] == 0
    assert {k: n for k, n in per_day.items() if n} == {"2026-11-02": 1, "2026-11-03": 2, "2026-11-09": 1,
                                                         "2026-11-10": 2, "2026-11-12": 1}
    w45, w46 = v["by_week"]
    assert (w45["week"], w45["total"], w45["by_urgency"]) == ("2026-W45", 3, {"emergency": 1, "urgent": 2})
    assert (w46["week"], w46["total"], w46["by_urgency"]) == ("2026-W46", 4, {"routine": 2, "urgent": 2})
    assert w45["by_clinic"] == {"10": 2, "11": 1} and w46["by_specialty"] == {"cardiology": 3, "neurology": 1}
    assert [(c["org_id"], c["count"]) for c in v["by_clinic"]] == [(10, 4), (11, 3)]
    assert v["by_specialty"] == {"cardiology": 5, "neurology": 2}
    assert v["by_urgency"] == {"emergency": 1, "urgent": 4, "routine": 2}


def test_waiting_percentiles_and_the_service_level() -> None:
    w = compute(dataset())["waiting"]
    # Urgent: answered after 120, 600 and 4000 s; one expired. Within 3600 s: 2 of 4.
    assert w["urgent"] == {"answered": 3, "expired": 1, "p50_s": 600.0, "p90_s": 4000.0, "sla_s": 3600.0,
                           "within_sla": 2, "sla_share": 0.5}
    assert w["emergency"]["p50_s"] == 300.0 and w["emergency"]["sla_share"] == 1.0
    # Routine: one cancelled, one still waiting: nothing to measure.
    assert w["routine"]["answered"] == 0 and w["routine"]["p50_s"] is None and w["routine"]["sla_share"] is None


def test_abandoned_network_failures_and_refusals() -> None:
    f = compute(dataset())
    # Six no longer waiting (c7 still queued); c5 cancelled, c4 expired.
    assert f["abandoned"] == {"finished": 6, "cancelled": 1, "expired": 1, "share": 0.3333}
    assert f["calls"]["ended"] == 5 and f["calls"]["network_failures"] == 2 and f["calls"]["network_share"] == 0.4
    assert f["calls"]["consultations_with_network_failure"] == 2
    r = f["refusals"]
    assert r["declined"] == 3 and r["ring_timeouts"] == 1 and r["unserved"] == 1
    assert r["by_reason"] == {"busy_with_patient": 1, "needs_senior": 1, "outside_specialty": 1}
    assert r["by_specialty"] == {"cardiology": {"busy_with_patient": 1, "needs_senior": 1, "outside_specialty": 1}}


def test_reserved_slots_against_the_floor() -> None:
    rows = compute(dataset())["reserved_slots"]
    cardio, neuro, member = rows
    # The lead: 18 published over two days, 4 reserved (22.2 % >= 20 %), 3 booked, 1 released.
    assert (cardio["department"], cardio["published"], cardio["reserved"], cardio["booked"], cardio["released"]) \
        == ("cardiology", 18, 4, 3, 1)
    assert cardio["reserved_share"] == 0.2222 and cardio["floor"] == 0.2 and cardio["meets_floor"] is True
    assert (cardio["floor_basis"], cardio["target"], cardio["target_basis"]) == ("alliance_lead", 0.2, "floor")
    assert (neuro["reserved_share"], neuro["meets_floor"], neuro["meets_target"]) == (0.1, False, False)
    # The member hospital does not lead: no floor; the alliance's rule of 10 % asks 1 of 10, and 1 is reserved.
    assert (member["hospital_org_id"], member["floor"], member["floor_basis"], member["meets_floor"]) \
        == (3, 0.0, "none", True)
    assert (member["target"], member["target_basis"], member["meets_target"]) == (0.1, "alliance", True)


def test_the_stricter_setting_holds_every_hospital_to_the_floor() -> None:
    data = dataset()
    data.share_policy = SharePolicy(floor_for_every_hospital=True)
    *_, member = compute(data)["reserved_slots"]
    # 20 % of 10 is 2; 1 reserved. The alliance's 10 % is below the floor, so the floor is the target.
    assert (member["floor"], member["floor_basis"], member["meets_floor"]) == (0.2, "every_hospital", False)
    assert (member["target"], member["target_basis"], member["meets_target"]) == (0.2, "floor", False)


def test_senior_coverage_counts_duty_days_at_the_centre_and_remote_days_beside_it() -> None:
    cov = compute(dataset())["senior_coverage"]
    assert cov["target_days"] == 3 and cov["weeks"] == ["2026-W45", "2026-W46"]
    by_org = {i["org_id"]: i["weeks"] for i in cov["institutions"]}
    # Health centres only: Clinic A (a village clinic) is left out, its duty day on the 2nd with it.
    assert set(by_org) == {11, 12}
    b45, b46 = by_org[11]
    # Centre B: the attending on duty there on the 4th and 5th; the resident's 6th and the Sunday 8th do not
    # count. The alliance's attending was online on the 2nd and 3rd: remote days, not coverage.
    assert (b45["days"], b45["remote_days"], b45["working_days"], b45["met"]) == (2, 2, 5, False)
    # W46: no duty; online on the 10th (the outside chief's 11th and 12th: no agreement with B).
    assert (b46["days"], b46["remote_days"], b46["working_days"], b46["met"]) == (0, 1, 5, False)
    c45, c46 = by_org[12]
    # Centre C: on duty the 2nd, 3rd and 4th: met. In W46 the outside chief on duty there on the 12th counts:
    # duty at the centre is what counts, whoever employs the clinician.
    assert (c45["days"], c45["remote_days"], c45["met"]) == (3, 2, True)
    assert (c46["days"], c46["remote_days"], c46["met"]) == (1, 1, False)
    assert set(b45) == {"week", "days", "working_days", "remote_days", "met"}


async def test_statistics_over_http_for_an_alliance(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    doctor = await store.get_user_by_username("village1")
    chief = await store.get_user_by_username("cardio.chief")
    today = dt.datetime.now(TZ).date()
    base = dt.datetime.combine(today - dt.timedelta(days=2), dt.time(10), TZ).astimezone(dt.UTC)

    def request(urgency: Urgency) -> NewConsultation:
        return NewConsultation(patient_name="Patient Sun", patient_sex="female", patient_birth_year=1960,
                               patient_local_id="", specialty="cardiology", urgency=urgency, chief_complaint="c",
                               consent_by="patient", consent_name="Patient Sun")

    waits = [60, 180, 900]
    for i, wait in enumerate(waits):
        created = await store.insert_consultation(request(Urgency.urgent), clinic_org_id=doctor.organisation_id,
                                                  doctor_id=doctor.id, now=base + dt.timedelta(hours=i), queue=True)
        await store.transition_consultation(created.id, S.offered, actor_id=None,
                                            now=base + dt.timedelta(hours=i, seconds=5), event_kind="offered")
        if i == 0:
            await store.insert_event(created.id, "declined", actor_id=chief.id, now=base + dt.timedelta(seconds=20),
                                     data={"specialist": chief.id, "reason": "busy_with_patient"})
        await store.transition_consultation(created.id, S.accepted, actor_id=chief.id,
                                            now=base + dt.timedelta(hours=i, seconds=wait),
                                            assigned_specialist_id=chief.id, event_kind="accepted")
    cancelled = await store.insert_consultation(request(Urgency.routine), clinic_org_id=doctor.organisation_id,
                                                doctor_id=doctor.id, now=base, queue=True)
    await store.transition_consultation(cancelled.id, S.cancelled, actor_id=doctor.id, now=base + dt.timedelta(seconds=60),
                                        event_kind="cancelled")
    # Another alliance's consultation stays out of the demo alliance's figures.
    other = await store.insert_alliance("Far group", "county_community")
    far_clinic = await store.insert_organisation("Far clinic", OrgLevel.village_clinic, alliance_id=other.id)
    far_doc = await store.insert_user("far.doc", "x", "Far", Role.clinic_doctor, organisation_id=far_clinic.id,
                                      now=base)
    await store.insert_consultation(request(Urgency.urgent), clinic_org_id=far_clinic.id, doctor_id=far_doc.id,
                                    now=base, queue=True)
    # The chief cardiologist was online today: a coverage day for the alliance's clinics.
    await store.record_presence_day(chief.id, today, dt.datetime.now(dt.UTC))
    assert not await store.record_presence_day(chief.id, today, dt.datetime.now(dt.UTC))

    await login(client, "alliance.admin")
    resp = await client.get(f"/api/admin/statistics?from={(today - dt.timedelta(days=6)).isoformat()}"
                            f"&to={today.isoformat()}")
    assert resp.status == 200
    f = await resp.json()
    assert f["volume"]["total"] == 4 and f["volume"]["by_urgency"] == {"emergency": 0, "urgent": 3, "routine": 1}
    assert f["waiting"]["urgent"]["answered"] == 3 and f["waiting"]["urgent"]["p50_s"] == 180.0
    assert f["waiting"]["urgent"]["p90_s"] == 900.0 and f["waiting"]["urgent"]["sla_share"] == 1.0
    assert f["abandoned"]["cancelled"] == 1 and f["refusals"]["by_reason"] == {"busy_with_patient": 1}
    centre_id = (await store.get_user_by_username("township1")).organisation_id
    centre = next(i for i in f["senior_coverage"]["institutions"] if i["org_id"] == centre_id)
    # Online is remote availability, beside the coverage and never in it: nobody was on duty at the centre.
    assert centre["weeks"][-1]["remote_days"] == (1 if today.weekday() < 5 else 0)
    assert all(w["days"] == 0 and not w["met"] for w in centre["weeks"])
    covered = {i["org_id"] for i in f["senior_coverage"]["institutions"]}
    assert covered.isdisjoint({far_clinic.id, doctor.organisation_id})  # another alliance's; a village clinic
    # The system administrator sees both alliances.
    client.session.cookie_jar.clear()
    await login(client, "admin")
    f_all = await (await client.get("/api/admin/statistics")).json()
    assert f_all["volume"]["total"] == 5
    page = await client.get("/admin/statistics")
    text = await page.text()
    assert page.status == 200 and 'id="volume-chart"' in text and 'id="coverage-table"' in text
    for bad in ("from=yesterday", "from=2026-11-10&to=2026-11-01", "from=2020-01-01&to=2026-11-01"):
        assert (await client.get(f"/api/admin/statistics?{bad}")).status == 400, bad
    client.session.cookie_jar.clear()
    await login(client, "village1")
    assert (await client.get("/api/admin/statistics")).status == 403
    assert (await client.get("/admin/statistics")).status == 403


async def test_the_duty_roster_counts_towards_coverage(client: TestClient) -> None:  # type: ignore[type-arg]
    from tests.conftest import csrf_from

    store = client.app[keys.STORE]  # type: ignore[index]
    clinic = (await store.get_user_by_username("township1")).organisation_id
    chief = await store.get_user_by_username("cardio.chief")
    await login(client, "alliance.admin")
    page = await (await client.get("/admin/statistics")).text()
    csrf = csrf_from(page, "/admin/duty")
    monday = dt.date(2026, 11, 2)
    form = {"csrf_token": csrf, "user": str(chief.id), "org": str(clinic), "first": monday.isoformat(),
            "last": (monday + dt.timedelta(days=6)).isoformat(), "weekday": ["0", "2", "4"]}
    resp = await client.post("/admin/duty", data=[(k, v) for k, vs in form.items()
                                                  for v in (vs if isinstance(vs, list) else [vs])],
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("saved=3")
    days = await store.list_duty_days(org_ids=[clinic], start=monday, end=monday + dt.timedelta(days=7))
    assert [d.day.weekday() for d in days] == [0, 2, 4]
    # Recording the same days again adds nothing.
    resp = await client.post("/admin/duty", data=[(k, v) for k, vs in form.items()
                                                  for v in (vs if isinstance(vs, list) else [vs])],
                             allow_redirects=False)
    assert resp.headers["Location"].endswith("saved=0")
    f = await (await client.get("/api/admin/statistics?from=2026-11-02&to=2026-11-08")).json()
    [week] = next(i for i in f["senior_coverage"]["institutions"] if i["org_id"] == clinic)["weeks"]
    assert (week["days"], week["working_days"], week["remote_days"], week["met"]) == (3, 5, 0, True)
    # The page shows the same figures as the JSON.
    page = await (await client.get("/admin/statistics?from=2026-11-02&to=2026-11-08")).text()
    assert 'data-week="2026-W45" data-days="3"' in page.split(f'<tr data-org="{clinic}">')[1]
    assert 'data-week="2026-W45" data-remote-days="0"' in page.split(f'<tr data-org="{clinic}">')[2]
    # Village clinics are not in the figure, so no duty is recorded there.
    village = (await store.get_user_by_username("village1")).organisation_id
    resp = await client.post("/admin/duty", data={"csrf_token": csrf, "user": str(chief.id), "org": str(village),
                                                  "first": "2026-11-09"})
    assert resp.status == 400
    assert "乡镇卫生院或社区卫生服务中心" in await resp.text()
    # A resident cannot be on the roster; a clinic outside the alliance cannot either.
    resident = await store.get_user_by_username("township3")
    assert resident.title is Title.resident
    resp = await client.post("/admin/duty", data={"csrf_token": csrf, "user": str(resident.id), "org": str(clinic),
                                                  "first": "2026-11-09"})
    assert resp.status == 400 and 'id="duty-errors"' in await resp.text()
    resp = await client.post("/admin/duty", data={"csrf_token": csrf, "user": str(chief.id), "org": str(clinic),
                                                  "first": "2026-11-09", "last": "2027-11-09"})
    assert resp.status == 400
    assert len(await store.list_duty_days(org_ids=None, start=monday, end=dt.date(2028, 1, 1))) == 3
    resp = await client.post(f"/admin/duty/{days[0].id}/delete", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303
    assert len(await store.list_duty_days(org_ids=None, start=monday, end=dt.date(2028, 1, 1))) == 2


async def test_the_page_shows_the_figures_of_the_json(client: TestClient) -> None:  # type: ignore[type-arg]
    store = client.app[keys.STORE]  # type: ignore[index]
    centre = (await store.get_user_by_username("township1")).organisation_id
    chief = await store.get_user_by_username("cardio.chief")
    today = dt.datetime.now(TZ).date()
    # The coming week holds the demo's slots; a duty day at a centre, and the chief online, give both figures.
    monday = today + dt.timedelta(days=7 - today.weekday())
    await store.insert_duty_days(chief.id, centre, [monday], created_by=None, now=dt.datetime.now(dt.UTC))
    await store.record_presence_day(chief.id, monday, dt.datetime.now(dt.UTC))
    await login(client, "alliance.admin")
    query = f"from={today.isoformat()}&to={(monday + dt.timedelta(days=4)).isoformat()}"
    f = await (await client.get(f"/api/admin/statistics?{query}")).json()
    page = await (await client.get(f"/admin/statistics?{query}")).text()
    reserved = page.split('id="reserved-table"')[1].split("</table>")[0]
    assert len(f["reserved_slots"]) == 8  # two hospitals, four departments
    for r in f["reserved_slots"]:
        row = reserved.split(f'<tr data-hospital="{r["hospital_org_id"]}" data-department="{r["department"]}">')[1]
        row = row.split("</tr>")[0]
        assert f'class="published">{r["published"]}<' in row and f'class="reserved">{r["reserved"]} (' in row
        assert f'class="floor">{r["floor"] * 100:.1f} %' in row and f'class="target">{r["target"] * 100:.1f} %' in row
    # The city hospital leads the pilot (one third); the county hospital is a member at the group's 10 %.
    assert {r["floor"] for r in f["reserved_slots"]} == {0.3333, 0.0}
    assert {r["target"] for r in f["reserved_slots"]} == {0.3333, 0.1}
    coverage, remote = (page.split(f'id="{t}"')[1].split("</table>")[0] for t in ("coverage-table", "remote-table"))
    for i in f["senior_coverage"]["institutions"]:
        covered_row = coverage.split(f'data-org="{i["org_id"]}"')[1].split("</tr>")[0]
        remote_row = remote.split(f'data-org="{i["org_id"]}"')[1].split("</tr>")[0]
        for w in i["weeks"]:
            assert f'data-week="{w["week"]}" data-days="{w["days"]}"' in covered_row
            assert f'data-week="{w["week"]}" data-remote-days="{w["remote_days"]}"' in remote_row
    week = next(i for i in f["senior_coverage"]["institutions"] if i["org_id"] == centre)["weeks"][-1]
    assert (week["days"], week["remote_days"]) == (1, 1)
