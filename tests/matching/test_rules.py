"""The eligibility rule for a named specialist: named is rung first, never let past the agreement or title."""

from __future__ import annotations

from telehealth.matching.broker import QueueEntry, SpecialistPresence
from telehealth.matching.rules import eligible

ALLIANCE, PARTNER, STRANGER = 1, 2, 3


def _entry(min_title_rank: int = 0) -> QueueEntry:
    return QueueEntry(consultation_id=1, specialty="neurology", urgency="routine", score=0.0, enqueued_at=0.0,
                      clinic_org_id=9, primary_org_ids=frozenset({ALLIANCE}),
                      partner_org_ids=frozenset({ALLIANCE, PARTNER}), widen_at=180.0, named_specialist_id=7,
                      named_until=120.0, min_title_rank=min_title_rank)


def _specialist(uid: int, org: int, rank: int = 2) -> SpecialistPresence:
    return SpecialistPresence(user_id=uid, status="available", specialties=("neurology",), org_id=org,
                              title_rank=rank, idle_since=0.0, node="")


def test_the_named_specialist_is_alone_first_then_one_among_the_eligible() -> None:
    entry = _entry()
    assert eligible(entry, _specialist(7, ALLIANCE), 10.0)
    assert not eligible(entry, _specialist(8, ALLIANCE), 10.0)
    assert eligible(entry, _specialist(8, ALLIANCE), 130.0)


def test_naming_moves_a_partner_ahead_of_the_alliance_window_only() -> None:
    assert eligible(_entry(), _specialist(7, PARTNER), 10.0)
    assert eligible(_entry(), _specialist(7, PARTNER), 150.0)
    assert not eligible(_entry(), _specialist(8, PARTNER), 150.0)


def test_a_named_specialist_outside_the_agreements_or_below_the_title_is_never_eligible() -> None:
    for now in (10.0, 150.0, 400.0):
        assert not eligible(_entry(), _specialist(7, STRANGER), now)
        assert not eligible(_entry(min_title_rank=4), _specialist(7, ALLIANCE, rank=2), now)
