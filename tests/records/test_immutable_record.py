"""A signed note and its addenda, written through the real server, cannot be changed in the database by any
statement: UPDATE, DELETE, INSERT OR REPLACE (PostgreSQL: INSERT ... ON CONFLICT DO UPDATE), UPDATE OR
REPLACE and TRUNCATE are each refused, on SQLite and on PostgreSQL, and the rows stay exactly as signed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from telehealth.records.db import create_engine, migrate
from telehealth.server import keys
from tests.conftest import make_settings
from tests.records.test_notes import DRAFT, accepted_consultation, api
from tests.support.wsclient import Node, serve

NOTE_COLUMNS = ("author_id, subjective, objective, assessment, diagnoses, plan, disposition, store_and_forward, "
                "draft_saved_at, signed_at, signed_by")


@pytest.fixture
async def node(tmp_path: Path, database_url: str) -> AsyncIterator[Node]:
    if database_url.startswith("postgresql"):
        engine = create_engine(database_url)
        await migrate(engine)
        await engine.dispose()
    async with serve(make_settings(tmp_path, database_url=database_url)) as n:
        yield n


async def rows(engine: Any) -> list[Any]:
    async with engine.connect() as conn:
        notes = (await conn.execute(sa.text("SELECT * FROM notes ORDER BY id"))).all()
        addenda = (await conn.execute(sa.text("SELECT * FROM addenda ORDER BY id"))).all()
    return [*map(tuple, notes), *map(tuple, addenda)]


async def test_no_statement_changes_a_signed_record(node: Node, database_url: str) -> None:
    signed = await accepted_consultation(node)
    assert (await api(node, "PUT", f"/api/consultations/{signed}/note", "neuro.chief", DRAFT))[0] == 200
    assert (await api(node, "POST", f"/api/consultations/{signed}/note/sign", "neuro.chief", {}))[0] == 200
    assert (await api(node, "POST", f"/api/consultations/{signed}/note/addenda", "neuro.chief",
                      {"text": "CT showed no haemorrhage."}))[0] == 201
    draft = await accepted_consultation(node)
    assert (await api(node, "PUT", f"/api/consultations/{draft}/note", "neuro.chief", DRAFT))[0] == 200
    engine = node.server.app[keys.STORE].engine  # type: ignore[union-attr]
    async with engine.connect() as conn:
        note_id, addendum_id = (await conn.execute(sa.text(
            "SELECT notes.id, addenda.id FROM notes JOIN addenda ON addenda.note_id = notes.id "
            "WHERE notes.consultation_id = :c"), {"c": signed})).one()
        draft_id = (await conn.execute(sa.text("SELECT id FROM notes WHERE consultation_id = :c"),
                                       {"c": draft})).scalar()
    before = await rows(engine)
    copy_note = f"SELECT {{id}}, consultation_id, {NOTE_COLUMNS} FROM notes WHERE id = {note_id}"
    copy_addendum = f"SELECT {{id}}, note_id, author_id, 'rewritten', signed_at FROM addenda WHERE id = {addendum_id}"
    note_into = f"INSERT {{how}} INTO notes (id, consultation_id, {NOTE_COLUMNS}) "
    addendum_into = "INSERT {how} INTO addenda (id, note_id, author_id, text, signed_at) "
    attacks = {
        "update note": f"UPDATE notes SET assessment = 'rewritten' WHERE id = {note_id}",
        "unsign note": f"UPDATE notes SET signed_at = NULL WHERE id = {note_id}",
        "delete note": f"DELETE FROM notes WHERE id = {note_id}",
        "update addendum": f"UPDATE addenda SET text = 'rewritten' WHERE id = {addendum_id}",
        "delete addendum": f"DELETE FROM addenda WHERE id = {addendum_id}",
    }
    if database_url.startswith("postgresql"):
        attacks.update({
            "upsert note by id": note_into.format(how="") + copy_note.format(id="id")
            + " ON CONFLICT (id) DO UPDATE SET assessment = 'rewritten'",
            "upsert note by consultation": note_into.format(how="") + copy_note.format(id=note_id + 1000)
            + " ON CONFLICT (consultation_id) DO UPDATE SET plan = 'rewritten'",
            "upsert addendum": addendum_into.format(how="") + copy_addendum.format(id="id")
            + " ON CONFLICT (id) DO UPDATE SET text = EXCLUDED.text",
            "truncate notes": "TRUNCATE notes CASCADE",
            "truncate addenda": "TRUNCATE addenda",
        })
    else:
        attacks.update({
            "replace note by id": note_into.format(how="OR REPLACE") + copy_note.format(id="id"),
            "replace note by consultation": note_into.format(how="OR REPLACE") + copy_note.format(id=note_id + 1000),
            "replace note (REPLACE INTO)": note_into.format(how="").replace("INSERT  INTO", "REPLACE INTO")
            + copy_note.format(id="id"),
            "replace addendum": addendum_into.format(how="OR REPLACE") + copy_addendum.format(id="id"),
            "move a draft onto the signed note": f"UPDATE OR REPLACE notes SET consultation_id = {signed} "
                                                 f"WHERE id = {draft_id}",
            "renumber a draft onto the signed note": f"UPDATE OR REPLACE notes SET id = {note_id} WHERE id = {draft_id}",
        })
    went_through = []
    for name, sql in attacks.items():
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text(sql))
        except sa.exc.DBAPIError:
            continue
        went_through.append(name)
    assert went_through == []
    assert await rows(engine) == before
    # Drafts stay drafts: still editable, and signable.
    assert (await api(node, "PUT", f"/api/consultations/{draft}/note", "neuro.chief", {**DRAFT, "plan": "CT"}))[0] \
        == 200
    assert (await api(node, "POST", f"/api/consultations/{draft}/note/sign", "neuro.chief", {}))[0] == 200
