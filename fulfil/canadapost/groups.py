"""The day's group of end-of-day labels: one Canada Post group per Canada Post (Eastern) day,
named ``fulfil-YYYYMMDD``, so every host buying on a day puts its labels in the same group and
`fulfil manifest transmit --date` finds it again. Pure: no HTTP, cheap to import (`fulfil status`
uses it)."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

# shipment.xsd GroupIDType is a normalizedString of 1 to 32 characters. fulfil's groups, and any it
# records or asks for, are letters, digits, '.', '_' and '-': a group id is also a query parameter
# (?groupId=) and part of a file name.
GROUP_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
EASTERN = ZoneInfo("America/Toronto")
GROUP_PREFIX = "fulfil-"


def canada_post_day(moment: datetime | None = None) -> date:
    """The day of ``moment`` (default: now) in Canada Post's Eastern time."""
    return (moment or datetime.now(EASTERN)).astimezone(EASTERN).date()


def day_group_id(day: date) -> str:
    """The group every label bought on ``day`` goes into: ``fulfil-YYYYMMDD``."""
    group_id = f"{GROUP_PREFIX}{day:%Y%m%d}"
    assert GROUP_ID.fullmatch(group_id)
    return group_id


def group_day(group_id: str) -> date | None:
    """The day a group of fulfil's is for; None for a group fulfil did not name."""
    if not group_id.startswith(GROUP_PREFIX):
        return None
    try:
        return datetime.strptime(group_id[len(GROUP_PREFIX) :], "%Y%m%d").date()
    except ValueError:
        return None
