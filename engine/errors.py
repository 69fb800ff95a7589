"""The exceptions a model or a scenario can meet, each carrying a message meant for a user."""

from __future__ import annotations


class SimulationError(Exception):
    """A misuse of the engine by a model: the message says what, where and how to fix it."""


class PlanningError(SimulationError):
    """An actor planned or withdrew a tick it may not."""


class MessageError(SimulationError):
    """A message that cannot be sent or delivered."""


class TimeConversionError(SimulationError, ValueError):
    """A duration that whole ticks cannot express closely enough."""
