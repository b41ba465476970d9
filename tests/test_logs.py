"""Structured logs: one JSON object per line carrying the request, connection, command, consultation and
session ids of what it belongs to; a whole consultation leaves no patient data in any line."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

from yarl import URL

from telehealth import logs
from telehealth.records.consent import synthetic_signature
from telehealth.server.app import create_app
from tests.conftest import TEST_SECRET, make_settings
from tests.support.processes import ServerProcess, free_port
from tests.support.wsclient import Node


def test_a_json_line_carries_the_bound_ids() -> None:
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("telehealth.test", logging.WARNING, __file__, 1, "ended %s", ("x",), None)
    with logs.bound(request_id="abc123", consultation_id=42):
        with logs.bound(session_id=7):
            line = json.loads(formatter.format(record))
        outer = json.loads(formatter.format(record))
    after = json.loads(formatter.format(record))
    assert line["msg"] == "ended x" and line["level"] == "warning" and line["logger"] == "telehealth.test"
    assert (line["request_id"], line["consultation_id"], line["session_id"]) == ("abc123", 42, 7)
    assert "session_id" not in outer and outer["consultation_id"] == 42
    assert "request_id" not in after
    assert logs.new_request_id("lb-7f3a") == "lb-7f3a" and logs.new_request_id("bad id\n") != "bad id\n"


async def test_a_consultation_through_a_json_logging_node(tmp_path: Path) -> None:
    env = {"TELEHEALTH_SECRET_KEY": TEST_SECRET, "TELEHEALTH_PROFILE": "test", "TELEHEALTH_LOG_FORMAT": "json",
           "TELEHEALTH_LOG_LEVEL": "DEBUG"}
    node_proc = ServerProcess("log-node", free_port(), env, tmp_path, "--data-dir", str(tmp_path), "--demo")
    try:
        await node_proc.wait_ready()
        node = Node(node_proc.base)
        try:
            resp = await node.http.get(node.url("/api/me"), headers={"X-Request-ID": "edge-4711"})
            assert resp.status == 401 and resp.headers["X-Request-ID"] == "edge-4711"
            specialist = await node.connect("cardio.chief")
            await specialist.ok("presence.set", status="available")
            clinic = await node.connect("village1")
            created = await clinic.ok("consultation.create", patient={
                "name": "Ouyang Xiuzhen", "sex": "female", "birth_year": 1948, "local_id": "ID-998877"},
                specialty="cardiology", urgency="urgent", chief_complaint="crushing chest pain radiating left",
                consent={"by": "patient", "name": "Ouyang Xiuzhen", "signature": synthetic_signature()})
            cid = created["consultation"]["id"]
            await specialist.event("offer", consultation_id=cid)
            sid = (await specialist.ok("offer.accept", consultation_id=cid))["session_id"]
            await specialist.ok("session.join", consultation_id=cid)
            await clinic.ok("session.join", consultation_id=cid)
            await specialist.ok("session.hangup", session_id=sid)
            # A command that fails is logged with its ids.
            assert await clinic.error("session.hangup", session_id=sid) in ("session_ended", "forbidden")
        finally:
            await node.close()
    finally:
        node_proc.stop()
    lines = [line for line in node_proc.log_path.read_text().splitlines() if line.startswith("{")]
    parsed = [json.loads(line) for line in lines]
    assert len(parsed) > 5
    access = [p for p in parsed if p["logger"] == "telehealth.access"]
    assert any(p.get("request_id") == "edge-4711" and p["status"] == 401 and p["path"] == "/api/me" for p in access)
    assert all(p.get("node") == "log-node" for p in parsed if p["logger"].startswith("telehealth"))
    with_ids = [p for p in parsed if p.get("connection_id") and p.get("command")]
    assert any(p.get("consultation_id") == cid or p.get("session_id") == sid for p in with_ids), with_ids[:5]
    text = node_proc.log_path.read_text()
    for secret in ("Ouyang", "Xiuzhen", "ID-998877", "crushing chest pain"):
        assert secret not in text


async def test_the_text_format_keeps_a_logged_value_on_its_line(aiohttp_client: Any, tmp_path: Path) -> None:
    """A path that decodes to a newline, an escape sequence and a right-to-left override cannot forge a
    record or recolour the terminal: the access line stays one line, its controls written as escapes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    access = logging.getLogger("telehealth.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        client = await aiohttp_client(create_app(make_settings(tmp_path)))
        forged = "/api/x%0A2026-01-01%2000:00:00,000%20INFO%20telehealth.auth:%20login%20ok%1B[2J%E2%80%AEfdp.exe"
        resp = await client.get(URL(forged, encoded=True))
        assert resp.status == 404
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "\x1b" not in lines[0] and "\u202e" not in lines[0]
    assert "/api/x\\n2026-01-01 00:00:00,000 INFO telehealth.auth: login ok\\x1b[2J\\u202efdp.exe 404" in lines[0]


def test_a_traceback_in_the_text_format_is_indented_below_its_record() -> None:
    formatter = logs.TextFormatter()
    try:
        raise ValueError("bad value\n2026-01-01 00:00:00,000 INFO forged: record\x1b[31m")
    except ValueError:
        record = logging.LogRecord("telehealth.test", logging.ERROR, __file__, 1, "failed %s", ("x\ry",),
                                   sys.exc_info())
    text = formatter.format(record)
    first, *rest = text.split("\n")
    assert first.endswith("telehealth.test: failed x\\ry") and rest
    assert all(line.startswith("  ") for line in rest) and "\x1b" not in text
    assert "  2026-01-01 00:00:00,000 INFO forged: record\\x1b[31m" in rest
