"""The keyed audit chain and its anchor, on SQLite and (when configured) PostgreSQL: an edited row is found even
when the editor recomputes the hashes, so is a removed tail and a wrong key, by the store and by
`telehealth audit verify`; rows hashed the old way before the key still verify."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from telehealth.config import Settings, load_settings
from telehealth.records.anchor import AuditAnchor, key_id, verify_audit
from telehealth.records.db import create_engine, migrate
from telehealth.records.store import GENESIS_HASH, Store, audit_entry_hash, keyed_entry_hash, open_store
from tests.conftest import utc
from tests.test_cli import run

KEY = "the-audit-key-of-this-test-0123456789"
OTHER_KEY = "an-audit-key-the-editor-guessed-000"
NOW = utc(2026, 12, 1, 8, 0)


def settings_for(url: str, tmp_path: Path, key: str = KEY) -> Settings:
    return load_settings(overrides={"database_url": url, "data_dir": str(tmp_path / "data")},
                         env={"TELEHEALTH_AUDIT_KEY": key})


async def rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.text(
            "SELECT id, at, actor_id, action, target, remote, detail, hash, hash_version, seq "
            "FROM audit_log ORDER BY id")))


def stamp(value: Any) -> dt.datetime:
    at = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


def detail_of(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value)


async def rehash(engine: AsyncEngine, *, key: bytes | None) -> None:
    """What an editor with the database but not the key does after changing a row: compute every hash again,
    keyed with the key they guess, or the old unkeyed way with every row marked as old."""
    prev = GENESIS_HASH
    entries = await rows(engine)
    async with engine.begin() as conn:
        for position, row in enumerate(entries, start=1):
            at, detail = stamp(row.at), detail_of(row.detail)
            if key is None:
                new = audit_entry_hash(prev, at, row.actor_id, row.action, row.target, row.remote, detail)
                values = {"h": new, "p": prev, "v": 1, "s": None, "id": row.id}
            else:
                new = keyed_entry_hash(key, position, prev, at, row.actor_id, row.action, row.target, row.remote,
                                       detail)
                values = {"h": new, "p": prev, "v": 2, "s": position, "id": row.id}
            # Free the numbers first: they are unique.
            await conn.execute(sa.text("UPDATE audit_log SET seq = NULL WHERE id = :id"), {"id": row.id})
            await conn.execute(sa.text(
                "UPDATE audit_log SET hash = :h, prev_hash = :p, hash_version = :v, seq = :s WHERE id = :id"), values)
            prev = new


async def write_entries(store: Store, count: int) -> None:
    for i in range(count):
        if i % 2:
            # Inside a transaction the anchor is written once it commits.
            async with store.transaction():
                await store.insert_audit("record.view", actor_id=None, target=f"consultation:{i}", remote="10.0.0.1",
                                         now=NOW + dt.timedelta(minutes=i), detail={"n": i})
        else:
            await store.insert_audit("record.view", actor_id=None, target=f"consultation:{i}", remote="10.0.0.1",
                                     now=NOW + dt.timedelta(minutes=i))


async def test_entries_are_keyed_numbered_and_anchored_after_commit(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        store = open_store(engine, settings)
        await write_entries(store, 4)
        # A rolled-back transaction leaves neither a row nor an anchor line.
        with pytest.raises(ZeroDivisionError):
            async with store.transaction():
                await store.insert_audit("record.view", actor_id=None, target="x", remote="", now=NOW)
                1 / 0  # noqa: B018
        entries = await rows(engine)
        assert [(r.seq, r.hash_version) for r in entries] == [(1, 2), (2, 2), (3, 2), (4, 2)]
        first = entries[0]
        assert first.hash == keyed_entry_hash(KEY.encode(), 1, GENESIS_HASH, NOW, None, "record.view",
                                              "consultation:0", "10.0.0.1", {})
        # The unkeyed hash of the same content is not it: the key is needed to compute it.
        assert first.hash != audit_entry_hash(GENESIS_HASH, NOW, None, "record.view", "consultation:0", "10.0.0.1",
                                              {})
        lines = [json.loads(line) for line in settings.audit_anchor_path.read_text().splitlines()]
        assert [(line["seq"], line["hash"]) for line in lines] == [(r.seq, r.hash) for r in entries]
        assert {line["key"] for line in lines} == {key_id(KEY.encode())}
        verdict = await verify_audit(store, AuditAnchor(settings.audit_anchor_path, KEY.encode()))
        assert verdict.ok and verdict.check.checked == 4 and verdict.anchor.last is not None
        assert verdict.anchor.last.seq == 4
    finally:
        await engine.dispose()


async def test_rows_hashed_before_the_key_still_verify_and_the_keyed_ones_seal_them(database_url: str,
                                                                                  tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    engine = create_engine(database_url)
    try:
        await migrate(engine, "0009")
        prev = GENESIS_HASH
        async with engine.begin() as conn:
            for i in range(3):
                at = NOW + dt.timedelta(minutes=i)
                entry = audit_entry_hash(prev, at, None, "login.failed", "", "10.0.0.2", {})
                await conn.execute(sa.text(
                    "INSERT INTO audit_log (at, actor_id, action, target, remote, detail, prev_hash, hash) "
                    "VALUES (:at, NULL, 'login.failed', '', '10.0.0.2', '{}', :p, :h)"),
                    {"at": at if engine.dialect.name == "postgresql" else at.replace(tzinfo=None), "p": prev,
                     "h": entry})
                prev = entry
        await migrate(engine)
        store = open_store(engine, settings)
        anchor = AuditAnchor(settings.audit_anchor_path, KEY.encode())
        verdict = await verify_audit(store, anchor)
        assert verdict.ok, verdict.problems
        assert (verdict.check.checked, verdict.check.legacy) == (3, 3)
        await write_entries(store, 2)
        assert [(r.hash_version, r.seq) for r in await rows(engine)] == [(1, None), (1, None), (1, None), (2, 4),
                                                                          (2, 5)]
        verdict = await verify_audit(store, anchor)
        assert verdict.ok and (verdict.check.checked, verdict.check.legacy) == (5, 3)
        # An old row edited and every old hash after it recomputed: the first keyed row no longer links to it.
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE audit_log SET remote = '10.9.9.9' WHERE id = 2"))
        entries = await rows(engine)
        prev = GENESIS_HASH
        async with engine.begin() as conn:
            for row in entries[:3]:
                new = audit_entry_hash(prev, stamp(row.at), None, row.action, row.target, row.remote, {})
                await conn.execute(sa.text("UPDATE audit_log SET hash = :h, prev_hash = :p WHERE id = :id"),
                                   {"h": new, "p": prev, "id": row.id})
                prev = new
        check = await store.check_audit_chain()
        assert (check.checked, check.broken_id) == (3, entries[3].id) and "link" in check.problem
    finally:
        await engine.dispose()


async def test_an_edit_with_every_hash_recomputed_is_found(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        store = open_store(engine, settings)
        anchor = AuditAnchor(settings.audit_anchor_path, KEY.encode())
        await write_entries(store, 5)
        victim = (await rows(engine))[2].id
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE audit_log SET target = 'consultation:99' WHERE id = :id"),
                               {"id": victim})
        # Keyed again with a guessed key: entry 1 is the first the real key rejects.
        await rehash(engine, key=OTHER_KEY.encode())
        check = await store.check_audit_chain()
        assert (check.checked, check.broken_id) == (0, (await rows(engine))[0].id)
        # Rewritten as old unkeyed rows: each link and hash holds, but no longer what the anchor recorded.
        await rehash(engine, key=None)
        check = await store.check_audit_chain()
        assert (check.checked, check.legacy, check.broken_id) == (5, 5, None)
        verdict = await verify_audit(store, anchor)
        assert not verdict.ok
        assert verdict.rewritten_at == 1
        assert any("entry 1 is not the one the anchor recorded" in p for p in verdict.problems)
    finally:
        await engine.dispose()


async def test_a_tail_removed_and_written_on_is_found(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        store = open_store(engine, settings)
        anchor = AuditAnchor(settings.audit_anchor_path, KEY.encode())
        await write_entries(store, 5)
        async with engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM audit_log WHERE seq >= 4"))
        # The server goes on: entries 4 to 7 are written anew, each link and keyed hash right, the anchor's
        # furthest point (7) matching the log.
        await write_entries(store, 4)
        check = await store.check_audit_chain()
        assert (check.checked, check.broken_id) == (7, None)
        verdict = await verify_audit(store, anchor)
        assert not verdict.ok and verdict.rewritten_at == 4 and verdict.removed == 0
        assert any("entry 4 is not the one the anchor recorded" in p for p in verdict.problems)
    finally:
        await engine.dispose()


async def test_the_command_line_reports_an_edit_a_removed_tail_and_a_wrong_key(database_url: str,
                                                                              tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    data = ["--database-url", database_url, "--data-dir", str(tmp_path / "data")]
    env = {"TELEHEALTH_AUDIT_KEY": KEY}
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        await write_entries(open_store(engine, settings), 6)

        intact = run("audit", "verify", *data, env=env)
        assert intact.returncode == 0, intact.stdout + intact.stderr
        assert "audit chain intact: 6 entries, matching the anchor at entry 6" in intact.stdout

        wrong = run("audit", "verify", *data, env={"TELEHEALTH_AUDIT_KEY": OTHER_KEY})
        assert wrong.returncode == 1
        assert "the audit key is wrong" in wrong.stdout
        assert "(after 0 good entries) is wrong: its keyed hash does not match" in wrong.stdout

        entries = await rows(engine)
        async with engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM audit_log WHERE id >= :id"), {"id": entries[4].id})
        tail = run("audit", "verify", *data, env=env)
        assert tail.returncode == 1
        assert "the log ends at entry 4 but the anchor recorded entry 6" in tail.stdout
        assert "the last 2 entries were removed" in tail.stdout

        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE audit_log SET remote = '10.6.6.6' WHERE id = :id"),
                               {"id": entries[1].id})
        edited = run("audit", "verify", *data, env=env)
        assert edited.returncode == 1 and f"entry {entries[1].id} (after 1 good entries) is wrong" in edited.stdout

        await rehash(engine, key=None)
        rehashed = run("audit", "verify", *data, env=env)
        assert rehashed.returncode == 1 and "entry" in rehashed.stdout
        assert "the last 2 entries were removed" in rehashed.stdout

        # Without the anchor, a shortened chain of keyed entries cannot pass for whole.
        await rehash(engine, key=KEY.encode())
        settings.audit_anchor_path.rename(tmp_path / "kept-elsewhere.jsonl")
        missing = run("audit", "verify", *data, env=env)
        assert missing.returncode == 1 and "there is no anchor" in missing.stdout
        # The copy kept elsewhere, named on the command line.
        kept = run("audit", "verify", *data, "--anchor", str(tmp_path / "kept-elsewhere.jsonl"), env=env)
        assert kept.returncode == 1 and "the last 2 entries were removed" in kept.stdout
    finally:
        await engine.dispose()
