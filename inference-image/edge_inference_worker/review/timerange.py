"""Times as users type them: ISO 8601 instants, durations ago ('12h'), and 'last night'. Pure.

A time without a zone is local time (the zone of the machine, or `TZ`), as `date` shows it: the
person at headquarters thinks of "last night" on their own clock. Everything is compared in UTC.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
NIGHT_STARTS = time(18, 0)
NIGHT_ENDS = time(6, 0)


class TimeFormatError(ValueError):
    """A time the user typed that we cannot read; the message says what is accepted."""


def parse_instant(text: str, now: datetime) -> datetime:
    """'2026-11-26T22:00', '2026-11-26 22:00:00Z', '2026-11-26' (midnight) or '12h'/'30m'/'7d' ago."""
    text = text.strip()
    match = _AGO.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TimeFormatError(
            f"cannot read time {text!r}: use ISO 8601 (2026-11-26T22:00, optionally with Z or +01:00) "
            "or a duration ago (90m, 12h, 7d)"
        ) from None
    return instant if instant.tzinfo else instant.astimezone()


def night_of(evening: date) -> tuple[datetime, datetime]:
    """The night that starts on `evening` at 18:00 local time and ends the next day at 06:00."""
    start = datetime.combine(evening, NIGHT_STARTS).astimezone()
    end = datetime.combine(evening + timedelta(days=1), NIGHT_ENDS).astimezone()
    return start, end


def last_night(now: datetime) -> tuple[datetime, datetime]:
    """The most recent night that has ended (before 06:00 it is the night before yesterday's evening)."""
    local = now.astimezone()
    evening = local.date() - timedelta(days=1)
    if local.time() < NIGHT_ENDS:
        evening -= timedelta(days=1)
    return night_of(evening)


def parse_night(text: str | None, now: datetime) -> tuple[datetime, datetime]:
    """`--night` with no value: last night; with a date: the night that starts that evening."""
    if text is None:
        return last_night(now)
    try:
        return night_of(date.fromisoformat(text))
    except ValueError:
        raise TimeFormatError(f"cannot read night {text!r}: give the evening's date, e.g. 2026-11-26") from None
