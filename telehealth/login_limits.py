"""Login limits: a growing delay per account and per (account, address), never a lock of every account from one
address.

Two counters hold each sign-in step (the password, then the second factor):

- per (account, address): the first `free` failures cost nothing; after that every further attempt from that
  address for that account waits `delay`, then twice as long, and so on up to `max_delay`.
- per account, from every address: the same, with a larger allowance (`account_free`). One address adds at most
  `free` failures to it, so a single guesser can never hold back the account's owner elsewhere; only guesses
  from many addresses together (a botnet) slow every address, and an address that signed in to the account
  before is spared even that.

There is no limit per address alone: one person behind a clinic's shared address (or a proxy that is not
configured) guessing at many accounts gets `free` guesses per account, then waits, and everyone else behind
that address signs in as usual. The password policy (no common password) is what stands against such
spraying.

An attempt is counted when it starts, before the password hash is checked, so a burst of parallel requests
cannot all pass the check together; a success then clears the count. Counts are forgotten `forget` seconds
after the last delay ended. `LoginLimits` keeps them in one node's memory, bounded by `max_keys`; with Redis
configured, every node shares them (`telehealth/server/redis_login_limits.py`, the same rules in one script).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from telehealth.config import SecuritySettings

# An address that signed in to an account is trusted past the account's shared delay for this long.
KNOWN_ADDRESS_S = 30 * 86400
PASSWORD = "password"
CODE = "code"
STEPS = (PASSWORD, CODE)


@dataclass
class _Count:
    failures: int = 0
    last: float = 0.0
    # When the next attempt may start.
    until: float = 0.0


class GrowingDelay:
    """Failures per key: after `free` of them each further attempt waits `delay` * 2**(failures - free),
    at most `max_delay`."""

    def __init__(self, free: int, delay: float, max_delay: float, forget: float, max_keys: int = 100_000) -> None:
        self.free = free
        self.delay = delay
        self.max_delay = max_delay
        self.forget = forget
        self.max_keys = max_keys
        self._counts: collections.OrderedDict[str, _Count] = collections.OrderedDict()

    def delay_after(self, failures: int) -> float:
        """How long the attempt after `failures` failures waits."""
        if failures < self.free:
            return 0.0
        # 2**n grows past any cap quickly: stop computing once it is there.
        return min(self.max_delay, self.delay * 2.0 ** min(failures - self.free, 64))

    def _get(self, key: str, now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and now >= count.until + self.forget:
            del self._counts[key]
            return None
        return count

    def failures(self, key: str, now: float) -> int:
        count = self._get(key, now)
        return count.failures if count else 0

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may try again; 0 if it may now."""
        count = self._get(key, now)
        return max(0.0, count.until - now) if count else 0.0

    def fail(self, key: str, now: float) -> None:
        count = self._get(key, now)
        if count is None:
            count = self._counts[key] = _Count()
            while len(self._counts) > self.max_keys:
                self._counts.popitem(last=False)
        count.failures += 1
        count.last = now
        count.until = now + self.delay_after(count.failures)
        self._counts.move_to_end(key)

    def clear(self, key: str) -> None:
        self._counts.pop(key, None)


class LoginLimits:
    """Both counters of the sign-in steps, and the addresses each account signed in from."""

    def __init__(self, *, free: int, account_free: int, delay: float, max_delay: float, forget: float,
                 max_keys: int = 100_000) -> None:
        self.pairs = GrowingDelay(free, delay, max_delay, forget, max_keys)
        self.accounts = GrowingDelay(account_free, delay, max_delay, forget, max_keys)
        self.max_keys = max_keys
        self._known: collections.OrderedDict[str, float] = collections.OrderedDict()

    @staticmethod
    def _keys(step: str, account: str, address: str) -> tuple[str, str]:
        whole = f"{step}\n{account.strip().lower()}"
        return f"{whole}\n{address}", whole

    @staticmethod
    def _known_key(account: str, address: str) -> str:
        return f"{account.strip().lower()}\n{address}"

    def _known_address(self, account: str, address: str, now: float) -> bool:
        seen = self._known.get(self._known_key(account, address))
        return seen is not None and now - seen < KNOWN_ADDRESS_S

    def wait(self, step: str, account: str, address: str, now: float) -> int:
        """Whole seconds (rounded up) before this address may try this account's `step` again; 0 if it may now."""
        pair, whole = self._keys(step, account, address)
        wait = self.pairs.wait(pair, now)
        if not self._known_address(account, address, now):
            wait = max(wait, self.accounts.wait(whole, now))
        return math.ceil(wait)

    def begin(self, step: str, account: str, address: str, now: float) -> int:
        """Start an attempt at `step` ("password", "code"): 0 and it is counted as a failure until a success
        says otherwise; or the seconds to wait, and nothing is counted (waiting does not lengthen the delay)."""
        wait = self.wait(step, account, address, now)
        if wait:
            return wait
        pair, whole = self._keys(step, account, address)
        self.pairs.fail(pair, now)
        if self.pairs.failures(pair, now) <= self.pairs.free:
            self.accounts.fail(whole, now)
        return 0

    def passed(self, step: str, account: str, address: str) -> None:
        """One step passed: its counts start again. The password's do when a second factor is still to come,
        so that someone who has the password gains nothing on the code's counts, which only `succeeded` clears."""
        pair, whole = self._keys(step, account, address)
        self.pairs.clear(pair)
        self.accounts.clear(whole)

    def succeeded(self, account: str, address: str, now: float) -> None:
        """The whole sign-in passed: every count starts again, and the address is known to the account."""
        for step in STEPS:
            self.passed(step, account, address)
        known = self._known_key(account, address)
        self._known[known] = now
        self._known.move_to_end(known)
        while len(self._known) > self.max_keys:
            self._known.popitem(last=False)


class LoginLimiter(Protocol):
    """The login limits as the services use them, whichever node keeps them: this one's memory, or Redis for
    every node together."""

    async def begin(self, step: str, account: str, address: str, now: float) -> int: ...

    async def passed(self, step: str, account: str, address: str) -> None: ...

    async def succeeded(self, account: str, address: str, now: float) -> None: ...


class MemoryLoginLimiter:
    """The limits in this node's memory (a lone node, or the fallback while Redis does not answer)."""

    def __init__(self, limits: LoginLimits) -> None:
        self.limits = limits

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> MemoryLoginLimiter:
        return cls(LoginLimits(free=security.login_attempts, account_free=security.account_login_attempts,
                               delay=security.login_delay_s, max_delay=security.login_max_delay_s,
                               forget=security.login_window_s))

    async def begin(self, step: str, account: str, address: str, now: float) -> int:
        return self.limits.begin(step, account, address, now)

    async def passed(self, step: str, account: str, address: str) -> None:
        self.limits.passed(step, account, address)

    async def succeeded(self, account: str, address: str, now: float) -> None:
        self.limits.succeeded(account, address, now)
