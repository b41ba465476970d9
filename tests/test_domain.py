"""The consultation state machine: every legal move allowed, every other refused with a clear error."""

import itertools

import pytest

from telehealth.domain import TRANSITIONS, ConsultationState, Title, check_transition
from telehealth.errors import ErrorCode, TelehealthError

S = ConsultationState
LEGAL = [(a, b) for a, targets in TRANSITIONS.items() for b in targets]
ILLEGAL = [(a, b) for a in S for b in S if b not in TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_legal_transitions_pass(current: S, target: S) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_illegal_transitions_raise_naming_both_states(current: S, target: S) -> None:
    with pytest.raises(TelehealthError) as info:
        check_transition(current, target)
    assert info.value.code is ErrorCode.invalid_transition
    assert str(current) in info.value.message and str(target) in info.value.message


def test_the_life_of_a_consultation_is_a_path_through_the_table() -> None:
    path = [S.requested, S.queued, S.offered, S.queued, S.offered, S.accepted, S.in_call, S.accepted,
            S.in_call, S.ended, S.signed, S.closed]
    for a, b in itertools.pairwise(path):
        check_transition(a, b)


def test_final_states_have_no_way_out() -> None:
    assert TRANSITIONS[S.closed] == frozenset()
    assert TRANSITIONS[S.cancelled] == frozenset()


def test_titles_rise_in_seniority() -> None:
    ranks = [t.rank for t in (Title.resident, Title.attending, Title.associate_chief, Title.chief)]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4
