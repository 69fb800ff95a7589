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

from engine import MODES, PLOT_MODES


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


def _quote(text: str, limit: int = 100) -> str:
    """``text`` in double quotes, as TOML writes it; a long one is cut, with its length."""
    if len(text) > limit:
        cut = json.dumps(text[:limit], ensure_ascii=False)[:-1]
        return f'{cut}..." ({len(text):,} characters)'
    return json.dumps(text, ensure_ascii=False)


def _expected(value: Any, where: str, expected: str) -> NoReturn:
    raise ScenarioError(f"got {_describe(value)}", where=where, fix=f"expected {expected}")


def _unknown(problem: str, name: str, known: list[str], where: str, listing: str) -> NoReturn:
    """An unknown name, with "did you mean" when one of ``known`` is close."""
    close = difflib.get_close_matches(name, known, n=1)
    fix = f"did you mean {close[0]}? " if close else ""
    raise ScenarioError(problem, where=where, fix=f"{fix}{listing}: {', '.join(known)}")


# --- key checkers: (value, where) -> checked value ---------------------------


# Bounds of the values that reach files, arrays and the operating system.
INT64_MAX = 2**63 - 1  # HDF5 and NumPy store no larger integer (nor does TOML allow one)
SEED_LIMIT = 2**64  # seeds are 64-bit keys: 0 <= seed < 2**64
MAX_RANKS = 2**31 - 1  # MPI counts ranks in a C int
MAX_TEXT = 4096  # characters of a string setting (PATH_MAX on Linux)
MAX_NAME_BYTES = 200  # a name becomes a folder "<name>-<timestamp>": 255 bytes at most
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _plain(value: str, where: str, limit: int, unit: str = "characters") -> str:
    """A string without control characters (NUL, newline...) and at most ``limit`` long.

    ``unit`` "bytes" counts the UTF-8 bytes, as a file name's limit does.
    """
    found = _CONTROL.search(value)
    if found:
        raise ScenarioError(
            f"got a string with the control character {found.group()!r} "
            f"at position {found.start()}",
            where=where,
            fix="remove it",
        )
    size = len(value.encode("utf-8", "surrogatepass")) if unit == "bytes" else len(value)
    if size > limit:
        raise ScenarioError(
            f"got a string of {size:,} {unit}", where=where, fix=f"expected at most {limit:,}"
        )
    return value


def _text(value: Any, where: str) -> str:
    if type(value) is not str or not value:
        _expected(value, where, "a non-empty string")
    return _plain(value, where, MAX_TEXT)


def _name(value: Any, where: str) -> str:
    if type(value) is not str or not value or "/" in value or "\\" in value:
        _expected(value, where, "a non-empty string without / or \\ (it names the results folder)")
    return _plain(value, where, MAX_NAME_BYTES, "bytes")


def _whole(minimum: int, maximum: int = INT64_MAX) -> Callable[[Any, str], int]:
    """A check of a whole number in [minimum, maximum]: every integer setting has bounds."""

    def check(value: Any, where: str) -> int:
        if type(value) is not int or value < minimum:  # type(True) is bool, not int
            _expected(value, where, f"a whole number >= {minimum}")
        if value > maximum:
            _expected(value, where, f"a whole number from {minimum} to {maximum}")
        return value

    return check


def _arguments(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what no run can keep, anywhere in an ``args`` value.

    Arguments end up in actors' state, probes and HDF5 files: none holds an
    integer beyond 64 bits (nor does TOML allow one) or a NUL character, and
    nesting deeper than ``MAX_DEPTH`` levels only breaks recursion later.
    """
    if depth > MAX_DEPTH:
        raise ScenarioError(
            f"got arrays or tables nested more than {MAX_DEPTH} levels deep",
            where=where,
            fix="flatten the value",
        )
    if type(value) is int and not -INT64_MAX - 1 <= value <= INT64_MAX:
        _expected(value, where, f"an integer from {-INT64_MAX - 1} to {INT64_MAX} (64 bits)")
    if type(value) is str and "\x00" in value:
        raise ScenarioError(
            f"got a string with a NUL character at position {value.index(chr(0))}",
            where=where,
            fix="remove it: results files cannot hold it",
        )
    if isinstance(value, list):
        for i, item in enumerate(value):
            _arguments(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _arguments(item, f"{where}.{key}", depth + 1)


MAX_DEPTH = 32  # levels of arrays and tables inside one value


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
    return _plain(value, where, MAX_TEXT)


def _hint(value: Any, where: str) -> str | int:
    if type(value) not in (str, int):
        _expected(value, where, "a string or a whole number")
    _arguments(value, where)
    return value


def _one_of(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, where: str) -> str:
        if type(value) is not str or value not in choices:
            _expected(value, where, f"one of {', '.join(choices)}")
        return value

    return check


def _positive(
    expected: str = "a number > 0", maximum: float = math.inf
) -> Callable[[Any, str], float]:
    def check(value: Any, where: str) -> float:
        if not (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        ):
            _expected(value, where, expected)
        if value > maximum:
            _expected(value, where, f"{expected}, at most {maximum:g}")
        return float(value)

    return check


MAX_PATTERNS = 1000  # results.h5 keeps the patterns in an attribute, which holds 64 KiB


def _patterns(value: Any, where: str) -> list[str]:
    """A list of regular expressions, each checked now rather than at run time."""
    example = 'e.g. ["^stock$", "cans_.*"]'
    if not isinstance(value, list):
        _expected(value, where, f"an array of regular expressions, {example}")
    if len(value) > MAX_PATTERNS:
        raise ScenarioError(
            f"got {len(value):,} patterns",
            where=where,
            fix=f"expected at most {MAX_PATTERNS}: join patterns with | (a|b matches a or b)",
        )
    for i, pattern in enumerate(value):
        if type(pattern) is not str:
            _expected(pattern, f"{where}[{i}]", f"a regular expression (a string), {example}")
        _plain(pattern, f"{where}[{i}]", MAX_TEXT)
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as error:
            raise ScenarioError(
                f"got string {_quote(pattern)}, which is not a regular expression ({error})",
                where=f"{where}[{i}]",
                fix=r"fix the pattern; to match a special character such as ( itself, "
                r"put a backslash before it: '\(' (in TOML single quotes)",
            ) from None
    return list(value)


def _plot_modes(value: Any, where: str) -> dict[str, str]:
    """``{ probe = "mode" }``: how ``pydiasca plot`` draws each named probe."""
    example = '{ sheep = "sum", lifespan = "events" }'
    if not isinstance(value, dict):
        _expected(value, where, f"a table of probe names and plot modes, e.g. {example}")
    for name, mode in value.items():
        _plain(name, where, MAX_TEXT)
        if type(mode) is not str:
            _expected(mode, f"{where}.{name}", f"a plot mode: one of {', '.join(PLOT_MODES)}")
        if mode not in PLOT_MODES:
            problem = f"unknown plot mode {_quote(mode)}"
            _unknown(problem, mode, list(PLOT_MODES), f"{where}.{name}", "plot modes")
    return dict(value)


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
