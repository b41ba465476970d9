"""The audit chain's anchor: its head, appended to a file outside the database after each commit, and the
comparison of the chain with it (which finds a removed tail and a rewritten chain)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from telehealth.records.store.audit import AuditChainCheck

log = logging.getLogger("telehealth.audit")


def key_id(key: bytes) -> str:
    """A short name of the audit key, written in each anchor line: says which key sealed it, reveals nothing."""
    return hmac.new(key, b"telehealth audit key id", hashlib.sha256).hexdigest()[:16]


def _seal(key: bytes, seq: int, entry_hash: str, at: str) -> str:
    return hmac.new(key, f"anchor|{seq}|{entry_hash}|{at}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AnchorPoint:
    """One anchor line: entry number `seq` of the chain had the hash `entry_hash`."""

    seq: int
    entry_hash: str
    line: int


@dataclass
class AnchorReading:
    """What the anchor file says: its furthest sealed point and what is wrong with it."""

    exists: bool
    lines: int = 0
    last: AnchorPoint | None = None
    # Lines sealed with another key than the one given (a wrong key, or a file of another deployment).
    foreign: int = 0
    problems: list[str] = field(default_factory=list)


class AuditAnchor:
    """The append-only anchor file of one node. Each line is one JSON object:
    {"seq": n, "hash": the n-th entry's hash, "at": its time, "key": key_id, "mac": HMAC of the rest}."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._key_id = key_id(key)

    def append(self, seq: int, entry_hash: str, at: dt.datetime) -> None:
        """Append one point. The entry is committed already, so a failure here is logged, never raised:
        the check then reports the entries after the last point as unanchored."""
        stamp = at.astimezone(dt.UTC).isoformat(timespec="microseconds")
        line = json.dumps({"seq": seq, "hash": entry_hash, "at": stamp, "key": self._key_id,
                           "mac": _seal(self._key, seq, entry_hash, stamp)}, separators=(",", ":")) + "\n"
        try:
            # One write on an O_APPEND descriptor: lines from several processes never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("audit anchor not written to %s for entry %s: %s", self.path, seq,
                      exc.strerror or type(exc).__name__)

    def size(self) -> int | None:
        """The file's length now, or None if there is none: a check reads this much, so lines appended while it
        runs (for entries it may not have seen) are left for the next one."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return None

    def points(self, reading: AnchorReading, upto: int) -> Iterator[AnchorPoint]:
        """Every point sealed with this key in the first `upto` bytes, in file order; what is wrong with the
        other lines goes into `reading`, as does the furthest point."""
        with self.path.open("rb") as fh:
            data = fh.read(upto)
        for number, raw in enumerate(data.split(b"\n")[:-1], start=1):
            if not raw.strip():
                continue
            reading.lines += 1
            try:
                item = json.loads(raw)
                seq, entry_hash, stamp = int(item["seq"]), str(item["hash"]), str(item["at"])
                kid, mac = str(item["key"]), str(item["mac"])
            except (ValueError, KeyError, TypeError):
                reading.problems.append(f"anchor line {number} is unreadable")
                continue
            if kid != self._key_id:
                reading.foreign += 1
                continue
            if not hmac.compare_digest(mac, _seal(self._key, seq, entry_hash, stamp)):
                reading.problems.append(f"anchor line {number} (entry {seq}) is not sealed by the audit key: "
                                        "the anchor was edited")
                continue
            point = AnchorPoint(seq, entry_hash, number)
            if reading.last is None or seq > reading.last.seq:
                reading.last = point
            yield point
        if reading.foreign:
            reading.problems.append(
                f"{reading.foreign} of {reading.lines} anchor line(s) were sealed with another key than the one "
                "given: the audit key is wrong (or the anchor belongs to another deployment)")

    def read(self) -> AnchorReading:
        """The whole file read: its furthest point, and every line that is unreadable or sealed otherwise."""
        size = self.size()
        reading = AnchorReading(exists=size is not None)
        if size is not None:
            for _ in self.points(reading, size):
                pass
        return reading


class ChainChecker(Protocol):
    async def check_audit_chain(self) -> AuditChainCheck: ...

    async def list_audit_hashes(self, seqs: Sequence[int]) -> dict[int, str]: ...


# Anchor points looked up in the log at a time: memory stays bounded however long the anchor is.
BATCH = 500


@dataclass(frozen=True)
class AuditVerdict:
    """The chain checked with the key and compared with the anchor: what is wrong, and what is worth knowing."""

    check: AuditChainCheck
    anchor: AnchorReading
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    # The chain is whole but shorter than the anchor's furthest point: how many entries are missing at its end.
    removed: int = 0
    # The first anchored entry the log holds otherwise, or no longer holds below its end (the chain rewritten
    # without the key, or entries removed and others written in their place).
    rewritten_at: int | None = None
    # No anchor point to compare with although keyed entries exist.
    unanchored: bool = False

    @property
    def wrong_key(self) -> bool:
        return self.anchor.foreign > 0

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_audit(store: ChainChecker, anchor: AuditAnchor) -> AuditVerdict:
    """Check the chain entry by entry with the key, then every anchor point against it: a chain shorter than the
    furthest point lost its tail, and an anchored entry the log holds otherwise (or not at all, below its end)
    means the chain was rewritten without the key, or cut and written on."""
    size = anchor.size()
    reading = AnchorReading(exists=size is not None)
    check = await store.check_audit_chain()
    problems: list[str] = []
    notes: list[str] = []
    first_wrong: AnchorPoint | None = None

    async def compare(batch: list[AnchorPoint]) -> None:
        nonlocal first_wrong
        found = await store.list_audit_hashes(sorted({p.seq for p in batch}))
        for point in batch:
            held = found.get(point.seq)
            if point.seq > check.checked and check.broken_id is None:
                continue  # past the end: counted as removed below
            if held is None or not hmac.compare_digest(held, point.entry_hash):
                if first_wrong is None or point.seq < first_wrong.seq:
                    first_wrong = point

    if size is not None:
        batch: list[AnchorPoint] = []
        for point in anchor.points(reading, size):
            batch.append(point)
            if len(batch) >= BATCH:
                await compare(batch)
                batch = []
        if batch:
            await compare(batch)
    problems.extend(reading.problems)
    furthest = reading.last
    removed, unanchored = 0, False
    if check.broken_id is not None:
        problems.append(f"entry {check.broken_id} (after {check.checked} good entries) is wrong: {check.problem}")
    if first_wrong is not None:
        problems.append(f"entry {first_wrong.seq} is not the one the anchor recorded (line {first_wrong.line}): "
                        "the log was rewritten from there, or cut and written on")
    keyed = check.checked - check.legacy
    if furthest is not None:
        if check.broken_id is None and check.checked < furthest.seq:
            removed = furthest.seq - check.checked
            problems.append(
                f"the log ends at entry {check.checked} but the anchor recorded entry {furthest.seq} (line {furthest.line}):"
                f" the last {removed} entries were removed")
        elif check.broken_id is None and check.checked > furthest.seq:
            notes.append(f"{check.checked - furthest.seq} entries after the anchor's last point (line {furthest.line}): "
                         "written since, or their anchor line was not written")
    elif not reading.foreign and not reading.problems and (keyed > 0 or check.broken_id is not None):
        unanchored = True
        where = "there is no anchor at" if size is None else "no point in the anchor at"
        problems.append(f"{where} {anchor.path}: a removed tail cannot be found without it")
    if check.legacy:
        notes.append(f"{check.legacy} entries written before the audit key are hashed the old, unkeyed way "
                     "and checked as written" + ("; the keyed entries after them seal them" if keyed else ""))
    return AuditVerdict(check, reading, tuple(problems), tuple(notes), removed,
                        first_wrong.seq if first_wrong else None, unanchored)
