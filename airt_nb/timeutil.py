"""UTC timestamps: ISO-8601 text in the database, epoch seconds in timers.

Every time airt_nb writes is ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` so that text
order is time order in SQL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["from_iso", "iso", "now_iso", "to_epoch"]


def iso(epoch: float) -> str:
    """ISO-8601 UTC text for epoch seconds."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


_second: tuple[int, str] = (0, "")


def now_iso() -> str:
    """The current UTC time, formatted as :func:`iso` does.

    Called for every checkpoint: the date and time of day are formatted once
    per second, the microseconds appended.
    """
    global _second
    now = time.time()
    whole = int(now)
    second, prefix = _second
    if whole != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, prefix)
    return f"{prefix}.{int((now - whole) * 1_000_000):06d}+00:00"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def to_epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def now() -> float:
    return time.time()
