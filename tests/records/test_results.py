"""Test results in the patient's record (检查检验结果互认): the recognition rule with hand-computed dates, results
recorded over the API and on the clinic's page, the alliance administrator's list of recognised items, who may
see them (the referral's receiving hospital does, a hospital outside the referral does not), their FHIR export,
and the import of a FHIR Bundle, refused whole when one resource is invalid. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from telehealth.accounts import hash_password_async
from telehealth.domain import OrgLevel, Role
from telehealth.records.models import Result
from telehealth.records.seed import ALLIANCE_NAME, DEMO_PASSWORD
from telehealth.records.store import Store
from telehealth.server import keys
from telehealth.services.results import recognition
from tests.conftest import csrf_from, make_settings
from tests.records.test_notes import accepted_consultation, api
from tests.records.test_referrals import UP, book_first
from tests.support.wsclient import Node, serve

TZ = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime.now(dt.UTC)


def _result(code: str, performed_on: dt.date, source: int | None) -> Result:
    return Result(1, 1, code, 128.0, "g/L", "", performed_on, source, "", None, "recorded", 1, NOW)


def test_recognition_by_type_validity_and_member_unit() -> None:
    items = {"718-7": 30, "11524-6": 7}
    members = {10, 11}
    tested = dt.date(2026, 11, 3)
    # 3 November + 30 days = 3 December, the last day the result stands.
    on_last_day = recognition(_result("718-7", tested, 10), items, members, dt.date(2026, 12, 3))
    assert on_last_day.recognised and on_last_day.valid_until == dt.date(2026, 12, 3)
    day_after = recognition(_result("718-7", tested, 10), items, members, dt.date(2026, 12, 4))
    assert not day_after.recognised and day_after.reason == "expired"
    # An ECG of 28 February 2026 for 7 days: valid through 7 March (2026 is no leap year).
    ecg = recognition(_result("11524-6", dt.date(2026, 2, 28), 11), items, members, dt.date(2026, 3, 7))
    assert ecg.recognised and ecg.valid_until == dt.date(2026, 3, 7)
    assert recognition(_result("11524-6", dt.date(2026, 2, 28), 11), items, members,
                       dt.date(2026, 3, 8)).reason == "expired"
    unlisted = recognition(_result("14749-6", tested, 10), items, members, tested)
    assert not unlisted.recognised and unlisted.reason == "not_listed" and unlisted.valid_until is None
    # Done outside the alliance, or by an institution not known here: not the alliance's to recognise.
    assert recognition(_result("718-7", tested, 99), items, members, tested).reason == "outside"
    assert recognition(_result("718-7", tested, None), items, members, tested).reason == "outside"


@pytest.fixture
async def node(tmp_path: Path, database_url: str, store: Store) -> AsyncIterator[Node]:
    # `store` has migrated the database (SQLite, and PostgreSQL when configured) for the server.
    async with serve(make_settings(tmp_path, database_url=database_url)) as n:
        yield n


def _store(node: Node) -> Store:
    assert not isinstance(node.server, str)
    store: Store = node.server.app[keys.STORE]
    return store


async def _alliance_id(node: Node) -> int:
    alliance = await _store(node).get_alliance_by_name(ALLIANCE_NAME)
    assert alliance is not None
    return alliance.id


async def _patient(node: Node, cid: int) -> int:
    status, body = await api(node, "GET", f"/api/consultations/{cid}", "village6")
    assert status == 200
    return int(body["consultation"]["patient_id"])


async def _far_admin(node: Node) -> None:
    store = _store(node)
    far = await store.insert_alliance("Far group", "county_community")
    org = await store.insert_organisation("Far hospital", OrgLevel.county_hospital, alliance_id=far.id)
    await store.insert_user("far.admin", await hash_password_async(DEMO_PASSWORD), "Far admin", Role.admin,
                            organisation_id=org.id, now=NOW)


def _today() -> dt.date:
    return dt.datetime.now(TZ).date()


async def test_results_are_recognised_by_the_alliances_list_and_validity(node: Node) -> None:
    cid = await accepted_consultation(node)
    pid = await _patient(node, cid)
    aid = await _alliance_id(node)
    await _far_admin(node)
    items = {"items": [{"type_code": "718-7", "validity_days": 30}, {"type_code": "11524-6", "validity_days": 7}]}
    for outsider, code in (("far.admin", 403), ("village6", 403), ("neuro.chief", 403)):
        status, _ = await api(node, "PUT", f"/api/alliances/{aid}/recognised-items", outsider, items)
        assert status == code, outsider
    status, body = await api(node, "PUT", f"/api/alliances/{aid}/recognised-items", "alliance.admin",
                             {"items": [{"type_code": "718-7", "validity_days": 30},
                                        {"type_code": "718-7", "validity_days": 5}]})
    assert status == 400 and "twice" in body["error"]["message_en"]
    status, body = await api(node, "PUT", f"/api/alliances/{aid}/recognised-items", "alliance.admin", items)
    assert status == 200 and sorted(body["items"], key=str) == sorted(items["items"], key=str)
    status, body = await api(node, "GET", f"/api/alliances/{aid}/recognised-items", "village1")
    assert status == 200 and {t["code"]: t["validity_days"] for t in body["types"] if t["recognised"]} == {
        "718-7": 30, "11524-6": 7}
    status, _ = await api(node, "GET", "/api/alliances/999999/recognised-items", "village1")
    assert status == 404

    today = _today()
    recorded = {}
    for key, body in {
        "fresh": {"type_code": "718-7", "performed_on": (today - dt.timedelta(days=30)).isoformat(), "value": 128},
        "stale": {"type_code": "718-7", "performed_on": (today - dt.timedelta(days=31)).isoformat(), "value": 131},
        "unlisted": {"type_code": "14749-6", "performed_on": today.isoformat(), "value": 6.1},
        "elsewhere": {"type_code": "11524-6", "performed_on": (today - dt.timedelta(days=3)).isoformat(),
                      "text": "Sinus rhythm, 72/min, no ST change.", "source_name": "Harmony private clinic"},
    }.items():
        status, answer = await api(node, "POST", f"/api/patients/{pid}/results", "village6", body)
        assert status == 201, answer
        recorded[key] = answer["result"]
    assert recorded["fresh"]["recognised"] is True
    assert recorded["fresh"]["valid_until"] == today.isoformat()  # 30 days after the test: today, still good
    assert recorded["fresh"]["unit"] == "g/L" and recorded["fresh"]["source"] == "Lijia Village Clinic"
    assert recorded["stale"]["recognised"] is False and recorded["stale"]["recognition"] == "expired"
    assert recorded["stale"]["valid_until"] == (today - dt.timedelta(days=1)).isoformat()
    assert recorded["unlisted"]["recognition"] == "not_listed" and recorded["unlisted"]["valid_until"] is None
    assert recorded["elsewhere"]["recognition"] == "outside" and recorded["elsewhere"]["source_org_id"] is None
    # The specialist of the consultation sees the same, the latest test first.
    status, body = await api(node, "GET", f"/api/patients/{pid}/results", "neuro.chief")
    assert status == 200 and body["alliance_id"] == aid
    assert [r["id"] for r in body["results"]] == [recorded[k]["id"] for k in ("unlisted", "elsewhere", "fresh", "stale")]
    # The specialist records what the hospital did, with the hospital as its source.
    status, answer = await api(node, "POST", f"/api/patients/{pid}/results", "neuro.chief",
                               {"type_code": "11524-6", "performed_on": today.isoformat(), "text": "Atrial fibrillation."})
    assert status == 201 and answer["result"]["source"] == "Qingshan First People's Hospital"
    assert answer["result"]["recognised"] and answer["result"]["valid_until"] == (today + dt.timedelta(days=7)).isoformat()

    for bad, wanted in (
        ({"type_code": "718-7", "performed_on": today.isoformat()}, "value"),
        ({"type_code": "11524-6", "performed_on": today.isoformat(), "value": 1}, "text"),
        ({"type_code": "0000-0", "performed_on": today.isoformat(), "value": 1}, "type_code"),
        ({"type_code": "718-7", "performed_on": "3 Nov", "value": 1}, "performed_on"),
        ({"type_code": "718-7", "performed_on": (today + dt.timedelta(days=1)).isoformat(), "value": 1}, "after today"),
    ):
        status, answer = await api(node, "POST", f"/api/patients/{pid}/results", "village6", bad)
        assert status == 400 and wanted in answer["error"]["message_en"], (bad, answer)
    status, body = await api(node, "GET", f"/api/patients/{pid}/results", "village6")
    assert len(body["results"]) == 5
    # The alliance takes a test type off its list: nothing recognises it any more.
    status, _ = await api(node, "PUT", f"/api/alliances/{aid}/recognised-items", "alliance.admin",
                          {"items": [{"type_code": "11524-6", "validity_days": 7}]})
    status, body = await api(node, "GET", f"/api/patients/{pid}/results", "village6")
    fresh = next(r for r in body["results"] if r["id"] == recorded["fresh"]["id"])
    assert fresh["recognised"] is False and fresh["recognition"] == "not_listed"


async def _page(node: Node, username: str, path: str) -> tuple[int, str]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        async with session.get(node.url("/login")) as resp:
            token = csrf_from(await resp.text())
        async with session.post(node.url("/login"), data={"username": username, "password": DEMO_PASSWORD,
                                                          "csrf_token": token}) as resp:
            assert resp.status == 200
        async with session.get(node.url(path)) as resp:
            return resp.status, await resp.text()
    finally:
        await session.close()


async def test_results_travel_with_the_referral_to_the_receiving_hospital_only(node: Node) -> None:
    cid = await accepted_consultation(node)
    pid = await _patient(node, cid)
    aid = await _alliance_id(node)
    await _far_admin(node)
    await api(node, "PUT", f"/api/alliances/{aid}/recognised-items", "alliance.admin",
              {"items": [{"type_code": "718-7", "validity_days": 30}]})
    status, _ = await api(node, "POST", f"/api/patients/{pid}/results", "village6",
                          {"type_code": "718-7", "performed_on": _today().isoformat(), "value": 96})
    assert status == 201
    slot = await book_first(node, cid)
    store = _store(node)
    city = await store.get_organisation_by_name("Qingshan First People's Hospital")
    county = await store.get_organisation_by_name("Heping County People's Hospital")
    assert city is not None and county is not None
    receiving_org = slot["hospital_org_id"]
    # A specialist of the hospital the slot is at, who has no part in the consultation, and one of the other.
    receiving, outside = ("cardio.chief", "cardio.attending") if receiving_org == city.id else \
        ("cardio.attending", "cardio.chief")
    status, _ = await api(node, "GET", f"/api/patients/{pid}/results", receiving)
    assert status == 403  # not referred yet
    await api(node, "PUT", f"/api/consultations/{cid}/note", "neuro.chief", UP)
    status, _ = await api(node, "POST", f"/api/consultations/{cid}/note/sign", "neuro.chief", {})
    assert status == 200

    status, body = await api(node, "GET", f"/api/patients/{pid}/results", receiving)
    assert status == 200 and [(r["type_code"], r["recognised"]) for r in body["results"]] == [("718-7", True)]
    status, html = await _page(node, receiving, f"/records/{cid}")
    assert status == 200 and 'data-recognised="yes"' in html and "互认" in html
    for who, wanted in ((receiving, 200), (outside, 403)):
        async with node.http.get(node.url(f"/api/consultations/{cid}/fhir"),
                                 headers={"Authorization": f"Bearer {await node.token(who)}"}) as resp:
            assert resp.status == wanted, who
            if wanted == 200:
                kinds = [e["resource"]["resourceType"] for e in json.loads(await resp.text())["entry"]]
                assert "Observation" in kinds
    # The receiving hospital's specialists find the patient on their home page.
    status, html = await _page(node, receiving, "/specialist")
    assert status == 200 and f'href="/records/{cid}#results"' in html
    status, html = await _page(node, outside, "/specialist")
    assert status == 200 and f'href="/records/{cid}#results"' not in html
    # The receiving hospital may add what it finds on arrival.
    status, _ = await api(node, "POST", f"/api/patients/{pid}/results", receiving,
                          {"type_code": "6690-2", "performed_on": _today().isoformat(), "value": 7.2})
    assert status == 201
    for who in (outside, "village1", "far.admin"):
        status, body = await api(node, "GET", f"/api/patients/{pid}/results", who)
        assert status == 403 and body["error"]["code"] == "forbidden", who
        status, _ = await api(node, "POST", f"/api/patients/{pid}/results", who,
                              {"type_code": "718-7", "performed_on": _today().isoformat(), "value": 1})
        assert status == 403, who
    status, _ = await _page(node, outside, f"/records/{cid}")
    assert status == 403
    status, body = await api(node, "GET", f"/api/patients/{pid}/results", "alliance.admin")
    assert status == 200 and len(body["results"]) == 2
    status, _ = await api(node, "POST", f"/api/patients/{pid}/results", "alliance.admin",
                          {"type_code": "718-7", "performed_on": _today().isoformat(), "value": 1})
    assert status == 403  # administrators see the record; clinicians write it
    status, _ = await api(node, "GET", "/api/patients/999999/results", "village6")
    assert status == 404
    audit = await store.list_audit(limit=50)
    assert any(e["action"] == "result.view_denied" for e in audit)
    assert any(e["action"] == "result.record" for e in audit)


async def test_the_fhir_export_carries_observations_and_diagnostic_reports(node: Node) -> None:
    cid = await accepted_consultation(node)
    pid = await _patient(node, cid)
    day = _today() - dt.timedelta(days=2)
    await api(node, "POST", f"/api/patients/{pid}/results", "village6",
              {"type_code": "718-7", "performed_on": day.isoformat(), "value": 128, "text": "fasting"})
    await api(node, "POST", f"/api/patients/{pid}/results", "village6",
              {"type_code": "11524-6", "performed_on": day.isoformat(), "text": "Sinus rhythm.",
               "source_name": "Harmony private clinic"})
    async with node.http.get(node.url(f"/api/consultations/{cid}/fhir"),
                             headers={"Authorization": f"Bearer {await node.token('village6')}"}) as resp:
        assert resp.status == 200
        data = json.loads(await resp.text())
    Bundle.model_validate(data)
    for entry in data["entry"]:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
    urls = {e["fullUrl"]: e["resource"] for e in data["entry"]}
    patient = next(u for u, r in urls.items() if r["resourceType"] == "Patient")
    [observation] = [r for r in urls.values() if r["resourceType"] == "Observation"]
    assert observation["status"] == "final"
    assert observation["code"]["coding"] == [{"system": "http://loinc.org", "code": "718-7", "display": "Haemoglobin"}]
    assert observation["code"]["text"] == "血红蛋白"
    assert observation["category"][0]["coding"][0]["code"] == "laboratory"
    assert observation["valueQuantity"] == {"value": 128.0, "unit": "g/L", "system": "http://unitsofmeasure.org",
                                            "code": "g/L"}
    assert observation["effectiveDateTime"] == day.isoformat() and observation["note"] == [{"text": "fasting"}]
    assert observation["subject"] == {"reference": patient}
    # The clinic did the test: its Organization, in the bundle once.
    performer = observation["performer"][0]
    assert urls[performer["reference"]]["name"] == "Lijia Village Clinic"
    assert sum(1 for r in urls.values() if r["resourceType"] == "Organization" and r["name"] == "Lijia Village Clinic") == 1
    [report] = [r for r in urls.values() if r["resourceType"] == "DiagnosticReport"]
    assert report["code"]["coding"][0]["code"] == "11524-6" and report["conclusion"] == "Sinus rhythm."
    assert report["category"][0]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                                  "code": "EC"}
    assert report["performer"] == [{"display": "Harmony private clinic"}]
    assert report["effectiveDateTime"] == day.isoformat() and "issued" in report


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r}
                      for i, r in enumerate(resources)]}


def _observation(code: str, value: float, day: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "effectiveDateTime": day, "valueQuantity": {"value": value, "unit": "%"},
            "performer": [{"display": "Qingshan First People's Hospital"}], **extra}


async def test_a_bundle_is_imported_whole_or_refused_whole(node: Node) -> None:
    cid = await accepted_consultation(node)
    pid = await _patient(node, cid)
    aid = await _alliance_id(node)
    await api(node, "PUT", f"/api/alliances/{aid}/recognised-items", "alliance.admin",
              {"items": [{"type_code": "4548-4", "validity_days": 90}, {"type_code": "36643-5", "validity_days": 180}]})
    day = (_today() - dt.timedelta(days=10)).isoformat()
    hospital = {"resourceType": "Organization", "name": "Heping County People's Hospital"}
    xray = {"resourceType": "DiagnosticReport", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}]},
            "effectiveDateTime": f"{day}T09:30:00+08:00", "conclusion": "No infiltrate.",
            "performer": [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}]}
    good = _bundle(hospital, _observation("4548-4", 6.8, day), xray)

    # One invalid resource (an Observation without its status) among valid ones: nothing is kept.
    broken = _observation("4548-4", 7.1, day)
    del broken["status"]
    for bad, wanted in (
        (_bundle(hospital, _observation("4548-4", 6.8, day), broken), "entry 2 is not a valid FHIR Observation"),
        (_bundle(_observation("4548-4", 6.8, day), {"resourceType": "MedicationRequest", "status": "active"}),
         "entry 1: only Observation"),
        (_bundle(_observation("4548-4", 6.8, day), _observation("9999-9", 1, day)), "entry 1: the code"),
        (_bundle(_observation("36643-5", 6.8, day)), "entry 0: a laboratory value"),
        (_bundle(_observation("4548-4", 6.8, day, performer=[])), "entry 0: the performer"),
        (_bundle(_observation("4548-4", 6.8, "2026")), "entry 0: effectiveDateTime"),
        (_bundle(_observation("4548-4", 6.8, day, status="preliminary")), "entry 0: only a final"),
        ({"resourceType": "Patient"}, "FHIR Bundle"),
        ({**good, "type": "not-a-type"}, "type must be one of"),
        ({**good, "entry": [{**good["entry"][1], "fullUrl": 5}]}, "not a valid FHIR Bundle"),
    ):
        status, body = await api(node, "POST", f"/api/patients/{pid}/results/fhir", "village6", bad)
        assert status == 400 and body["error"]["code"] == "invalid_input", body
        assert wanted in body["error"]["message_en"], body["error"]["message_en"]
        assert body["error"]["message"] != body["error"]["message_en"]  # said in Chinese too
    status, body = await api(node, "GET", f"/api/patients/{pid}/results", "village6")
    assert body["results"] == []

    status, body = await api(node, "POST", f"/api/patients/{pid}/results/fhir", "village1", good)
    assert status == 403
    status, body = await api(node, "POST", f"/api/patients/{pid}/results/fhir", "neuro.chief", good)
    assert status == 201 and body["imported"] == 2
    by_code = {r["type_code"]: r for r in body["results"]}
    assert by_code["4548-4"]["value"] == 6.8 and by_code["4548-4"]["unit"] == "%"
    assert by_code["4548-4"]["source"] == "Qingshan First People's Hospital" and by_code["4548-4"]["source_org_id"]
    assert by_code["36643-5"]["source"] == "Heping County People's Hospital"
    assert by_code["36643-5"]["text"] == "No infiltrate." and by_code["36643-5"]["performed_on"] == day
    assert all(r["origin"] == "imported" and r["recognised"] for r in body["results"])
    status, body = await api(node, "GET", f"/api/patients/{pid}/results", "village6")
    assert len(body["results"]) == 2
    audit = await _store(node).list_audit(limit=20)
    assert any(e["action"] == "result.import" and e["detail"] == {"results": 2} for e in audit)


async def test_the_clinic_records_a_result_on_its_consultation_page(node: Node) -> None:
    cid = await accepted_consultation(node)
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        async with session.get(node.url("/login")) as resp:
            token = csrf_from(await resp.text())
        async with session.post(node.url("/login"), data={"username": "village6", "password": DEMO_PASSWORD,
                                                          "csrf_token": token}) as resp:
            assert resp.status == 200
        page = f"/clinic/consultations/{cid}"
        async with session.get(node.url(page)) as resp:
            html = await resp.text()
        assert 'id="result-form"' in html and 'id="results-empty"' in html
        csrf = csrf_from(html, f"{page}/results")
        form = {"csrf_token": csrf, "type_code": "718-7", "performed_on": _today().isoformat(), "value": "",
                "text": "", "source_name": ""}
        async with session.post(node.url(f"{page}/results"), data=form, allow_redirects=False) as resp:
            assert resp.status == 400
            html = await resp.text()
        assert 'id="value-error"' in html and 'id="result-list"' not in html
        async with session.post(node.url(f"{page}/results"), data={**form, "value": "131,5"},
                                allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].endswith("#results")
        async with session.get(node.url(page)) as resp:
            html = await resp.text()
        assert 'id="result-list"' in html and "131.5" in html and "血红蛋白" in html
    finally:
        await session.close()
    status, body = await api(node, "GET", f"/api/patients/{await _patient(node, cid)}/results", "village6")
    assert status == 200 and [(r["value"], r["consultation_id"]) for r in body["results"]] == [(131.5, cid)]
    # The specialist sees it beside the call, without the form.
    status, html = await _page(node, "neuro.chief", f"/specialist/consultations/{cid}")
    assert status == 200 and "131.5" in html and 'id="result-form"' not in html


async def test_the_alliance_administrator_sets_the_list_on_a_page(node: Node) -> None:
    aid = await _alliance_id(node)
    await _far_admin(node)
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        async with session.get(node.url("/login")) as resp:
            token = csrf_from(await resp.text())
        async with session.post(node.url("/login"), data={"username": "alliance.admin", "password": DEMO_PASSWORD,
                                                          "csrf_token": token}) as resp:
            assert resp.status == 200
        async with session.get(node.url("/admin/recognised-items")) as resp:
            html = await resp.text()
        assert resp.status == 200 and 'name="days_718-7"' in html and "检查检验结果互认" in html
        csrf = csrf_from(html, "/admin/recognised-items")
        form = {"csrf_token": csrf, "alliance_id": str(aid), "on_718-7": "on", "days_718-7": "30",
                "on_24627-2": "on", "days_24627-2": "0"}
        async with session.post(node.url("/admin/recognised-items"), data=form, allow_redirects=False) as resp:
            assert resp.status == 400 and 'id="items-error"' in await resp.text()
        async with session.post(node.url("/admin/recognised-items"), data={**form, "days_24627-2": "180"},
                                allow_redirects=False) as resp:
            assert resp.status == 303
        # Another alliance's list is not this administrator's to set.
        async with session.post(node.url("/admin/recognised-items"), data={**form, "alliance_id": str(aid + 1)},
                                allow_redirects=False) as resp:
            assert resp.status == 403
    finally:
        await session.close()
    status, body = await api(node, "GET", f"/api/alliances/{aid}/recognised-items", "village6")
    assert status == 200
    assert sorted((i["type_code"], i["validity_days"]) for i in body["items"]) == [("24627-2", 180), ("718-7", 30)]
    audit = await _store(node).list_audit(limit=20)
    assert any(e["action"] == "result.recognised_items" and e["target"] == f"alliance:{aid}" for e in audit)
