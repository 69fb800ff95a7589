"""Conversions between seconds and ticks, shared by actors and scenario loading."""

from __future__ import annotations

from .errors import TimeConversionError

MAX_RELATIVE_ERROR = 0.015


def seconds_to_ticks(seconds: float, tick_duration: float) -> int:
    """Whole ticks closest to ``seconds``.

    Refuses (rather than silently distorts) a duration that ticks of this length
    cannot express within 1.5%, and never turns a positive duration into 0 ticks,
    which would plan the current tick.
    """
    if seconds < 0:
        raise TimeConversionError(f"cannot convert a negative duration ({seconds} s) to ticks")
    if seconds == 0:
        return 0
    ticks = max(1, round(seconds / tick_duration))
    error = abs(ticks * tick_duration - seconds) / seconds
    if error > MAX_RELATIVE_ERROR:
        raise TimeConversionError(
            f"{seconds} s is not a whole number of {tick_duration} s ticks: the nearest, "
            f"{ticks} tick(s) = {ticks * tick_duration:g} s, is off by {error:.1%} (limit 1.5%); "
            f"use a shorter tick_duration or a duration closer to a multiple of it"
        )
    return ticks
