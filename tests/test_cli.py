"""The command line: migrate, create-user, check, audit verify, and serve --demo on the embedded default."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pyotp

from tests.conftest import PG_URL, create_pg_database
from tests.support.processes import ROOT, ServerProcess, free_port


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "telehealth", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_help_of_every_command_is_useful() -> None:
    top = run("--help")
    assert top.returncode == 0
    for command in ("serve", "migrate", "create-user", "check", "audit", "reset-second-factor"):
        assert command in top.stdout
        assert run(command, "--help").returncode == 0
    assert "--database-url" in run("serve", "--help").stdout


def test_migrate_create_user_and_check_on_sqlite(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    first = run("migrate", *data)
    assert first.returncode == 0 and "schema: empty ->" in first.stdout
    second = run("migrate", *data)
    assert second.returncode == 0 and re.search(r"schema: (\w+) -> \1", second.stdout)
    created = run("create-user", "root", "--role", "admin", "--name", "Root", "--system-admin", *data,
                  env={"TELEHEALTH_NEW_PASSWORD": "a-long-password-26"})
    assert created.returncode == 0 and "created admin root" in created.stdout
    again = run("create-user", "root", "--role", "admin", "--name", "Root", "--system-admin", *data,
                env={"TELEHEALTH_NEW_PASSWORD": "a-long-password-26"})
    assert again.returncode == 1 and "taken" in again.stderr
    weak = run("create-user", "x", "--role", "admin", "--name", "X", "--system-admin", *data,
               env={"TELEHEALTH_NEW_PASSWORD": "short"})
    assert weak.returncode == 2 and "at least 10" in weak.stderr
    nowhere = run("create-user", "y", "--role", "clinic_doctor", "--name", "Y", "--organisation", "Nowhere", *data,
                  env={"TELEHEALTH_NEW_PASSWORD": "a-long-password-26"})
    assert nowhere.returncode == 2 and "no organisation named" in nowhere.stderr
    check = run("check", *data)
    assert check.returncode == 0, check.stdout
    assert "database: reachable" in check.stdout and "broker: in-process" in check.stdout
    verify = run("audit", "verify", *data)
    assert verify.returncode == 0 and "intact" in verify.stdout
    reset = run("reset-second-factor", "root", *data)
    assert reset.returncode == 0 and "root had no second factor" in reset.stdout
    assert run("reset-second-factor", "nobody", *data).returncode == 2


def test_check_reports_unreachable_services(tmp_path: Path) -> None:
    result = run("check", "--database-url", "postgresql+asyncpg://postgres@127.0.0.1:1/none",
                 "--redis-url", "redis://127.0.0.1:1/0")
    assert result.returncode == 1
    assert "database: UNREACHABLE" in result.stdout and "redis: UNREACHABLE" in result.stdout


def test_bad_configuration_is_reported_clearly(tmp_path: Path) -> None:
    result = run("check", env={"TELEHEALTH_MATCHING__RING_TIMEOUT_S": "soon"})
    assert result.returncode == 2
    assert "matching.ring_timeout_s: expected a number" in result.stderr


def test_production_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    result = run("serve", "--data-dir", str(tmp_path), "--port", str(free_port()),
                 env={"TELEHEALTH_MODE": "production"})
    assert result.returncode == 2 and "TELEHEALTH_SECRET_KEY" in result.stderr


def test_migrate_on_postgresql_when_configured() -> None:
    if not PG_URL:
        return

    async def go() -> None:
        url, drop = await create_pg_database()
        try:
            result = run("migrate", "--database-url", url)
            assert result.returncode == 0 and re.search(r"schema: empty -> \w+", result.stdout)
            assert run("check", "--database-url", url).returncode == 0
        finally:
            await drop()

    asyncio.run(go())


async def test_serve_demo_prints_logins_and_every_role_lands_home(tmp_path: Path) -> None:
    node = ServerProcess("demo", free_port(), {"TELEHEALTH_SECRET_KEY": ""}, tmp_path, "--demo", "--data-dir",
                         str(tmp_path / "data"))
    try:
        await node.wait_ready()
        await asyncio.sleep(0.2)
        banner = node.log_path.read_text()
        assert "demo logins (password for all: demo-pass-2026)" in banner
        assert "generated a random one" in banner
        for username, home in (("village1", "/clinic"), ("cardio.chief", "/specialist"), ("admin", "/admin")):
            assert username in banner
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                page = await (await http.get(node.base + "/login")).text()
                token = re.search(r'action="/login".*?name="csrf_token" value="([^"]*)"', page, re.S)
                assert token
                resp = await http.post(node.base + "/login", data={
                    "username": username, "password": "demo-pass-2026", "csrf_token": token.group(1)})
                if username == "admin":
                    # Administrators sign in with a second factor by default: the demo administrator, who
                    # has none yet, sets it up first, as the authenticator app would.
                    assert resp.status == 200 and str(resp.url).endswith("/login/enrol")
                    page = await resp.text()
                    secret = re.search(r'id="secret"[^>]*>([A-Z2-7 ]+)</p>', page)
                    form = re.search(r'action="/login/enrol".*?name="csrf_token" value="([^"]*)"', page, re.S)
                    assert secret and form
                    resp = await http.post(node.base + "/login/enrol", data={
                        "code": pyotp.TOTP(secret.group(1).replace(" ", "")).now(), "csrf_token": form.group(1)})
                    assert resp.status == 200 and "recovery-codes" in await resp.text()
                    resp = await http.get(node.base + home)
                assert resp.status == 200 and str(resp.url).endswith(home)
        assert (tmp_path / "data" / "telehealth.sqlite3").exists()
    finally:
        assert node.stop() == 0


def test_a_clinic_doctor_cannot_be_created_at_a_hospital(tmp_path: Path) -> None:
    from telehealth.domain import OrgLevel
    from telehealth.records.db import create_engine
    from telehealth.records.store import Store

    data = ["--data-dir", str(tmp_path)]
    assert run("migrate", *data).returncode == 0

    async def seed() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path.resolve() / 'telehealth.sqlite3'}")
        try:
            store = Store(engine)
            await store.insert_organisation("Heping County People's Hospital", OrgLevel.county_hospital,
                                            alliance_id=None)
            await store.insert_organisation("Lijia Village Clinic", OrgLevel.village_clinic, alliance_id=None)
        finally:
            await engine.dispose()

    asyncio.run(seed())
    env = {"TELEHEALTH_NEW_PASSWORD": "a-long-password-26"}
    at_hospital = run("create-user", "doc", "--role", "clinic_doctor", "--name", "Doc", "--organisation",
                      "Heping County People's Hospital", *data, env=env)
    assert at_hospital.returncode == 1 and "village clinic or township centre" in at_hospital.stderr
    at_clinic = run("create-user", "doc", "--role", "clinic_doctor", "--name", "Doc", "--organisation",
                    "Lijia Village Clinic", *data, env=env)
    assert at_clinic.returncode == 0 and "created clinic_doctor doc" in at_clinic.stdout
