"""Rate limits: a sliding window for logins, a token bucket for WebSocket messages."""

from __future__ import annotations

import collections
import time


class SlidingWindowLimiter:
    """At most `limit` events per key within `window` seconds; memory bounded by `max_keys`."""

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._events: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        events = self._events.get(key)
        if events is None:
            events = collections.deque()
            self._events[key] = events
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def blocked(self, key: str, now: float | None = None) -> float:
        """Seconds until `key` may try again; 0 if it may now."""
        now = time.monotonic() if now is None else now
        events = self._recent(key, now)
        if len(events) < self.limit:
            return 0.0
        return max(0.0, events[0] + self.window - now)

    def hit(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._recent(key, now).append(now)
        self._events.move_to_end(key)

    def reset(self, key: str) -> None:
        self._events.pop(key, None)


class TokenBucket:
    """`rate` tokens per second up to `burst`; each message takes one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
