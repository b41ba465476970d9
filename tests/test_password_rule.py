"""The password rule: at least 10 characters, not among the common passwords of the zxcvbn lists, not the
account's username or name."""

from __future__ import annotations

import pytest

from telehealth.accounts import MIN_PASSWORD_LENGTH, password_problem


def test_ten_characters_is_the_shortest_allowed() -> None:
    assert MIN_PASSWORD_LENGTH == 10
    assert password_problem("k7#qe!wz9") is not None  # nine
    assert password_problem("k7#qe!wz9x") is None  # ten


@pytest.mark.parametrize("common", ["1234567890", "qwertyuiop", "PASSWORD123", "iloveyou12"])
def test_common_passwords_are_refused_whatever_their_case(common: str) -> None:
    assert password_problem(common) == "this password is among the most common ones: choose another"


def test_the_username_and_the_name_are_refused() -> None:
    refused = "a password cannot be the username or the name"
    assert password_problem("village.doctor", "village.doctor", "Dr. Wang Dafu") == refused
    assert password_problem("dr. wang  dafu", "village1", "Dr. Wang Dafu") == refused
    assert password_problem("dr wang dafu 2026", "village1", "Dr. Wang Dafu") is None
