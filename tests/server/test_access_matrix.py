"""The access matrix: every HTTP route and every WebSocket command, for every kind of caller, on records of
the caller's own organisation and of another one. The table below is the specification; a route or
command added without a row here fails the test.

Callers: anonymous; the clinic doctor whose clinic asked (`clinic`) and one of another clinic
(`clinic_other`); the specialist who took the consultation (`spec`) and one who did not (`spec_other`);
the alliance's administrator (`admin`) and an administrator of another alliance (`admin_other`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from telehealth.accounts import hash_password
from telehealth.domain import ConsultationState, OrgLevel, Role, Urgency
from telehealth.records.consent import attachments_root, store_signature, synthetic_signature
from telehealth.records.files import FileStore
from telehealth.records.models import NewConsultation
from telehealth.records.seed import ALLIANCE_NAME, DEMO_PASSWORD
from telehealth.server import keys
from telehealth.server.auth import access_of
from telehealth.signaling.commands import REGISTRY
from tests.conftest import make_settings
from tests.support.wsclient import Node, serve

CALLERS = ("anon", "clinic", "clinic_other", "spec", "spec_other", "admin", "admin_other")
USERNAMES = {"clinic": "village1", "clinic_other": "village2", "spec": "cardio.chief", "spec_other": "neuro.chief",
             "admin": "alliance.admin", "admin_other": "far.admin"}
ANY_USER = {"clinic", "clinic_other", "spec", "spec_other", "admin", "admin_other"}
CLINICS = {"clinic", "clinic_other"}
SPECIALISTS = {"spec", "spec_other"}
ADMINS = {"admin", "admin_other"}
# Who may see or act on the consultation of `clinic`'s clinic taken by `spec`.
PARTIES = {"clinic", "spec", "admin"}
EVERYONE = set(CALLERS)

# (method, path) -> callers allowed. `{c}` is the consultation; other placeholders are filled below.
HTTP: dict[tuple[str, str], set[str]] = {
    ("GET", "/"): EVERYONE, ("GET", "/login"): EVERYONE, ("POST", "/login"): EVERYONE,
    ("POST", "/language"): EVERYONE, ("GET", "/healthz"): EVERYONE, ("GET", "/readyz"): EVERYONE,
    ("GET", "/metrics"): EVERYONE, ("POST", "/api/tokens"): EVERYONE, ("GET", "/ws"): EVERYONE,
    ("GET", "/api/openapi.json"): EVERYONE,
    ("POST", "/logout"): ANY_USER,
    ("GET", "/clinic"): CLINICS, ("GET", "/specialist"): SPECIALISTS, ("GET", "/admin"): ADMINS,
    ("GET", "/api/me"): ANY_USER,
    ("POST", "/api/consultations"): CLINICS, ("GET", "/api/consultations"): CLINICS | SPECIALISTS,
    ("GET", "/api/consultations/{c}"): PARTIES, ("GET", "/api/consultations/{c}/events"): PARTIES,
    ("GET", "/clinic/consultations/new"): CLINICS, ("POST", "/clinic/consultations"): CLINICS,
    ("GET", "/clinic/consultations/{c}"): {"clinic"}, ("GET", "/specialist/consultations/{c}"): {"spec"},
    ("GET", "/api/consultations/{c}/note"): PARTIES, ("PUT", "/api/consultations/{c}/note"): {"spec"},
    ("POST", "/api/consultations/{c}/note/sign"): {"spec"},
    ("POST", "/api/consultations/{c}/note/addenda"): {"spec"},
    ("GET", "/api/icd10"): ANY_USER,
    ("POST", "/api/consultations/{c}/decision"): {"clinic"},
    ("POST", "/api/consultations/{c}/consent"): {"clinic"}, ("POST", "/clinic/consultations/{c}/consent"): {"clinic"},
    ("POST", "/clinic/referrals/{r}/tasks/{t}/done"): CLINICS, ("POST", "/clinic/referrals/{r}/outcome"): CLINICS,
    ("GET", "/api/consultations/{c}/slots"): {"spec"}, ("GET", "/api/consultations/{c}/beds"): {"spec"},
    ("GET", "/api/consultations/{c}/booking"): PARTIES, ("PUT", "/api/consultations/{c}/booking"): {"spec"},
    ("DELETE", "/api/consultations/{c}/booking"): {"spec"},
    ("GET", "/api/referrals"): CLINICS | SPECIALISTS,
    ("POST", "/api/referrals/{r}/tasks/{t}/done"): CLINICS, ("POST", "/api/referrals/{r}/outcome"): CLINICS,
    ("GET", "/records/{c}"): PARTIES, ("GET", "/api/consultations/{c}/fhir"): PARTIES,
    ("POST", "/api/consultations/{c}/attachments"): {"clinic"},
    ("GET", "/api/consultations/{c}/attachments"): PARTIES,
    ("GET", "/api/consultations/{c}/attachments/{a}"): PARTIES,
    ("GET", "/admin/slots"): ADMINS, ("POST", "/admin/slots"): ADMINS, ("POST", "/admin/slots/import"): ADMINS,
    ("GET", "/admin/beds"): ADMINS, ("POST", "/admin/beds"): ADMINS, ("POST", "/admin/beds/import"): ADMINS,
    ("POST", "/admin/organisations/{o}/reserved-share"): {"admin"},
    ("POST", "/admin/alliances/{l}/member-share"): {"admin"}, ("GET", "/api/admin/reserved-shares"): ADMINS,
    ("PUT", "/api/admin/organisations/{o}/reserved-share"): {"admin"},
    ("PUT", "/api/admin/alliances/{l}/member-share"): {"admin"},
    ("GET", "/admin/consultations"): ADMINS, ("GET", "/admin/consultations.csv"): ADMINS,
    ("GET", "/admin/consultations/{c}"): {"admin"},
    ("GET", "/admin/users"): ADMINS, ("POST", "/admin/users"): ADMINS,
    ("GET", "/admin/users/{u}"): {"admin"}, ("POST", "/admin/users/{u}"): {"admin"},
    ("POST", "/admin/users/{u}/password"): {"admin"},
    ("GET", "/admin/organisations"): ADMINS, ("POST", "/admin/organisations"): ADMINS,
    ("POST", "/admin/organisations/{o}"): {"admin"},
    ("POST", "/admin/agreements"): ADMINS, ("POST", "/admin/agreements/{g}/end"): {"admin"},
    ("POST", "/admin/agreements/{g}/approve"): {"admin"}, ("POST", "/admin/agreements/{g}/decline"): {"admin"},
    ("GET", "/api/admin/agreements"): ADMINS, ("POST", "/api/admin/agreements"): ADMINS,
    ("POST", "/api/admin/agreements/{g}/approve"): {"admin"}, ("POST", "/api/admin/agreements/{g}/decline"): {"admin"},
    ("POST", "/api/admin/agreements/{g}/end"): {"admin"},
    ("GET", "/admin/audit"): ADMINS, ("POST", "/admin/audit/verify"): ADMINS,
    ("GET", "/admin/statistics"): ADMINS, ("GET", "/api/admin/statistics"): ADMINS,
    ("POST", "/admin/duty"): ADMINS, ("POST", "/admin/duty/{d}/delete"): {"admin"},
    ("GET", "/api/precheck/config"): CLINICS, ("POST", "/api/precheck"): CLINICS,
    ("POST", "/api/precheck/{p}/report"): CLINICS, ("GET", "/clinic/precheck"): CLINICS,
    ("GET", "/admin/network"): ADMINS,
    ("GET", "/account"): ANY_USER, ("POST", "/account/password"): ANY_USER,
    ("POST", "/account/tokens/{k}/revoke"): ANY_USER, ("POST", "/admin/users/{u}/tokens/{j}/revoke"): {"admin"},
    ("POST", "/api/me/password"): ANY_USER, ("GET", "/api/tokens"): ANY_USER,
    ("DELETE", "/api/tokens/{k}"): ANY_USER, ("GET", "/api/admin/users/{u}/tokens"): {"admin"},
    ("DELETE", "/api/admin/users/{u}/tokens/{i}"): {"admin"},
    # The test results of the consultation's patient ({n}), and the alliance's ({l}) recognised items.
    ("GET", "/api/patients/{n}/results"): PARTIES, ("POST", "/api/patients/{n}/results"): {"clinic", "spec"},
    ("POST", "/api/patients/{n}/results/fhir"): {"clinic", "spec"},
    ("POST", "/clinic/consultations/{c}/results"): {"clinic"},
    ("GET", "/api/alliances/{l}/recognised-items"): ANY_USER, ("PUT", "/api/alliances/{l}/recognised-items"): {"admin"},
    ("GET", "/admin/recognised-items"): ADMINS, ("POST", "/admin/recognised-items"): ADMINS,
    # The code step and the enrolment at sign-in come before a session: without the password step's cookie
    # they send everyone back to the login page.
    ("GET", "/login/code"): EVERYONE, ("POST", "/login/code"): EVERYONE,
    ("GET", "/login/enrol"): EVERYONE, ("POST", "/login/enrol"): EVERYONE,
    ("GET", "/account/second-factor"): ANY_USER, ("POST", "/account/second-factor"): ANY_USER,
    ("POST", "/account/second-factor/recovery-codes"): ANY_USER,
    ("POST", "/admin/users/{u}/second-factor/reset"): {"admin"},
    ("DELETE", "/api/admin/users/{u}/second-factor"): {"admin"},
    # Booked consultations: {b} is one of the clinic's booked with the specialist; {h} the specialist's hours.
    ("GET", "/api/appointments"): CLINICS | SPECIALISTS, ("POST", "/api/appointments"): CLINICS,
    ("POST", "/api/appointments/{b}/answer"): {"spec"}, ("POST", "/api/appointments/{b}/accept"): {"clinic"},
    ("POST", "/api/appointments/{b}/reschedule"): {"clinic", "spec"},
    ("POST", "/api/appointments/{b}/cancel"): {"clinic", "spec"},
    ("POST", "/api/appointments/{b}/on-demand"): {"clinic"},
    ("GET", "/api/consultation-hours"): CLINICS | SPECIALISTS, ("POST", "/api/consultation-hours"): SPECIALISTS,
    ("DELETE", "/api/consultation-hours/{h}"): {"spec"},
    ("GET", "/clinic/appointments"): CLINICS, ("GET", "/specialist/appointments"): SPECIALISTS,
    ("PUT", "/api/admin/desks"): ADMINS, ("POST", "/api/admin/desks/revoke"): ADMINS,
}

# WebSocket commands: callers allowed, and whether the command is about the consultation (own vs other).
WS: dict[str, set[str]] = {
    "ping": ANY_USER, "presence.set": SPECIALISTS, "queue.list": SPECIALISTS,
    "consultation.take_next": SPECIALISTS, "consultation.take": SPECIALISTS, "offer.accept": SPECIALISTS,
    "offer.decline": SPECIALISTS, "consultation.create": CLINICS, "consultation.cancel": {"clinic"},
    "consultation.requeue": {"clinic", "spec"}, "consultation.watch": {"clinic", "spec"},
    "session.join": {"clinic", "spec"}, "session.signal": {"clinic", "spec"}, "call.ice_servers": {"clinic", "spec"},
    "session.ice_state": {"clinic", "spec"}, "session.quality": {"clinic", "spec"},
    "session.chat": {"clinic", "spec"}, "session.hangup": {"clinic", "spec"},
}
DENIED_WS = {"forbidden", "not_eligible", "not_found", "not_in_session"}
# Routes about a referral: the matrix calls them with an id that does not exist, so a caller past the role
# check gets 404 (whose clinic a referral belongs to is tested with real referrals in test_referrals).
NOT_FOUND_PASSES = {"/clinic/referrals/{r}/tasks/{t}/done", "/clinic/referrals/{r}/outcome",
                    "/api/referrals/{r}/tasks/{t}/done", "/api/referrals/{r}/outcome", "/api/precheck/{p}/report",
                    "/account/tokens/{k}/revoke", "/api/tokens/{k}"}


@dataclass
class World:
    node: Node
    tokens: dict[str, str]
    ids: dict[str, int]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with serve(make_settings(tmp_path)) as node:
        assert not isinstance(node.server, str)
        app = node.server.app
        store = app[keys.STORE]
        now = dt.datetime.now(dt.UTC)
        far = await store.insert_alliance("Far group", "county_community")
        far_org = await store.insert_organisation("Far hospital", OrgLevel.county_hospital, alliance_id=far.id)
        await store.insert_user("far.admin", hash_password(DEMO_PASSWORD), "Far admin", Role.admin,
                                organisation_id=far_org.id, now=now)
        clinic = await store.get_user_by_username("village1")
        chief = await store.get_user_by_username("cardio.chief")
        files = FileStore(attachments_root(app[keys.SETTINGS].data_dir))
        document = await store_signature(files, synthetic_signature())
        consultation = await store.insert_consultation(NewConsultation(
            patient_name="Kong Wei", patient_sex="male", patient_birth_year=1950, patient_local_id="",
            specialty="cardiology", urgency=Urgency.urgent, chief_complaint="chest pain", consent_by="patient",
            consent_name="Kong Wei", consent_document=document), clinic_org_id=clinic.organisation_id,
            doctor_id=clinic.id, now=now, queue=True)
        await store.transition_consultation(consultation.id, ConsultationState.accepted, actor_id=chief.id, now=now,
                                            assigned_specialist_id=chief.id, event_kind="accepted")
        [attachment] = await store.list_attachments(consultation.id)
        outside = await store.insert_organisation("Provincial hospital", OrgLevel.city_hospital, alliance_id=None)
        agreement = await store.insert_agreement(clinic.organisation_id, outside.id, valid_from=now, valid_to=None,
                                                 created_by=None, now=now)
        # Duty is recorded at health centres (the coverage figure counts them, not village clinics).
        centre = (await store.get_user_by_username("township1")).organisation_id
        duty = await store.insert_duty_days(chief.id, centre, [dt.date(2026, 12, 1)], created_by=None, now=now)
        assert duty == 1
        [duty_day] = await store.list_duty_days(org_ids=None, start=dt.date(2026, 12, 1), end=dt.date(2026, 12, 2))
        city = await store.get_organisation_by_name("Qingshan First People's Hospital")
        tokens = {who: await node.token(name) for who, name in USERNAMES.items()}
        # Two more of the clinic doctor's tokens, for the administrators' revoke routes to revoke.
        await node.token("village1")
        await node.token("village1")
        spare = sorted(t.id for t in await store.list_api_tokens(clinic.id, ttl=dt.timedelta(days=1)))[-2:]
        group = await store.get_alliance_by_name(ALLIANCE_NAME)
        later = now + dt.timedelta(days=3)
        hours = await store.insert_consultation_hours(
            specialist_id=chief.id, hospital_org_id=chief.organisation_id, department="cardiology", starts_at=later,
            ends_at=later + dt.timedelta(hours=2), created_by=chief.id, now=now)
        booked = await store.insert_consultation(NewConsultation(
            patient_name="Ma Li", patient_sex="female", patient_birth_year=1960, patient_local_id="",
            specialty="cardiology", urgency=Urgency.routine, chief_complaint="palpitations", consent_by="patient",
            consent_name="Ma Li", consent_document=document), clinic_org_id=clinic.organisation_id,
            doctor_id=clinic.id, now=now)
        appointment = await store.insert_appointment(
            consultation_id=booked.id, clinic_org_id=clinic.organisation_id, hospital_org_id=chief.organisation_id,
            department="cardiology", specialist_id=chief.id, starts_at=later, duration_min=30, window=None,
            status="booked", created_by=clinic.id, now=now)
        ids = {"c": consultation.id, "a": attachment["id"], "r": 999_999, "t": 1, "u": clinic.id, "o": city.id,
               "n": consultation.patient_id, "l": group.id,
               "g": agreement, "d": duty_day.id, "p": "0" * 32,
               "k": 999_999, "j": spare[0], "i": spare[1], "b": appointment.id, "h": hours.id}
        yield World(node, tokens, ids)


async def _status(world: World, caller: str, method: str, path: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {world.tokens[caller]}"} if caller != "anon" else {}
    body: Any = {} if method in ("POST", "PUT") and (path.startswith("/api/") or path == "/login") else None
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": False}
        if body is not None:
            kwargs["json"] = body
        elif method in ("POST", "PUT"):
            kwargs["data"] = {}
        async with http.request(method, world.node.url(path), **kwargs) as resp:
            return resp.status, resp.headers.get("Location", "")


async def test_every_route_for_every_caller(world: World) -> None:
    assert not isinstance(world.node.server, str)
    routes = set()
    for route in world.node.server.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "HEAD" or path is None or access_of(getattr(route, "handler", None)) is None:
            continue
        routes.add((route.method, path))
    spec = {(m, p.replace("{c}", "{consultation_id}").replace("{a}", "{attachment_id}")
             .replace("{r}", "{referral_id}").replace("{t}", "{task_id}").replace("{u}", "{user_id}")
             .replace("{o}", "{org_id}").replace("{g}", "{agreement_id}").replace("{d}", "{duty_id}")
             .replace("{p}", "{check_id}").replace("{k}", "{token_id}")
             .replace("{j}", "{token_id}").replace("{i}", "{token_id}").replace("{n}", "{patient_id}")
             .replace("{l}", "{alliance_id}").replace("{b}", "{appointment_id}").replace("{h}", "{hours_id}"))
            for m, p in HTTP}
    assert routes == spec, ("routes without a row", routes - spec, "rows without a route", spec - routes)

    failures = []
    # Logging out ends the caller's API token session for nothing; it goes last.
    rows = sorted(HTTP.items(), key=lambda kv: kv[0] == ("POST", "/logout"))
    for (method, template), allowed in rows:
        if template in ("/ws", "/login") and method != "GET":
            continue  # the WebSocket is covered below; signing in is the auth tests' subject
        if template == "/ws":
            continue
        path = template.format(**world.ids)
        for caller in CALLERS:
            status, location = await _status(world, caller, method, path)
            denied = status in (401, 403) or (status == 404 and "{" in template and template not in NOT_FOUND_PASSES) \
                or (allowed is not EVERYONE and (caller == "anon" or method == "GET")
                    and status in (302, 303) and location.startswith("/login"))
            if denied == (caller in allowed):
                failures.append(f"{method} {template} as {caller}: {status}")
    assert failures == [], "\n".join(failures)


async def test_every_command_for_every_caller(world: World) -> None:
    assert set(REGISTRY) == set(WS), set(REGISTRY) ^ set(WS)
    cid = world.ids["c"]
    bodies: dict[str, dict[str, Any]] = {
        "presence.set": {"status": "away"}, "queue.list": {}, "consultation.take_next": {},
        "consultation.take": {"consultation_id": cid}, "offer.accept": {"consultation_id": cid},
        "offer.decline": {"consultation_id": cid, "reason": "busy_with_patient"},
        "consultation.create": {"patient": {"name": "x", "sex": "male", "birth_year": 1950},
                                "specialty": "cardiology", "urgency": "routine", "chief_complaint": "c"},
        "consultation.cancel": {"consultation_id": cid}, "consultation.requeue": {"consultation_id": cid},
        "consultation.watch": {"consultation_id": cid}, "session.join": {"consultation_id": cid},
        "call.ice_servers": {"consultation_id": cid},
        "session.signal": {"session_id": 1, "kind": "candidate", "payload": {
            "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}},
        "session.ice_state": {"session_id": 1, "state": "checking"},
        "session.quality": {"session_id": 1, "rtt_ms": 10},
        "session.chat": {"session_id": 1, "text": "hi"}, "session.hangup": {"session_id": 1},
        "ping": {},
    }
    failures = []
    # The specialist's join opens the call first, so the session-bound commands have a session.
    order = ["session.join", *[c for c in sorted(WS) if c not in ("session.join", "session.hangup",
                                                                  "consultation.cancel")],
             "session.hangup", "consultation.cancel"]
    for caller in CALLERS:
        if caller == "anon":
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(world.node.url("/ws")) as ws:
                    await ws.send_str(json.dumps({"id": 1, "type": "ping"}))
                    reply = await ws.receive_json(timeout=5)
                    assert reply.get("error", {}).get("code") in ("auth_required", "auth_failed"), reply
            continue
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(world.node.url("/ws"),
                                       headers={"Authorization": f"Bearer {world.tokens[caller]}"}) as ws:
                next_id = 0
                for command in order:
                    next_id += 1
                    await ws.send_str(json.dumps({"id": next_id, "type": command, **bodies[command]}))
                    while True:
                        data = json.loads((await ws.receive(timeout=10)).data)
                        if data.get("type") == "result" and data.get("id") == next_id:
                            break
                    code = None if data["success"] else data["error"]["code"]
                    denied = code in DENIED_WS
                    if denied == (caller in WS[command]):
                        failures.append(f"{command} as {caller}: {code}")
    assert failures == [], "\n".join(failures)
