"""Reserved outpatient slots: the share a hospital keeps for grassroots referrals, and when unused ones go back.

Policy (see docs/records.md): at least 20 % of each department's slots on each day are reserved for
booking by member clinics; one third for a hospital that leads a city medical group pilot. A hospital may
reserve more (its `reserved_share_pct`), never less. The count is rounded **up**, so the share is never
undershot: 8 slots at 20 % reserve 2 (1.6 rounded up), 8 slots at one third reserve 3.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from fractions import Fraction
from zoneinfo import ZoneInfo

from telehealth.records.models import Organisation

FLOOR_SHARE = Fraction(1, 5)
PILOT_SHARE = Fraction(1, 3)


def policy_floor(org: Organisation) -> Fraction:
    return PILOT_SHARE if org.city_group_pilot else FLOOR_SHARE


def reserved_share(org: Organisation) -> Fraction:
    """The share this hospital reserves: its own setting where that is above the policy floor."""
    floor = policy_floor(org)
    if org.reserved_share_pct is None:
        return floor
    return max(floor, Fraction(org.reserved_share_pct, 100))


def reserved_needed(total: int, share: Fraction) -> int:
    """Slots to reserve out of `total`, rounded up (exact arithmetic: no float error at the boundary)."""
    if total < 0:
        raise ValueError("total must not be negative")
    return math.ceil(total * share)


def spread(candidates: Sequence[int], k: int) -> list[int]:
    """Pick `k` of `candidates` (ordered by time) spread evenly over the day, so grassroots patients are
    not all given the first or the last hour."""
    n = len(candidates)
    if k <= 0 or n == 0:
        return []
    if k >= n:
        return list(candidates)
    return [candidates[(i * n) // k + (n // k) // 2] for i in range(k)]


def local_day(starts_at: dt.datetime, tz: ZoneInfo) -> dt.date:
    return starts_at.astimezone(tz).date()


def day_bounds(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants at which a local calendar day starts and ends."""
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def release_cutoff(starts_at: dt.datetime, tz: ZoneInfo, release_hours: float) -> dt.datetime:
    """When an unbooked reserved slot goes back to the general pool: `release_hours` before the start of
    its (local) day."""
    day_start, _ = day_bounds(local_day(starts_at, tz), tz)
    return day_start - dt.timedelta(hours=release_hours)
