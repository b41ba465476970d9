"""Reserved outpatient slots: the share a hospital keeps for grassroots referrals, and when unused ones go back.

Policy (see docs/records.md): a hospital that leads a medical alliance reserves at least 20 % of each
department's slots on each day for booking by the grassroots institutions; the lead hospital of a
tightly-knit city medical group pilot at least one third. Any other hospital reserves the share its
administrator sets, else its alliance's rule for member hospitals, else none; the stricter setting
`slots.floor_for_every_hospital` holds every hospital to at least 20 %. A hospital's own setting may raise
its share above the floor, never lower it. The count is rounded **up**, so the share is never undershot:
8 slots at 20 % reserve 2 (1.6 rounded up), 8 slots at one third reserve 3.

Inpatient beds (see docs/records.md): the lead hospital of a tightly-knit city medical group pilot holds at
least one quarter of each ward's beds on each day for patients referred up from its grassroots members, rounded
up the same way (10 beds reserve 3: 2.5 rounded up); the policy sets no bed share for any other hospital.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from zoneinfo import ZoneInfo

from telehealth.records.models import Alliance, Organisation

FLOOR_SHARE = Fraction(1, 5)
PILOT_SHARE = Fraction(1, 3)
PILOT_BED_SHARE = Fraction(1, 4)


class FloorBasis(enum.StrEnum):
    """Why a hospital's floor is what it is."""

    city_group_pilot_lead = "city_group_pilot_lead"  # one third
    alliance_lead = "alliance_lead"  # 20 %
    every_hospital = "every_hospital"  # 20 %, by the stricter setting
    none = "none"  # no floor: the hospital's or its alliance's own share


class ShareBasis(enum.StrEnum):
    """Where a hospital's reserved share comes from."""

    floor = "floor"
    hospital = "hospital"  # the administrator's setting for this hospital
    alliance = "alliance"  # the alliance's rule for the hospitals that do not lead it


@dataclass(frozen=True)
class SharePolicy:
    """The rule as configured: `floor_for_every_hospital` is the stricter choice (every hospital >= 20 %)."""

    floor_for_every_hospital: bool = False


DEFAULT_POLICY = SharePolicy()


@dataclass(frozen=True)
class Share:
    """A hospital's reserved share: the policy's floor, the share it reserves (never below the floor), and
    where each comes from."""

    floor: Fraction
    floor_basis: FloorBasis
    share: Fraction
    share_basis: ShareBasis


def leads_alliance(org: Organisation) -> bool:
    """A hospital leads an alliance when it is flagged so and belongs to one."""
    return org.level.is_hospital and org.leads_alliance and org.alliance_id is not None


def policy_floor(org: Organisation, policy: SharePolicy = DEFAULT_POLICY) -> tuple[Fraction, FloorBasis]:
    """The share below which the policy does not let this hospital go."""
    if leads_alliance(org):
        # The pilot flag counts only on the hospital that leads its group.
        if org.city_group_pilot:
            return PILOT_SHARE, FloorBasis.city_group_pilot_lead
        return FLOOR_SHARE, FloorBasis.alliance_lead
    if policy.floor_for_every_hospital and org.level.is_hospital:
        return FLOOR_SHARE, FloorBasis.every_hospital
    return Fraction(0), FloorBasis.none


def reserved_share(org: Organisation, alliance: Alliance | None = None,
                   policy: SharePolicy = DEFAULT_POLICY) -> Share:
    """The share this hospital reserves: its own setting, else (for a hospital that does not lead it) its
    alliance's rule, else nothing beyond the floor; never below the floor."""
    floor, floor_basis = policy_floor(org, policy)
    if org.reserved_share_pct is not None:
        own, basis = Fraction(org.reserved_share_pct, 100), ShareBasis.hospital
    elif (alliance is not None and alliance.id == org.alliance_id and not leads_alliance(org)
          and alliance.member_share_pct is not None):
        own, basis = Fraction(alliance.member_share_pct, 100), ShareBasis.alliance
    else:
        return Share(floor, floor_basis, floor, ShareBasis.floor)
    if own <= floor:
        return Share(floor, floor_basis, floor, ShareBasis.floor)
    return Share(floor, floor_basis, own, basis)


def bed_floor(org: Organisation) -> tuple[Fraction, FloorBasis]:
    """The share of a ward's beds a hospital holds for referrals up: one quarter at a city medical group
    pilot's lead (the flag counts only on the hospital that leads its group), none elsewhere."""
    if leads_alliance(org) and org.city_group_pilot:
        return PILOT_BED_SHARE, FloorBasis.city_group_pilot_lead
    return Fraction(0), FloorBasis.none


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


def bed_release_cutoff(day: dt.date, tz: ZoneInfo, release_hours: float) -> dt.datetime:
    """When an unbooked reserved bed goes back to the general pool: `release_hours` before its (local) day
    starts, as for slots."""
    day_start, _ = day_bounds(day, tz)
    return day_start - dt.timedelta(hours=release_hours)
