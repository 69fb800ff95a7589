"""Scenario values: the checks of single values, and the one-line error they raise.

Every check takes ``(value, where)`` and returns the checked value, or raises a
``ScenarioError`` that reads ``<file>: <where>: got <value>; expected <what>``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

from engine import MODES


class ScenarioError(Exception):
    """A bad scenario. ``str(e)`` is the one-line message shown to the user.

    It reads ``<file>: <where>: <problem>; <fix>``. Checks raise it without the
    file; :func:`load_scenario` fills it in.
    """

    def __init__(
        self, problem: str, *, where: str = "", fix: str = "", file: str | None = None
    ) -> None:
        super().__init__(problem)
        self.problem, self.where, self.fix, self.file = problem, where, fix, file
        self.from_flag = False  # about a command-line flag: the file is beside the point

    def __str__(self) -> str:
        text = ": ".join(part for part in (self.file, self.where, self.problem) if part)
        if self.fix:
            text = f"{text}; {self.fix}"
        return " ".join(text.splitlines())  # always one line


# --- values ------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|min|s|h|d|w)")
_DURATION = re.compile(rf"(?:{_PART.pattern})+\s*")
_DURATION_HELP = (
    'a number of seconds or a duration such as "90s", "15min" or "1h30min" '
    "(units: ms, s, min, h, d, w)"
)


def parse_duration(text: str | int | float, where: str) -> float:
    """Seconds in a duration written as a number of seconds or as "1h30min".

    ``where`` names the key in the error message.
    """
    if isinstance(text, str) and _DURATION.fullmatch(text):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    elif isinstance(text, int | float) and not isinstance(text, bool) and math.isfinite(text):
        seconds = float(text)
    else:
        _expected(text, where, _DURATION_HELP)
    if seconds <= 0:
        _expected(text, where, "a duration > 0 seconds")
    return seconds


def _describe(value: Any) -> str:
    """A value and its TOML type, as an error message shows it."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {_quote(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"date/time {value}"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _expected(value: Any, where: str, expected: str) -> NoReturn:
    raise ScenarioError(f"got {_describe(value)}", where=where, fix=f"expected {expected}")


def _unknown(problem: str, name: str, known: list[str], where: str, listing: str) -> NoReturn:
    """An unknown name, with "did you mean" when one of ``known`` is close."""
    close = difflib.get_close_matches(name, known, n=1)
    fix = f"did you mean {close[0]}? " if close else ""
    raise ScenarioError(problem, where=where, fix=f"{fix}{listing}: {', '.join(known)}")


# --- key checkers: (value, where) -> checked value ---------------------------


def _text(value: Any, where: str) -> str:
    if type(value) is not str or not value:
        _expected(value, where, "a non-empty string")
    return value


def _name(value: Any, where: str) -> str:
    if type(value) is not str or not value or "/" in value or "\\" in value:
        _expected(value, where, "a non-empty string without / or \\ (it names the results folder)")
    return value


def _whole(minimum: int) -> Callable[[Any, str], int]:
    def check(value: Any, where: str) -> int:
        if type(value) is not int or value < minimum:  # type(True) is bool, not int
            _expected(value, where, f"a whole number >= {minimum}")
        return value

    return check


def _mode(value: Any, where: str) -> str:
    if type(value) is not str or value not in MODES:
        _expected(value, where, f"one of {', '.join(MODES)}")
    return value


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        _expected(value, where, "a table")
    return value


def _id(value: Any, where: str) -> str:
    if type(value) is not str or not value or "@" in value:
        _expected(value, where, 'a non-empty string without "@"')
    return value


def _hint(value: Any, where: str) -> str | int:
    if type(value) not in (str, int):
        _expected(value, where, "a string or a whole number")
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if type(value) is not str or value not in choices:
            _expected(value, where, f"one of {', '.join(choices)}")
        return value

    return check


def _positive(expected: str = "a number > 0") -> Callable[[Any, str], float]:
    def check(value: Any, where: str) -> float:
        if not (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        ):
            _expected(value, where, expected)
        return float(value)

    return check


def _patterns(value: Any, where: str) -> list[str]:
    """A list of regular expressions, each checked now rather than at run time."""
    example = 'e.g. ["^stock$", "cans_.*"]'
    if not isinstance(value, list):
        _expected(value, where, f"an array of regular expressions, {example}")
    for i, pattern in enumerate(value):
        if type(pattern) is not str:
            _expected(pattern, f"{where}[{i}]", f"a regular expression (a string), {example}")
        try:
            re.compile(pattern)
        except re.error as error:
            raise ScenarioError(
                f"got string {_quote(pattern)}, which is not a regular expression ({error})",
                where=f"{where}[{i}]",
                fix=r"fix the pattern; to match a special character such as ( itself, "
                r"put a backslash before it: '\(' (in TOML single quotes)",
            ) from None
    return list(value)


def _boolean(value: Any, where: str) -> bool:
    if type(value) is not bool:
        _expected(value, where, "true or false")
    return value


def _process_grid(value: Any, where: str) -> tuple[int, int]:
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(type(v) is int and v >= 1 for v in value)
    ):
        _expected(value, where, "[rows, columns] of ranks, e.g. [2, 2]")
    return (value[0], value[1])


def _check_keys(
    table: dict, keys: dict[str, Callable], where: str, flags: dict[str, str] | None = None
) -> dict:
    """The checked values of ``table``, whose keys must all be in ``keys``.

    ``flags`` names the command-line flag that set a key, for its error message.
    """
    checked = {}
    for key, value in table.items():
        check = keys.get(key)
        if check is None:
            _unknown("unknown key", key, list(keys), f"{where} {key}", "allowed keys")
        flag = (flags or {}).get(key)
        if flag is None:
            checked[key] = check(value, f"{where} {key}")
            continue
        try:
            checked[key] = check(value, flag)
        except ScenarioError as error:
            error.from_flag = True
            raise
    return checked
