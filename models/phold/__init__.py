"""PHOLD, the standard parallel discrete-event benchmark, mapped to ticks."""

from .model import LP

__all__ = ["LP"]
