"""PostgreSQL stopped under a running node: requests that need it get a prompt 503 `unavailable` (never a
hang, never a half-written record), the WebSocket stays up, and when the database returns a note draft
saved again lands and the consultation carries on. The test runs its own PostgreSQL on a free port."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from telehealth.records.consent import synthetic_signature
from tests.conftest import TEST_SECRET
from tests.support.processes import ServerProcess, free_port
from tests.support.wsclient import Node

pytestmark = pytest.mark.slow

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


class Postgres:
    """A throwaway PostgreSQL cluster (as the postgres user when the tests run as root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="th-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run([f"{BIN[-1]}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"])

    def _cmd(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args

    def _run(self, args: list[str]) -> None:
        subprocess.run(self._cmd(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.proc = subprocess.Popen(self._cmd([
            f"{BIN[-1]}/postgres", "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if subprocess.run([f"{BIN[-1]}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port)],
                              stdout=subprocess.DEVNULL).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("the test's PostgreSQL did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: smart shutdown would wait for clients; use fast below
            subprocess.run(self._cmd([f"{BIN[-1]}/pg_ctl", "-D", str(self.data), "stop", "-m", "immediate"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.proc.wait(30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    if not BIN or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    pg = Postgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.remove()


async def test_the_database_stops_and_comes_back(postgres: Postgres, tmp_path: Path) -> None:
    env = {"TELEHEALTH_SECRET_KEY": TEST_SECRET, "TELEHEALTH_PROFILE": "test"}
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telehealth", "migrate", "--database-url", postgres.url, env={**os.environ, **env})
    assert await migrate.wait() == 0
    server = ServerProcess("pg-node", free_port(), env, tmp_path, "--database-url", postgres.url,
                           "--data-dir", str(tmp_path), "--demo")
    node = Node(server.base)
    try:
        await server.wait_ready()
        specialist = await node.connect("neuro.chief")
        await specialist.ok("presence.set", status="available")
        clinic = await node.connect("village4")
        created = await clinic.ok("consultation.create", patient={"name": "Lu Qing", "sex": "male",
                                                                  "birth_year": 1944},
                                  specialty="neurology", urgency="urgent", chief_complaint="weak left arm",
                                  consent={"by": "patient", "name": "Lu Qing", "signature": synthetic_signature()})
        cid = created["consultation"]["id"]
        await specialist.event("offer", consultation_id=cid)
        await specialist.ok("offer.accept", consultation_id=cid)
        auth = {"Authorization": f"Bearer {await node.token('neuro.chief')}"}
        url = node.url(f"/api/consultations/{cid}/note")
        draft = {"assessment": "Possible transient ischaemic attack.", "plan": "Aspirin; CT today.",
                 "disposition": {"kind": "manage_locally"}}
        async with node.http.put(url, json=draft, headers=auth) as resp:
            assert resp.status == 200

        postgres.stop()
        started = time.monotonic()
        later = {**draft, "plan": "Aspirin; CT today; admit if symptoms return."}
        async with node.http.put(url, json=later, headers=auth, timeout=aiohttp.ClientTimeout(total=20)) as resp:
            assert resp.status == 503 and (await resp.json())["error"]["code"] == "unavailable"
        async with node.http.get(node.url("/readyz")) as resp:
            assert resp.status == 503 and (await resp.json())["checks"]["database"].startswith("unavailable")
        # Over the WebSocket: a clear error code, and the connection stays.
        assert await clinic.error("consultation.create", patient={"name": "Lu Qing", "sex": "male",
                                                                  "birth_year": 1944},
                                  specialty="neurology", urgency="routine", chief_complaint="follow-up",
                                  consent={"by": "patient", "name": "Lu Qing",
                                           "signature": synthetic_signature()}) == "unavailable"
        assert time.monotonic() - started < 15  # answers, not hangs

        postgres.start()
        for _ in range(50):  # the pool notices the database is back on its own
            async with node.http.put(url, json=later, headers=auth) as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.2)
        assert resp.status == 200
        async with node.http.get(url, headers=auth) as resp:
            note = (await resp.json())["note"]
        assert note["plan"] == later["plan"]
        async with node.http.get(node.url(f"/api/consultations/{cid}"), headers=auth) as resp:
            assert (await resp.json())["consultation"]["state"] == "in_call"
        # The clinic's WebSocket survived the outage and works again.
        watched = await clinic.ok("consultation.watch", consultation_id=cid)
        assert watched["consultation"]["state"] == "in_call"
    finally:
        await node.close()
        server.stop()
