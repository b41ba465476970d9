"""Envelope parsing and typed bodies: the edge refuses malformed input with a code naming the problem."""

import json
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telehealth.errors import ErrorCode, TelehealthError
from telehealth.records.consent import synthetic_signature
from telehealth.services.consultations import CreateConsultation
from telehealth.signaling.commands import REGISTRY, DeclineBody, SignalBody
from telehealth.signaling.messages import parse_body, parse_envelope, peek_id

SIGNATURE = synthetic_signature()

def code_of(fn, *args):  # type: ignore[no-untyped-def]
    with pytest.raises(TelehealthError) as info:
        fn(*args)
    return info.value.code


def test_envelope_accepts_a_well_formed_command() -> None:
    env = parse_envelope('{"id": 3, "type": "offer.accept", "consultation_id": 9}', 1000)
    assert (env.id, env.type, env.body) == (3, "offer.accept", {"consultation_id": 9})


@pytest.mark.parametrize(("raw", "code"), [
    ("{", ErrorCode.invalid_json),
    ("[1]", ErrorCode.invalid_message),
    ('{"type": "ping"}', ErrorCode.invalid_message),
    ('{"id": 0, "type": "ping"}', ErrorCode.invalid_message),
    ('{"id": true, "type": "ping"}', ErrorCode.invalid_message),
    ('{"id": 1.5, "type": "ping"}', ErrorCode.invalid_message),
    ('{"id": 1, "type": ""}', ErrorCode.invalid_message),
    ('{"id": 1, "type": 7}', ErrorCode.invalid_message),
])
def test_envelope_errors(raw: str, code: ErrorCode) -> None:
    assert code_of(parse_envelope, raw, 1000) is code


def test_oversize_is_refused_before_parsing() -> None:
    assert code_of(parse_envelope, json.dumps({"id": 1, "type": "ping", "x": "y" * 100}), 50) \
        is ErrorCode.message_too_large


def test_peek_id_recovers_the_id_of_a_bad_message_when_it_can() -> None:
    assert peek_id('{"id": 4, "type": 1}') == 4
    assert peek_id("{") is None and peek_id('{"id": "4"}') is None


@dataclass(frozen=True)
class Inner:
    n: int


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    maybe: int | None = None


def test_typed_bodies_check_types_nesting_and_unknown_fields() -> None:
    assert parse_body(Outer, {"name": "a", "inner": {"n": 1}}) == Outer("a", Inner(1))
    assert code_of(parse_body, Outer, {"name": "a"}) is ErrorCode.invalid_message
    assert code_of(parse_body, Outer, {"name": 1, "inner": {"n": 1}}) is ErrorCode.invalid_message
    assert code_of(parse_body, Outer, {"name": "a", "inner": {"n": "1"}}) is ErrorCode.invalid_message
    assert code_of(parse_body, Outer, {"name": "a", "inner": {"n": 1}, "x": 0}) is ErrorCode.invalid_message
    assert code_of(parse_body, Outer, {"name": "a", "inner": {"n": True}}) is ErrorCode.invalid_message


def test_rules_beyond_types() -> None:
    assert code_of(parse_body, DeclineBody, {"consultation_id": 1, "reason": "other"}) is ErrorCode.invalid_message
    assert parse_body(DeclineBody, {"consultation_id": 1, "reason": "other", "text": "in theatre"}).text
    assert code_of(parse_body, SignalBody, {"session_id": 1, "kind": "offer", "payload": {"sdp": "hello"}}) \
        is ErrorCode.invalid_message
    body = {"patient": {"name": "A", "sex": "female", "birth_year": 1990}, "specialty": "cardiology",
            "urgency": "routine", "chief_complaint": "x", "consent": {"by": "relative", "name": "B", "signature": SIGNATURE}}
    with pytest.raises(TelehealthError, match="relation"):
        parse_body(CreateConsultation, body)


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.text(max_size=8),
                                                       st.booleans(), st.lists(st.integers(), max_size=3)),
                       max_size=6))
def test_every_command_body_either_parses_or_raises_a_client_error(body: dict[str, object]) -> None:
    for command in REGISTRY.values():
        try:
            parse_body(command.body, body)
        except TelehealthError as exc:
            assert exc.code is ErrorCode.invalid_message
