"""The JSON API against its own OpenAPI document (served at /api/openapi.json): schemathesis generates
requests from the schema for every operation and checks each answer: no server error, a documented status
code, the documented content type, a body matching the schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from telehealth.records.consent import synthetic_signature
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server.openapi import document
from tests.conftest import TEST_SECRET
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.slow

schema = schemathesis.openapi.from_dict(document())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class Api:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.tokens: dict[str, str] = {}
        self.consultation = 0
        self.attachment = 0


async def _prepare(api: Api) -> None:
    async with aiohttp.ClientSession() as http:
        for user in ("village1", "cardio.chief", "alliance.admin"):
            async with http.post(api.server.base + "/api/tokens",
                                 json={"username": user, "password": DEMO_PASSWORD}) as resp:
                api.tokens[user] = (await resp.json())["token"]
        async with http.post(api.server.base + "/api/consultations", headers={
                "Authorization": f"Bearer {api.tokens['village1']}"}, json={
                "patient": {"name": "Han Mei", "sex": "female", "birth_year": 1966}, "specialty": "cardiology",
                "urgency": "routine", "chief_complaint": "palpitations",
                "consent": {"by": "patient", "name": "Han Mei", "signature": synthetic_signature()}}) as resp:
            assert resp.status == 201, await resp.text()
            api.consultation = (await resp.json())["consultation"]["id"]
        async with http.get(f"{api.server.base}/api/consultations/{api.consultation}/attachments",
                            headers={"Authorization": f"Bearer {api.tokens['village1']}"}) as resp:
            api.attachment = (await resp.json())["attachments"][0]["id"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("openapi")
    env = {"TELEHEALTH_SECRET_KEY": TEST_SECRET, "TELEHEALTH_PROFILE": "test"}
    server = ServerProcess("openapi-node", free_port(), env, folder, "--data-dir", str(folder), "--demo")
    try:
        asyncio.run(server.wait_ready())
        live = Api(server)
        asyncio.run(_prepare(live))
        yield live
    finally:
        server.stop()


def test_the_served_document_is_the_one_tested(api: Api) -> None:
    async def fetch() -> Any:
        async with aiohttp.ClientSession() as http:
            async with http.get(api.server.base + "/api/openapi.json") as resp:
                return await resp.json()

    assert asyncio.run(fetch()) == document()


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_schema(case: Any, api: Api) -> None:
    path = case.path
    user = "alliance.admin" if path.startswith("/api/admin") else \
        "cardio.chief" if any(p in path for p in ("/note", "/slots", "/booking")) and case.method != "GET" else \
        "village1"
    params = case.path_parameters or {}
    # Half the generated ids are swapped for real records, so the handlers get past "not found".
    for name, real in (("consultation_id", api.consultation), ("attachment_id", api.attachment)):
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value % 2 == 0:
            params[name] = real
    case.call_and_validate(base_url=api.server.base, headers={"Authorization": f"Bearer {api.tokens[user]}"},
                           checks=CHECKS)
