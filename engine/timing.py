"""Conversions between seconds and ticks, shared by actors and scenario loading."""

from __future__ import annotations

from .errors import TimeConversionError

MAX_RELATIVE_ERROR = 0.015
MAX_TICK = 2**63 - 1  # ticks are stored as int64


def seconds_to_ticks(seconds: float, tick_duration: float) -> int:
    """Whole ticks closest to ``seconds``.

    Refuses (rather than silently distorts) a duration that ticks of this length
    cannot express within 1.5%, and never turns a positive duration into 0 ticks,
    which would plan the current tick.
    """
    if not seconds >= 0:  # also NaN
        what = "a negative duration" if seconds < 0 else "a duration that is not a number"
        raise TimeConversionError(f"cannot convert {what} ({seconds} s) to ticks")
    if seconds == 0:
        return 0
    exact = seconds / tick_duration
    if not exact <= MAX_TICK:  # also inf and NaN
        raise TimeConversionError(
            f"{seconds} s is more than {MAX_TICK} ticks of {tick_duration} s; "
            f"use a longer tick_duration or a shorter duration"
        )
    ticks = max(1, round(exact))
    error = abs(ticks * tick_duration - seconds) / seconds
    if error > MAX_RELATIVE_ERROR:
        raise TimeConversionError(
            f"{seconds} s is not a whole number of {tick_duration} s ticks: the nearest, "
            f"{ticks} tick(s) = {ticks * tick_duration:g} s, is off by {error:.1%} (limit 1.5%); "
            f"use a shorter tick_duration or a duration closer to a multiple of it"
        )
    return ticks
