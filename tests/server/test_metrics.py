"""/metrics in Prometheus text format, with the series operators watch, after some real traffic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from telehealth.records.consent import synthetic_signature
from tests.conftest import make_settings
from tests.support.wsclient import Node, serve

SIGNATURE = synthetic_signature()
CREATE = {
    "patient": {"name": "Tang Li", "sex": "female", "birth_year": 1977}, "specialty": "paediatrics",
    "urgency": "emergency", "chief_complaint": "child with febrile seizure",
    "consent": {"by": "guardian", "name": "Tang Wen", "relation": "father", "signature": SIGNATURE},
}


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with serve(make_settings(tmp_path)) as n:
        yield n


async def scrape(node: Node) -> dict[str, list[tuple[dict[str, str], float]]]:
    async with node.http.get(node.url("/metrics")) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append((sample.labels, sample.value))
    return series


def value(series: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lab, v in series.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


async def test_metrics_expose_queue_presence_sessions_latencies_and_errors(node: Node) -> None:
    clinic = await node.connect("village5")
    for _ in range(2):
        await clinic.ok("consultation.create", **CREATE)
    await clinic.error("no.such.command")
    series = await scrape(node)
    assert value(series, "telehealth_queue_length", specialty="paediatrics", urgency="emergency") == 2
    assert value(series, "telehealth_websocket_connections") == 1
    assert value(series, "telehealth_errors_total", code="unknown_command") == 1

    specialist = await node.connect("paeds.assoc")
    await specialist.ok("presence.set", status="available")
    offer = await specialist.event("offer")
    sid = (await specialist.ok("offer.accept", consultation_id=offer["consultation_id"]))["session_id"]
    series = await scrape(node)
    assert value(series, "telehealth_queue_length", specialty="paediatrics") == 1
    assert value(series, "telehealth_active_sessions") == 1
    assert value(series, "telehealth_offer_latency_seconds_count") >= 1
    assert value(series, "telehealth_claim_latency_seconds_count") == 1
    assert value(series, "telehealth_specialists", status="busy") == 1
    await specialist.ok("session.hangup", session_id=sid)
    series = await scrape(node)
    assert value(series, "telehealth_active_sessions") == 0
    assert value(series, "telehealth_websocket_messages_total") >= 5
