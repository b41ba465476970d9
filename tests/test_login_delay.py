"""The login limits' figures: the growing delay per key, one address's share of an account's count, the known
address, and forgetting."""

from __future__ import annotations

from telehealth.login_limits import CODE, KNOWN_ADDRESS_S, PASSWORD, GrowingDelay, LoginLimits


def limits() -> LoginLimits:
    return LoginLimits(free=5, account_free=20, delay=2, max_delay=900, forget=300)


def test_the_delay_doubles_after_the_free_failures_up_to_its_cap() -> None:
    delay = GrowingDelay(free=5, delay=2, max_delay=900, forget=300)
    # 2 * 2**(failures - 5): 2, 4, 8, ... 512 at 13 failures; 1024 at 14 is past the cap of 900.
    assert [delay.delay_after(n) for n in range(4, 15)] == [0, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
    assert delay.delay_after(10_000) == 900


def test_an_attempt_is_counted_when_it_starts_and_waiting_does_not_lengthen_the_delay() -> None:
    lim = limits()
    for _ in range(5):
        assert lim.begin(PASSWORD, "village1", "198.51.100.1", 1000) == 0
    # Five in flight at once were all counted: the sixth waits 2 s.
    assert lim.begin(PASSWORD, "village1", "198.51.100.1", 1000) == 2
    assert lim.begin(PASSWORD, "village1", "198.51.100.1", 1001.5) == 1
    assert lim.begin(PASSWORD, "village1", "198.51.100.1", 1002) == 0
    assert lim.wait(PASSWORD, "village1", "198.51.100.1", 1002) == 4
    # The name is the account whatever its case or spaces.
    assert lim.wait(PASSWORD, " Village1", "198.51.100.1", 1002) == 4


def test_one_address_adds_at_most_its_allowance_to_the_account() -> None:
    lim, now = limits(), 0.0
    for _ in range(12):  # each guess as soon as the delay allows: 2 + 4 + ... + 128 s in all
        now += lim.wait(PASSWORD, "village1", "198.51.100.1", now)
        assert lim.begin(PASSWORD, "village1", "198.51.100.1", now) == 0
    assert now == 254
    assert lim.pairs.failures("password\nvillage1\n198.51.100.1", now) == 12
    assert lim.accounts.failures("password\nvillage1", now) == 5
    assert lim.wait(PASSWORD, "village1", "203.0.113.5", now) == 0
    # Four addresses with five failures each reach the account's 20: a fifth address waits 2 s.
    for a in range(2, 5):
        for _ in range(5):
            lim.begin(PASSWORD, "village1", f"198.51.100.{a}", now)
    assert lim.wait(PASSWORD, "village1", "203.0.113.5", now) == 2


def test_an_address_that_signed_in_before_is_spared_the_accounts_delay() -> None:
    lim = limits()
    lim.succeeded("village1", "203.0.113.5", 0)
    for a in range(4):
        for _ in range(5):
            lim.begin(PASSWORD, "village1", f"198.51.100.{a}", 10)
    assert lim.wait(PASSWORD, "village1", "203.0.113.6", 10) == 2
    assert lim.wait(PASSWORD, "village1", "203.0.113.5", 10) == 0
    # Only for so long.
    for a in range(4, 8):
        for _ in range(5):
            lim.begin(PASSWORD, "village1", f"198.51.100.{a}", KNOWN_ADDRESS_S)
    assert lim.wait(PASSWORD, "village1", "203.0.113.5", KNOWN_ADDRESS_S) > 0


def test_the_steps_count_apart_and_only_a_whole_sign_in_clears_the_code() -> None:
    lim = limits()
    for _ in range(5):
        lim.begin(CODE, "admin", "198.51.100.1", 0)
        lim.begin(PASSWORD, "admin", "198.51.100.1", 0)
        lim.passed(PASSWORD, "admin", "198.51.100.1")
    # The right password each time cleared its own count, not the code's.
    assert lim.wait(PASSWORD, "admin", "198.51.100.1", 0) == 0
    assert lim.wait(CODE, "admin", "198.51.100.1", 0) == 2
    lim.succeeded("admin", "198.51.100.1", 5)
    assert lim.wait(CODE, "admin", "198.51.100.1", 5) == 0


def test_failures_are_forgotten_after_the_quiet_window() -> None:
    lim = limits()
    for _ in range(6):
        lim.begin(PASSWORD, "village1", "198.51.100.1", 0)  # the sixth is refused: five counted, 2 s to wait
    assert lim.pairs.failures("password\nvillage1\n198.51.100.1", 301) == 5
    assert lim.pairs.failures("password\nvillage1\n198.51.100.1", 302) == 0
