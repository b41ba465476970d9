"""The agreement state machine: an invitation takes effect only with both sides' approval, in either order;
a declined or ended agreement has no way out; every move outside the table is refused."""

import pytest

from telehealth.domain import (
    AGREEMENT_TRANSITIONS,
    AgreementSide,
    AgreementState,
    approved_state,
    check_agreement_transition,
)
from telehealth.errors import ErrorCode, TelehealthError

A = AgreementState
CLINIC, HOSPITAL = AgreementSide.clinic, AgreementSide.hospital


@pytest.mark.parametrize("order", [(CLINIC, HOSPITAL), (HOSPITAL, CLINIC)])
def test_both_approvals_in_either_order_put_it_in_effect(order: tuple[AgreementSide, AgreementSide]) -> None:
    first = approved_state(A.proposed, order[0])
    assert first is (A.clinic_approved if order[0] is CLINIC else A.hospital_approved)
    assert approved_state(first, order[0]) is first  # the same side again changes nothing
    assert approved_state(first, order[1]) is A.in_effect


def test_one_approval_never_puts_it_in_effect() -> None:
    for side in AgreementSide:
        assert approved_state(A.proposed, side) is not A.in_effect


@pytest.mark.parametrize(("current", "target"),
                         [(a, b) for a in A for b in A if b not in AGREEMENT_TRANSITIONS[a]])
def test_moves_outside_the_table_are_refused(current: AgreementState, target: AgreementState) -> None:
    with pytest.raises(TelehealthError) as info:
        check_agreement_transition(current, target)
    assert info.value.code is ErrorCode.invalid_transition


def test_pending_states_may_be_declined_and_only_one_in_effect_ended() -> None:
    for state in A:
        assert (A.declined in AGREEMENT_TRANSITIONS[state]) is state.is_pending
        assert (A.ended in AGREEMENT_TRANSITIONS[state]) is (state is A.in_effect)
    assert AGREEMENT_TRANSITIONS[A.declined] == AGREEMENT_TRANSITIONS[A.ended] == frozenset()
