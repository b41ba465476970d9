"""Filters from query strings, checked into the range the databases hold: a filter out of range is a clear
400 before anything is read or streamed, never an overflow deeper down."""

from __future__ import annotations

import datetime as dt

from telehealth.errors import ErrorCode, TelehealthError

# Record ids are 32-bit in every database the store runs on; a page number past this is past any data.
MAX_NUMBER = 2**31 - 1
# Days a filter may name: a day outside has no records, and a day past 9998 cannot even be followed by one.
FIRST_DAY = dt.date(1900, 1, 1)
LAST_DAY = dt.date(2999, 12, 31)
_SHOWN = 40


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN else value[:_SHOWN] + "…")


def query_number(value: str | None) -> int | None:
    """A record id or a page number (1 to 2^31 - 1) from the query string; None when empty."""
    if not value:
        return None
    try:
        number = int(value) if len(value) <= 12 else 0
    except ValueError:
        number = 0
    if not 0 < number <= MAX_NUMBER:
        raise TelehealthError(ErrorCode.invalid_input, "{value} is not a number from 1 to {max}",
                              value=_shown(value), max=MAX_NUMBER)
    return number


def query_date(value: str | None) -> dt.date | None:
    """A calendar day (`2026-11-02`) from the query string, within FIRST_DAY and LAST_DAY; None when empty."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value) if len(value) <= 10 else None
    except ValueError:
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise TelehealthError(ErrorCode.invalid_input, "{value} is not a date from {first} to {last}, such as "
                              "2026-11-02", value=_shown(value), first=FIRST_DAY.isoformat(),
                              last=LAST_DAY.isoformat())
    return day


def query_day(value: str | None) -> dt.datetime | None:
    """A date from the query string (`2026-11-02`) as the UTC instant it starts; None when empty."""
    day = query_date(value)
    return None if day is None else dt.datetime.combine(day, dt.time(), dt.UTC)
