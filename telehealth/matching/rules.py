"""The matching rules as pure functions: queue score, eligibility, and which specialist to ring first."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from telehealth.config import MatchingSettings
from telehealth.domain import Title
from telehealth.matching.broker import QueueEntry, SpecialistPresence
from telehealth.records.models import Consultation

SENIOR_RANK = Title.associate_chief.rank


def queue_score(enqueued_at: float, urgency: str, settings: MatchingSettings) -> float:
    """Lower is served first: arrival time minus the head start of the urgency class.

    A request of class A goes ahead of one of class B exactly when it arrived less than
    head_start(A) - head_start(B) seconds after it; so a waiting routine request is overtaken only
    by urgent requests made within head_start_urgent of its own arrival, never forever.
    """
    return enqueued_at - settings.head_start(urgency)


def build_entry(consultation: Consultation, *, enqueued_at: float, primary_org_ids: Iterable[int],
                partner_org_ids: Iterable[int], settings: MatchingSettings) -> QueueEntry:
    """The queue entry of a consultation entering the queue at `enqueued_at`.

    Its score is by the time it first entered the queue (the store keeps it, never reset), so every return
    to the queue keeps its place; the windows and the service level count from this entry.
    """
    first = consultation.first_queued_at.timestamp() if consultation.first_queued_at else enqueued_at
    first = min(first, enqueued_at)
    primary = frozenset(primary_org_ids)
    partners = frozenset(partner_org_ids) | primary
    named = consultation.requested_specialist_id
    rank = consultation.min_title.rank if consultation.min_title else 0
    return QueueEntry(
        consultation_id=consultation.id,
        specialty=consultation.specialty,
        urgency=consultation.urgency.value,
        score=queue_score(first, consultation.urgency.value, settings),
        enqueued_at=enqueued_at,
        clinic_org_id=consultation.clinic_org_id,
        primary_org_ids=primary,
        partner_org_ids=partners,
        widen_at=enqueued_at + settings.widen_after_s,
        named_specialist_id=named,
        named_until=enqueued_at + settings.named_specialist_window_s if named else 0.0,
        # A title fallback the clinic agreed to is encoded as a negative rank: the title is required
        # until the request widens, after which any title may take it.
        min_title_rank=-rank if consultation.title_fallback else rank,
        complex_case=consultation.complex_case,
        expires_at=enqueued_at + settings.sla(consultation.urgency.value),
        first_queued_at=first,
    )


def required_title_rank(entry: QueueEntry, now: float) -> int:
    if entry.min_title_rank >= 0:
        return entry.min_title_rank
    return 0 if now >= entry.widen_at else -entry.min_title_rank


def eligible(entry: QueueEntry, specialist: SpecialistPresence, now: float) -> bool:
    """May this specialist take this request now? (Presence and ringing are the broker's business.)"""
    if entry.specialty not in specialist.specialties:
        return False
    if specialist.title_rank < required_title_rank(entry, now):
        return False
    named = entry.named_specialist_id is not None and specialist.user_id == entry.named_specialist_id
    if entry.named_specialist_id is not None and now < entry.named_until and not named:
        return False
    # Naming a specialist only moves them ahead of the alliance-first window, never past the agreements.
    if named:
        return specialist.org_id in entry.partner_org_ids
    allowed = entry.primary_org_ids if now < entry.widen_at and entry.primary_org_ids else entry.partner_org_ids
    return specialist.org_id in allowed


def rank_specialists(entry: QueueEntry, candidates: Sequence[SpecialistPresence],
                     now: float, exclude: Iterable[int] = ()) -> list[SpecialistPresence]:
    """Eligible candidates, best first: the named one, own alliance, seniority for complex cases, longest idle."""
    skip = set(exclude)

    def key(p: SpecialistPresence) -> tuple[int, int, int, float, int]:
        return (
            0 if p.user_id == entry.named_specialist_id else 1,
            0 if p.org_id in entry.primary_org_ids else 1,
            0 if not entry.complex_case or p.title_rank >= SENIOR_RANK else 1,
            p.idle_since,
            p.user_id,
        )

    return sorted((p for p in candidates if p.user_id not in skip and eligible(entry, p, now)), key=key)


def pick_entry(entries: Iterable[QueueEntry], specialist: SpecialistPresence, now: float,
               exclude: Iterable[int] = ()) -> QueueEntry | None:
    """The best queued request this specialist may take (entries come best first)."""
    skip = set(exclude)
    for entry in entries:
        if entry.consultation_id not in skip and eligible(entry, specialist, now):
            return entry
    return None
