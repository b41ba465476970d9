"""The records store: the source of truth for organisations, accounts, consultations, sessions and events.

One store per aggregate, each in its own module, composed here into the one `Store` the rest of the code
holds; they share the engine and the ambient transaction of `StoreBase`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from telehealth.config import Settings, audit_key_of
from telehealth.records.anchor import AuditAnchor
from telehealth.records.store.accounts import AccountStore
from telehealth.records.store.appointments import AppointmentStore
from telehealth.records.store.attachments import AttachmentStore
from telehealth.records.store.audit import (
    GENESIS_HASH,
    AuditChainCheck,
    AuditStore,
    audit_entry_hash,
    keyed_entry_hash,
)
from telehealth.records.store.base import StoreBase, StoreUnavailable
from telehealth.records.store.beds import BedStore
from telehealth.records.store.calls import CallSessionStore
from telehealth.records.store.consultations import CONFLICT_RETRIES, ConsultationStore
from telehealth.records.store.event_log import EventLogStore
from telehealth.records.store.notes import NOTE_FIELDS, NoteStore
from telehealth.records.store.organisations import OrganisationStore
from telehealth.records.store.prechecks import PrecheckStore
from telehealth.records.store.referrals import ReferralStore
from telehealth.records.store.results import ResultStore
from telehealth.records.store.second_factors import SecondFactorStore
from telehealth.records.store.slots import SlotStore
from telehealth.records.store.statistics import StatisticsStore

__all__ = ["CONFLICT_RETRIES", "GENESIS_HASH", "NOTE_FIELDS", "AuditChainCheck", "Store", "StoreUnavailable",
           "audit_anchor", "audit_entry_hash", "keyed_entry_hash", "open_store"]


class Store(OrganisationStore, AccountStore, CallSessionStore, NoteStore, ConsultationStore, ReferralStore,
            EventLogStore, SlotStore, BedStore, AttachmentStore, AuditStore, PrecheckStore, ResultStore, StatisticsStore,
            SecondFactorStore, AppointmentStore,
            StoreBase):
    """All durable reads and writes. Methods take `now` where time matters; none reads a clock."""


def audit_anchor(settings: Settings) -> AuditAnchor:
    """The deployment's anchor file, under its audit key (its folder made if missing)."""
    path = settings.audit_anchor_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return AuditAnchor(path, audit_key_of(settings))


def open_store(engine: AsyncEngine, settings: Settings) -> Store:
    """The store as the server and the command line use it: audit entries keyed and anchored."""
    return Store(engine, audit_key=audit_key_of(settings), anchor=audit_anchor(settings))
