"""Three nodes behind nginx (the project's own configuration, Debian's nginx), sharing Redis and the
database: a whole consultation through the balancer, and a node killed in the middle of a real call."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from telehealth.records.consent import synthetic_signature
from tests.conftest import PG_URL, TEST_SECRET, create_pg_database
from tests.support.processes import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS_URL = "redis://127.0.0.1:6379/0"
CREATE = {
    "patient": {"name": "Zheng Hui", "sex": "male", "birth_year": 1963}, "specialty": "cardiology",
    "urgency": "urgent", "chief_complaint": "palpitations and dizziness",
    "consent": {"by": "patient", "name": "Zheng Hui", "signature": synthetic_signature()},
}


def render_config(upstream_ports: list[int], listen: int, work: Path) -> Path:
    """The repository's nginx configuration with this test's ports, inside a minimal nginx.conf."""
    site = (ROOT / "config" / "nginx" / "telehealth.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstream_ports)
    site, n = re.subn(r"(?m)^    server 127\.0\.0\.1:\d+ [^\n]*\n", "", site)
    assert n == 3, "the upstream block changed shape"
    site = site.replace("upstream telehealth_nodes {\n", "upstream telehealth_nodes {\n" + servers, 1)
    site = site.replace("    listen 8080;", f"    listen 127.0.0.1:{listen};", 1)
    (work / "telehealth.conf").write_text(site)
    main = work / "nginx.conf"
    main.write_text(f"""daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    include {work}/telehealth.conf;
}}
""")
    return main


def start_nginx(conf: Path, work: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([NGINX, "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)


@dataclass
class Cluster:
    base: str
    nodes: list[ServerProcess]
    nginx: subprocess.Popen[bytes]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    if not Path(NGINX).exists():
        pytest.skip("Debian's nginx is not installed (.ci/run installs it)")
    drop = None
    if PG_URL:
        db_url, drop = await create_pg_database()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "telehealth", "migrate", "--database-url", db_url,
            env={**os.environ, "TELEHEALTH_PROFILE": "test"})
        assert await proc.wait() == 0
    else:
        db_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    env = {"TELEHEALTH_SECRET_KEY": TEST_SECRET, "TELEHEALTH_PROFILE": "test",
           "TELEHEALTH_REDIS_PREFIX": f"lb{uuid.uuid4().hex[:8]}", "TELEHEALTH_MATCHING__RING_TIMEOUT_S": "15"}
    common = ("--database-url", db_url, "--redis-url", REDIS_URL, "--data-dir", str(tmp_path), "--demo")
    nodes: list[ServerProcess] = []
    nginx = None
    try:
        for name in ("node-1", "node-2", "node-3"):  # the first seeds the demo alliance
            node = ServerProcess(name, free_port(), env, tmp_path, *common)
            nodes.append(node)
            await node.wait_ready()
        port = free_port()
        work = tmp_path / "nginx"
        work.mkdir()
        conf = render_config([n.port for n in nodes], port, work)
        nginx = start_nginx(conf, work)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(base + "/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"nginx did not come up: {(work / 'error.log').read_text()}")
        yield Cluster(base, nodes, nginx)
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
        for node in nodes:
            node.stop()
        if drop is not None:
            await drop()


async def test_a_whole_consultation_through_the_balancer(cluster: Cluster) -> None:
    from telehealth.media import TelehealthClient
    from telehealth.records.seed import DEMO_PASSWORD

    specialist = await TelehealthClient.login(cluster.base, "neuro.chief", DEMO_PASSWORD)
    clinic = await TelehealthClient.login(cluster.base, "village3", DEMO_PASSWORD)
    seen_nodes: set[str] = set()
    try:
        await specialist.call("presence.set", status="available")
        created = await clinic.call("consultation.create", **{**CREATE, "specialty": "neurology"})
        cid = created["consultation"]["id"]
        await specialist.next_event("offer", consultation_id=cid)
        sid = (await specialist.call("offer.accept", consultation_id=cid))["session_id"]
        await clinic.next_event("session_ready", consultation_id=cid)
        await specialist.call("session.join", consultation_id=cid)
        await clinic.call("session.join", consultation_id=cid)
        await specialist.call("session.signal", session_id=sid, kind="offer", payload={"sdp": "v=0\r\n"})
        assert (await clinic.next_event("signal", session_id=sid))["kind"] == "offer"
        await specialist.call("session.hangup", session_id=sid)
        await clinic.next_event("session_ended", session_id=sid)
        # The report over HTTP, each request free to land on any node.
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {specialist.token}"}
            note = {"assessment": "Benign paroxysmal positional vertigo.", "plan": "Epley manoeuvre; review in a week.",
                    "disposition": {"kind": "manage_locally"}}
            for _ in range(3):
                async with http.put(f"{cluster.base}/api/consultations/{cid}/note", json=note, headers=auth) as resp:
                    assert resp.status == 200, await resp.text()
            async with http.post(f"{cluster.base}/api/consultations/{cid}/note/sign", json={}, headers=auth) as resp:
                assert resp.status == 200, await resp.text()
            clinic_auth = {"Authorization": f"Bearer {clinic.token}"}
            async with http.post(f"{cluster.base}/api/consultations/{cid}/decision", headers=clinic_auth,
                                 json={"decision": "accept_advice"}) as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"{cluster.base}/api/consultations/{cid}", headers=clinic_auth) as resp:
                assert (await resp.json())["consultation"]["state"] == "closed"
            # Requests really were spread over the nodes.
            for _ in range(9):
                async with http.get(f"{cluster.base}/readyz") as resp:
                    seen_nodes.add((await resp.json()).get("node", ""))
        assert len(seen_nodes) == 3, seen_nodes
    finally:
        await specialist.close()
        await clinic.close()


@pytest.mark.media
async def test_a_node_killed_mid_call(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice

    from telehealth.media import CallPeer, TelehealthClient
    from telehealth.records.seed import DEMO_PASSWORD

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    specialist = await TelehealthClient.login(cluster.base, "cardio.chief", DEMO_PASSWORD)
    clinic = await TelehealthClient.login(cluster.base, "village2", DEMO_PASSWORD)
    peers: list[CallPeer] = []
    others: list[TelehealthClient] = []
    try:
        await specialist.call("presence.set", status="available")
        cid = (await clinic.call("consultation.create", **CREATE))["consultation"]["id"]
        await specialist.next_event("offer", consultation_id=cid)
        sid = (await specialist.call("offer.accept", consultation_id=cid))["session_id"]
        await clinic.next_event("session_ready", consultation_id=cid)
        peers = [CallPeer(specialist, cid), CallPeer(clinic, cid)]
        for peer in peers:
            await peer.join()
        for peer in peers:
            assert await peer.wait_frames("video", 10) >= 10

        # Kill the node the clinic's WebSocket went through (SIGKILL: no goodbye to anyone).
        victim = next(n for n in cluster.nodes if n.name == clinic.node)
        victim.kill()
        before = [peer.frames["video"] for peer in peers]
        # Media goes peer to peer: it keeps flowing while the clients find another node.
        for peer, seen in zip(peers, before, strict=True):
            assert await peer.wait_frames("video", seen + 20) >= seen + 20
        for client in {id(c): c for c in (clinic, specialist)}.values():
            if not client.connected:
                await reconnect(client)
        resumed = await peers[1].resume()
        assert resumed["session_id"] == sid and resumed["resumed"] is True
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{cluster.base}/api/consultations/{cid}",
                                headers={"Authorization": f"Bearer {clinic.token}"}) as resp:
                assert (await resp.json())["consultation"]["state"] == "in_call"
        # The queue keeps being served by the surviving nodes.
        other_specialist = await TelehealthClient.login(cluster.base, "paeds.assoc", DEMO_PASSWORD)
        other_clinic = await TelehealthClient.login(cluster.base, "village5", DEMO_PASSWORD)
        others = [other_specialist, other_clinic]
        await other_specialist.call("presence.set", status="available")
        fresh = await other_clinic.call("consultation.create", **{**CREATE, "specialty": "paediatrics"})
        offer = await other_specialist.next_event("offer", consultation_id=fresh["consultation"]["id"])
        assert offer["consultation_id"] == fresh["consultation"]["id"]
        await peers[0].hangup()
        ended = await clinic.next_event("session_ended", session_id=sid)
        assert ended["reason"] == "hangup" and ended["consultation_state"] == "ended"
    finally:
        for peer in peers:
            await peer.close()
        for client in (specialist, clinic, *others):
            await client.close()


async def reconnect(client: object) -> None:
    from telehealth.media import TelehealthClient

    assert isinstance(client, TelehealthClient)
    for _ in range(50):
        try:
            await client.connect()
            return
        except (TimeoutError, aiohttp.ClientError):
            await asyncio.sleep(0.2)
    raise AssertionError("could not reconnect through the balancer")
