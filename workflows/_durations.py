"""Duration strings as the spec writes them: ``30s``, ``10m``, ``2h``, ``1d``, or seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
# ISO 8601 as pydantic/Temporal write it ("PT30S"): accepted so a spec can round-trip.
_ISO_RE = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(value: Any) -> timedelta:
    """Turn ``"30s"``, ``"10m"``, ``"2h"``, ``"1d"``, ``"PT30S"`` or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"must be a duration like 30s, 10m, 2h, 1d, got {value!r}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        iso = _ISO_RE.match(value.strip())
        if match:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        elif iso and value.strip() not in ("P", "PT"):
            days, hours, minutes, secs = (float(g) if g else 0.0 for g in iso.groups())
            seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
        else:
            raise ValueError(f"must be a duration like 30s, 10m, 2h, 1d, got {value!r}")
    else:
        raise ValueError(f"must be a duration like 30s, 10m, 2h, 1d, got {value!r}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest spec-style string for a duration (``90s`` -> ``"90s"``, ``3600s`` -> ``"1h"``)."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""A spec duration: parsed from ``"30s"``-style strings, written back the same way."""
