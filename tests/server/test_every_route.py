"""Every route, read from the application itself so that a route added later is held to the same rules, on
SQLite and PostgreSQL: each JSON route and WebSocket command refuses NaN, Infinity, NUL characters and unpaired
surrogates at parsing (400 / invalid_message for whoever may call it, never a success, never a 500), and no
page or API read answers 500 to a filter out of range."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from telehealth.records.db import create_engine, migrate
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server import keys
from telehealth.signaling.commands import COMMANDS
from tests.conftest import make_settings
from tests.records.test_notes import accepted_consultation
from tests.support.wsclient import Node, serve

# The raw bodies, as a client could send them (json.dumps would refuse to write some of them).
HOSTILE = {
    "NaN": b'{"x": NaN}', "Infinity": b'{"x": -Infinity}', "too large": b'{"x": 1e400}',
    "NUL": b'{"x": "a\\u0000b"}', "NUL key": b'{"\\u0000": 1}', "surrogate": b'{"x": "\\ud800"}',
    "surrogate key": b'{"\\udfff": 1}',
}
CALLERS = ("village6", "neuro.chief", "admin", "alliance.admin")
PAST_2_63 = "9223372036854775808"
# Filters as the pages and the API name them, each out of range.
OUT_OF_RANGE = [f"page={PAST_2_63}", f"limit={PAST_2_63}", f"offset=-{PAST_2_63}", "from=9999-12-31", "to=9999-12-31",
                f"clinic={PAST_2_63}", f"specialist={PAST_2_63}", "day=9999-12-31"]
# Routes that read no JSON body: their input is the path alone, or a multipart upload.
NO_JSON_BODY = {("POST", "/api/consultations/{consultation_id}/attachments"),
                ("POST", "/api/referrals/{referral_id}/tasks/{task_id}/done"),
                ("POST", "/api/admin/agreements/{agreement_id}/approve"),
                ("POST", "/api/appointments/{appointment_id}/accept"),
                ("POST", "/api/appointments/{appointment_id}/on-demand")}


@pytest.fixture
async def node(tmp_path: Path, database_url: str) -> AsyncIterator[Node]:
    if database_url.startswith("postgresql"):
        engine = create_engine(database_url)
        await migrate(engine)
        await engine.dispose()
    async with serve(make_settings(tmp_path, database_url=database_url)) as n:
        yield n


async def test_every_json_route_refuses_them_at_parsing(node: Node) -> None:
    assert not isinstance(node.server, str)
    cid = await accepted_consultation(node)
    # An agreement in effect, between the demo's village clinic and a hospital of the other alliance, for
    # the routes that end or decline one (its administrators may, so their bodies are read).
    store = node.server.app[keys.STORE]
    clinic, hospital = await store.get_user_by_username("village6"), await store.get_organisation_by_name(
        "Songxi County People's Hospital")
    assert clinic is not None and clinic.organisation_id is not None and hospital is not None
    now = dt.datetime.now(dt.UTC)
    agreement = await store.insert_agreement(clinic.organisation_id, hospital.id, valid_from=now, valid_to=None,
                                             created_by=None, now=now)
    tokens = {}
    for username in CALLERS:
        resp = await node.http.post(node.url("/api/tokens"), json={"username": username, "password": DEMO_PASSWORD})
        tokens[username] = (await resp.json())["token"]
    routes = sorted({(r.method, r.resource.canonical) for r in node.server.app.router.routes()
                     if r.method in ("POST", "PUT", "PATCH") and r.resource is not None
                     and r.resource.canonical.startswith("/api/")} - NO_JSON_BODY)
    assert len(routes) >= 15, routes  # the API's routes were found
    wrong: dict[str, object] = {}
    for method, route in routes:
        url = re.sub(r"\{[a-z_]+\}", "1", route.replace("{consultation_id}", str(cid))
                     .replace("{agreement_id}", str(agreement)))
        for name, body in HOSTILE.items():
            answers = []
            for token in tokens.values():
                resp = await node.http.request(method, node.url(url), data=body, headers={
                    "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                code = (await resp.json())["error"]["code"] if resp.status >= 400 else None
                answers.append((resp.status, code))
            # Refused at parsing for whoever may call it; others are refused before their body is read.
            if (400, "invalid_message") not in answers or any(s < 400 or s >= 500 for s, _ in answers):
                wrong[f"{method} {route} {name}"] = answers
    assert wrong == {}


async def test_every_websocket_command_refuses_them_at_parsing(node: Node) -> None:
    """Before any command runs, whoever sends it: the message as a whole is refused."""
    peers = [await node.connect(username) for username in ("village6", "neuro.chief")]
    wrong: dict[str, object] = {}
    for command in COMMANDS:
        for name, body in HOSTILE.items():
            for peer in peers:
                peer.next_id += 1
                await peer.raw(f'{{"id": {peer.next_id}, "type": "{command.name}", ' + body.decode()[1:])
                reply = await peer.result(peer.next_id)
                if reply.get("success") or reply["error"]["code"] != "invalid_message":
                    wrong[f"{command.name} {name}"] = reply
    assert wrong == {}
    for peer in peers:  # and the connections are still good for what is well formed
        await peer.ok("ping")


async def test_no_read_answers_500_to_a_filter_out_of_range(node: Node) -> None:
    assert not isinstance(node.server, str)
    cid = await accepted_consultation(node)
    tokens = {}
    for username in CALLERS:
        resp = await node.http.post(node.url("/api/tokens"), json={"username": username, "password": DEMO_PASSWORD})
        tokens[username] = (await resp.json())["token"]
    routes = sorted({r.resource.canonical for r in node.server.app.router.routes()
                     if r.method == "GET" and r.resource is not None and not r.resource.canonical.startswith("/static")})
    assert "/admin/consultations.csv" in routes and "/api/admin/statistics" in routes
    failed = []
    for route in routes:
        url = re.sub(r"\{[a-z_]+\}", "1", route.replace("{consultation_id}", str(cid)))
        for query in OUT_OF_RANGE:
            for username, token in tokens.items():
                resp = await node.http.get(node.url(f"{url}?{query}"), headers={"Authorization": f"Bearer {token}"},
                                           allow_redirects=False)
                if resp.status >= 500:
                    failed.append((route, query, username, resp.status))
    assert failed == []
