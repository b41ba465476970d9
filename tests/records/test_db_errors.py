"""A database error raised by a statement carrying patient data leaves none of it in the log: not the
statement's parameters, not what the database says about the failing row; on SQLite and on PostgreSQL,
provoked through the real server and read in the captured log in every format."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from telehealth import logs
from telehealth.records.consent import synthetic_signature
from telehealth.records.db import create_engine, migrate
from telehealth.records.seed import DEMO_PASSWORD
from telehealth.server.app import create_app
from tests.conftest import make_settings

PATIENT_NAME = "Zhangsun Wuji"
LOCAL_ID = "ID-5550123"


async def refuse_this_patient(database_url: str) -> None:
    """A rule of the test's own in the database: inserting this patient fails, and the database says why
    in its own words (PostgreSQL: a check constraint, whose DETAIL prints the failing row)."""
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            if database_url.startswith("postgresql"):
                await conn.execute(sa.text(
                    f"ALTER TABLE patients ADD CONSTRAINT ck_test_refused CHECK (name <> '{PATIENT_NAME}')"))
            else:
                await conn.execute(sa.text(
                    "CREATE TRIGGER ck_test_refused BEFORE INSERT ON patients "
                    f"WHEN NEW.name = '{PATIENT_NAME}' BEGIN SELECT RAISE(ABORT, 'ck_test_refused'); END"))
    finally:
        await engine.dispose()


async def test_a_failed_insert_logs_no_patient_data(aiohttp_client: Any, tmp_path: Path, database_url: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    await refuse_this_patient(database_url)
    client = await aiohttp_client(create_app(make_settings(tmp_path, database_url=database_url)))
    token = (await (await client.post("/api/tokens", json={"username": "village1",
                                                             "password": DEMO_PASSWORD})).json())["token"]
    body = {"patient": {"name": PATIENT_NAME, "sex": "male", "birth_year": 1957, "local_id": LOCAL_ID},
            "specialty": "cardiology", "urgency": "routine", "chief_complaint": "syncope on exertion",
            "consent": {"by": "patient", "name": PATIENT_NAME, "signature": synthetic_signature()}}
    caplog.set_level(logging.INFO)
    resp = await client.post("/api/consultations", json=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 500 and (await resp.json())["error"]["code"] == "internal_error"

    failed = [r for r in caplog.records if r.exc_info]
    assert failed, "the failure was not logged with its traceback"
    texts = [caplog.text, *(logs.TextFormatter().format(r) for r in caplog.records),
             *(logs.JsonFormatter().format(r) for r in caplog.records)]
    everything = "\n".join(texts) + "\n".join(json.dumps(t) for t in texts)
    for secret in (PATIENT_NAME, "Zhangsun", LOCAL_ID, "syncope"):
        assert secret not in everything, secret
    # What an operator needs is still there: which rule refused which table.
    traceback_text = logs.TextFormatter().format(failed[-1])
    assert "ck_test_refused" in traceback_text and "IntegrityError" in traceback_text, traceback_text
    if database_url.startswith("postgresql"):
        assert "[23514]" in traceback_text and "table patients" in traceback_text, traceback_text
