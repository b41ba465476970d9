"""The part of the records store the matcher uses: what it reads to match, and the moves it writes first.

The records store implements it; the matcher depends on nothing more, so a smaller store (or a test's)
does for it too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Protocol

from telehealth.domain import ConsultationState
from telehealth.records.models import Consultation, Event, NewConsultation, Organisation, User


class MatchingStore(Protocol):
    """Durable reads and writes of matching. Times are passed in; the store reads no clock."""

    async def get_user(self, user_id: int) -> User | None: ...

    async def get_organisation(self, org_id: int) -> Organisation | None: ...

    async def get_partner_hospitals(self, clinic_org_id: int, now: dt.datetime) -> tuple[set[int], set[int]]:
        """(hospitals of the clinic's own alliance, hospitals with any valid agreement incl. the alliance)."""
        ...

    async def get_next_agreement_change(self, clinic_org_id: int, now: dt.datetime) -> dt.datetime | None:
        """The next instant after `now` at which one of the clinic's agreements in effect starts or stops
        being valid (None: none will)."""
        ...

    async def insert_consultation(self, request: NewConsultation, *, clinic_org_id: int, doctor_id: int,
                                  now: dt.datetime, queue: bool = False) -> Consultation:
        """Record a new request (queued too with `queue`), atomically."""
        ...

    async def get_consultation(self, consultation_id: int) -> Consultation | None: ...

    async def list_consultations(self, *, states: Iterable[ConsultationState] | None = None,
                                 limit: int = 200) -> list[Consultation]: ...

    async def transition_consultation(
        self, consultation_id: int, target: ConsultationState, *, actor_id: int | None, now: dt.datetime,
        expected: Iterable[ConsultationState] | None = None, assigned_specialist_id: int | None = ...,
        event_kind: str | None = None, event_data: dict[str, Any] | None = None,
    ) -> Consultation:
        """Move a consultation to `target`, checked, stamped and logged as one write; left out,
        `assigned_specialist_id` stays as it is."""
        ...

    async def insert_event(self, consultation_id: int, kind: str, *, actor_id: int | None, now: dt.datetime,
                           data: dict[str, Any] | None = None) -> None: ...

    async def list_events(self, consultation_id: int) -> list[Event]: ...

    async def get_recent_service_times(self, specialty: str, limit: int = 50) -> list[float]:
        """Seconds from queued to accepted for the latest accepted requests of a specialty."""
        ...

    async def record_presence_day(self, user_id: int, day: dt.date, at: dt.datetime) -> bool:
        """Note that a specialist was online for consultations on a local day; True if newly noted."""
        ...
