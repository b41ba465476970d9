"""The audit chain's anchor: its head, appended to a file outside the database after each commit, and the
comparison of the chain with it (which finds a removed tail and a rewritten chain)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
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

    def read(self) -> AnchorReading:
        """The furthest point sealed with this key, and every line that is unreadable or sealed otherwise."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return AnchorReading(exists=False)
        reading = AnchorReading(exists=True)
        for number, raw in enumerate(text.splitlines(), start=1):
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
            if reading.last is None or seq > reading.last.seq:
                reading.last = AnchorPoint(seq, entry_hash, number)
        if reading.foreign:
            reading.problems.append(
                f"{reading.foreign} of {reading.lines} anchor line(s) were sealed with another key than the one "
                "given: the audit key is wrong (or the anchor belongs to another deployment)")
        return reading


class ChainChecker(Protocol):
    async def check_audit_chain(self, *, at_seq: int | None = None) -> AuditChainCheck: ...


@dataclass(frozen=True)
class AuditVerdict:
    """The chain checked with the key and compared with the anchor: what is wrong, and what is worth knowing."""

    check: AuditChainCheck
    anchor: AnchorReading
    problems: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify_audit(store: ChainChecker, anchor: AuditAnchor) -> AuditVerdict:
    """Check the chain entry by entry with the key, then its length and head against the anchor's furthest
    point: a removed tail leaves the chain shorter than the anchor says, and a chain rewritten without the
    key has another hash at the anchored entry."""
    reading = anchor.read()
    point = reading.last
    check = await store.check_audit_chain(at_seq=point.seq if point else None)
    problems = list(reading.problems)
    notes: list[str] = []
    if check.broken_id is not None:
        problems.append(f"entry {check.broken_id} (after {check.checked} good entries) is wrong: {check.problem}")
    keyed = check.checked - check.legacy
    if point is not None:
        if check.broken_id is None and check.checked < point.seq:
            problems.append(
                f"the log ends at entry {check.checked} but the anchor recorded entry {point.seq} (line {point.line}):"
                f" the last {point.seq - check.checked} entries were removed")
        elif check.hash_at_seq is not None and not hmac.compare_digest(check.hash_at_seq, point.entry_hash):
            problems.append(f"entry {point.seq} is not the one the anchor recorded (line {point.line}): "
                            "the log was rewritten up to it")
        elif check.broken_id is None and check.checked > point.seq:
            notes.append(f"{check.checked - point.seq} entries after the anchor's last point (line {point.line}): "
                         "written since, or their anchor line was not written")
    elif not reading.exists and (keyed > 0 or check.broken_id is not None):
        problems.append(f"there is no anchor at {anchor.path}: a removed tail cannot be found without it")
    elif reading.exists and not reading.foreign and not reading.problems and keyed > 0:
        problems.append(f"the anchor at {anchor.path} has no point: a removed tail cannot be found without it")
    if check.legacy:
        notes.append(f"{check.legacy} entries written before the audit key are hashed the old, unkeyed way "
                     "and checked as written" + ("; the keyed entries after them seal them" if keyed else ""))
    return AuditVerdict(check, reading, tuple(problems), tuple(notes))
