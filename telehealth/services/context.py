"""What every service operation works with: the actor, the unit of work, and the node's services."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from telehealth.config import Settings
from telehealth.events import EventPublisher, Outbox
from telehealth.login_limits import LoginLimiter, MemoryLoginLimiter
from telehealth.matching.broker import Broker
from telehealth.matching.service import Matcher
from telehealth.records.consent import attachments_root
from telehealth.records.files import FileStore
from telehealth.records.models import User
from telehealth.records.store import Store
from telehealth.services.access import AccessPolicy
from telehealth.services.accounts import Accounts
from telehealth.services.appointments import Appointments
from telehealth.services.beds import Beds
from telehealth.services.consultations import Consultations
from telehealth.services.notes import Notes
from telehealth.services.organisations import Organisations
from telehealth.services.oversight import Oversight
from telehealth.services.prechecks import Prechecks
from telehealth.services.records import Records
from telehealth.services.referrals import Referrals
from telehealth.services.results import Results
from telehealth.services.second_factors import SecondFactors
from telehealth.services.slots import Slots


@dataclass(frozen=True)
class Actor:
    """Who asks, and from where (the address goes into the audit trail)."""

    user: User
    remote: str = ""

    @property
    def id(self) -> int:
        return self.user.id


@dataclass
class Unit:
    """One operation's transaction: audit entries written inside it, events sent once it has committed."""

    now: dt.datetime
    actor: Actor | None
    audits: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    outbox: Outbox = field(default_factory=Outbox)

    def audit(self, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        self.audits.append((action, target, detail))


class Services:
    """Every service of one node, built once by the app factory (and by tests and benchmarks alike)."""

    def __init__(self, store: Store, broker: Broker, matcher: Matcher, settings: Settings,
                 clock: Callable[[], float] = time.time, node: str = "",
                 login_limits: LoginLimiter | None = None) -> None:

        self.store = store
        self.broker = broker
        self.matcher = matcher
        self.settings = settings
        self.clock = clock
        # This node's name (host:port), which names the record's identifiers in exports.
        self.node = node
        self.events = EventPublisher(broker.publish)
        # This node's memory unless the app factory hands in the limits every node shares (Redis).
        self.login_limits: LoginLimiter = login_limits or MemoryLoginLimiter.from_settings(settings.security)
        self.files = FileStore(attachments_root(settings.data_dir))
        self.access: AccessPolicy = AccessPolicy(self)
        self.accounts: Accounts = Accounts(self)
        self.second_factors: SecondFactors = SecondFactors(self)
        self.organisations: Organisations = Organisations(self)
        self.consultations: Consultations = Consultations(self)
        self.notes: Notes = Notes(self)
        self.referrals: Referrals = Referrals(self)
        self.oversight: Oversight = Oversight(self)
        self.slots: Slots = Slots(self)
        self.beds: Beds = Beds(self)
        self.prechecks: Prechecks = Prechecks(self)
        self.results: Results = Results(self)
        self.records: Records = Records(self)
        self.appointments: Appointments = Appointments(self)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    @asynccontextmanager
    async def unit(self, actor: Actor | None, now: dt.datetime | None = None) -> AsyncIterator[Unit]:
        """Open a unit of work: the store calls inside share one transaction, which also writes the audit
        entries; the events go out after the commit (and not at all if it rolled back)."""
        unit = Unit(now or self.now(), actor)
        async with self.store.transaction():
            yield unit
            for action, target, detail in unit.audits:
                await self.store.insert_audit(action, actor_id=actor.id if actor else None, target=target,
                                              remote=actor.remote if actor else "", now=unit.now, detail=detail)
        await unit.outbox.flush(self.events)

    async def audit(self, actor: Actor | None, action: str, target: str,
                    detail: dict[str, Any] | None = None) -> None:
        """An audit entry of its own (a read of a record, a refusal), outside any other write."""
        await self.store.insert_audit(action, actor_id=actor.id if actor else None, target=target,
                                      remote=actor.remote if actor else "", now=self.now(), detail=detail)

    async def ping(self) -> None:
        """Raise unless the records store answers."""
        await self.store.ping()
