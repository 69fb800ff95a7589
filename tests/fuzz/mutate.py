"""A seeded mutator of scenario files: the same (seed, index) always gives the same mutant.

A mutant is a shipped scenario with one to three mutations: a key deleted, a
value of another type, an extreme number, odd unicode, a NUL byte, a huge
string, deep nesting, a bad reference or class path, an unknown key, or damage
to the text itself. Values go back to TOML through a small writer of our own.
"""

from __future__ import annotations

import copy
import json
import math
import random
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

NUMBERS = [0, -1, 1, 2, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 10**9, 0.0, -0.0, 0.5, 1e-300]
NUMBERS += [5e-324, 1e308, math.inf, -math.inf, math.nan, 10**20, 2**64, 2**64 - 1, -(2**64)]
STRINGS = ["", " ", "x", "é", "\u202eevil", "日本語", "🦀" * 3, "a\u0301", "\t", "a\nb", "\x00"]
STRINGS += ["\x7f", "..", ".", "/", "a/b", "\\", "@", "@@x", "1h", "1w", "5e-324", "-1", "inf"]
REFERENCES = ["@nobody", "@machine-99", "@", "@@", "@machine--1", "@lp-10000", "@lp-0x1"]
REFERENCES += ["@authority-4", "@bob-0", "@machine-0 ", "@MACHINE-0", "@lp-00"]
CLASSES = ["nonexistent:Foo", "models.soda:Nope", "/etc/passwd:X", "a.py:B", "models.soda:", ":"]
CLASSES += ["x" * 300 + ".py:A", "models." + "y" * 300 + ":A", "models.soda\x00:SodaMachine"]
CLASSES += ["models.soda:Customer", "models.heat:HeatPlate", "models.heat:HeatSource"]
CLASSES += ["models.epidemic:EpidemicGrid", "engine:Actor", "runtime.cli:main", "os:system"]
CLASSES += ["../models/soda/machine.py:SodaMachine", "models.phold:LP", "tests:Nope"]
KEYS = ["seed", "stop_tick", "duration", "tick_duration", "mode", "name", "count", "id", "hint"]
KEYS += ["group_size", "routing", "watchdog_s", "process_grid", "include", "exclude", "plots"]
KEYS += ["output", "policy", "weights", "class", "args", "regions", "rows", "columns", "zzz"]


@dataclass(frozen=True)
class Mutant:
    """One mutated scenario: where it comes from, what was done, and its text."""

    source: str  # the shipped scenario's file name
    mutations: tuple[str, ...]
    text: str

    @property
    def label(self) -> str:
        return f"{self.source}: {'; '.join(self.mutations)}"


def scenario_files() -> list[Path]:
    return sorted(SCENARIOS.glob("*.toml"))


def mutants(seed: int, count: int, sources: list[Path] | None = None) -> Iterator[Mutant]:
    """``count`` mutants, each made from its own generator (seed, index)."""
    files = sources or scenario_files()
    texts = {path.name: path.read_text() for path in files}
    names = sorted(texts)
    for index in range(count):
        rng = random.Random(f"{seed}:{index}")
        name = names[index % len(names)]
        yield mutate(name, texts[name], rng)


def mutate(name: str, text: str, rng: random.Random) -> Mutant:
    if rng.random() < 0.1:
        how, mutated = _text_mutation(text, rng)
        return Mutant(name, (how,), mutated)
    doc = tomllib.loads(text)
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        mutation = rng.choice(_MUTATIONS)
        done.append(mutation(doc, rng))
    try:
        return Mutant(name, tuple(done), dumps(doc))
    except RecursionError:  # nesting on nesting: too deep for the writer
        return Mutant(name, ("nested too deep to write",), text + "\nx = " + "[" * 900 + "]" * 900)


# --- mutations of the document: each changes ``doc`` in place and says what it did -----------


def _paths(value: object, path: tuple = ()) -> Iterator[tuple]:
    """Every path to a value inside ``value``: keys and list indexes."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + (key,)
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield path + (i,)
            yield from _paths(item, path + (i,))


def _get(doc: object, path: tuple) -> object:
    for step in path:
        doc = doc[step]  # type: ignore[index]
    return doc


def _pick(doc: dict, rng: random.Random, want: Callable[[object], bool] = lambda v: True) -> tuple:
    found = [p for p in _paths(doc) if want(_get(doc, p))]
    return rng.choice(found) if found else ()


def _set(doc: dict, path: tuple, value: object) -> str:
    if not path:
        doc.setdefault("simulation", {})["seed"] = value
        path = ("simulation", "seed")
    parent = _get(doc, path[:-1])
    parent[path[-1]] = value  # type: ignore[index]
    return f"{_show(path)} = {_short(value)}"


def _show(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}... ({len(text):,} chars)"


def _delete(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng)
    if not path:
        return "nothing to delete"
    parent = _get(doc, path[:-1])
    del parent[path[-1]]  # type: ignore[union-attr]
    return f"deleted {_show(path)}"


def _retype(doc: dict, rng: random.Random) -> str:
    other = rng.choice(["text", 7, 2.5, True, [], [1, "a"], {}, {"x": 1}, [[1], {"y": 2}]])
    return _set(doc, _pick(doc, rng), copy.deepcopy(other))


def _extreme(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng, lambda v: type(v) in (int, float)) or _pick(doc, rng)
    return _set(doc, path, rng.choice(NUMBERS))


def _unicode(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng, lambda v: type(v) is str) or _pick(doc, rng)
    value = _get(doc, path) if path else ""
    odd = rng.choice(STRINGS)
    new = rng.choice([odd, f"{value}{odd}", f"{odd}{value}"]) if isinstance(value, str) else odd
    return _set(doc, path, new)


def _huge(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng, lambda v: type(v) is str) or _pick(doc, rng)
    return _set(doc, path, rng.choice("ab@é/.") * rng.choice((300, 5000, 100_000)))


def _nest(doc: dict, rng: random.Random) -> str:
    depth = rng.choice((5, 40, 100))  # deeper nesting: the text mutation "deep"
    value: object = 1
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return _set(doc, _pick(doc, rng), value)


def _reference(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng, lambda v: isinstance(v, str) and v.startswith("@"))
    path = path or _pick(doc, rng, lambda v: isinstance(v, dict) and "class" not in v)
    if path and isinstance(_get(doc, path), dict):
        path = path + ("ref",)
    return _set(doc, path, rng.choice(REFERENCES))


def _class(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng, lambda v: isinstance(v, dict) and "class" in v)
    return _set(doc, path + ("class",) if path else (), rng.choice(CLASSES))


def _unknown_key(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng, lambda v: isinstance(v, dict))
    value = rng.choice(NUMBERS + STRINGS)
    return _set(doc, path + (rng.choice(KEYS),) if path else (), value)


def _count(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng, lambda v: isinstance(v, dict) and "class" in v)
    value = rng.choice([0, 1, 3, 10**6, 10**9, 2**63 - 1, -1, 2**63])
    return _set(doc, path + ("count",) if path else (), value)


def _duplicate(doc: dict, rng: random.Random) -> str:
    path = _pick(doc, rng, lambda v: isinstance(v, list) and v and isinstance(v[0], dict))
    if not path:
        return "nothing to duplicate"
    items = _get(doc, path)
    items.append(copy.deepcopy(rng.choice(items)))  # type: ignore[union-attr]
    return f"duplicated an entry of {_show(path)}"


_MUTATIONS = [_delete, _retype, _extreme, _unicode, _huge, _nest, _reference, _class]
_MUTATIONS += [_unknown_key, _count, _duplicate, _extreme, _retype, _delete]


def _text_mutation(text: str, rng: random.Random) -> tuple[str, str]:
    """Damage the text itself: what the document mutations cannot write."""
    how = rng.choice(["truncate", "byte", "deep", "nul", "bom", "duplicate-table"])
    at = rng.randrange(len(text))
    if how == "truncate":
        return f"cut at {at}", text[:at]
    if how == "byte":
        return f"byte at {at}", text[:at] + rng.choice(
            ["\x00", "\x01", "=", "[", '"', "\\"]
        ) + text[at:]
    if how == "deep":
        depth = rng.choice((100, 600, 3000))
        return f"nested {depth} deep", text + f"\n[results]\ninclude = {'[' * depth}{']' * depth}\n"
    if how == "nul":
        return "NUL in a name", text.replace('name = "', 'name = "\\u0000', 1)
    if how == "bom":
        return "BOM and CRLF", "\ufeff" + text.replace("\n", "\r\n")
    return "a table twice", text + "\n[simulation]\nseed = 1\n"


# --- a TOML writer for what the mutations make -----------------------------------------------


def dumps(doc: dict) -> str:
    """TOML for ``doc``: top-level tables as [table], arrays of tables as [[table]]."""
    lines: list[str] = []
    plain = {k: v for k, v in doc.items() if not isinstance(v, dict) and not _tables(v)}
    lines += [f"{_key(k)} = {_value(v)}" for k, v in plain.items()]
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"\n[{_key(key)}]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in value.items()]
        elif _tables(value):
            for item in value:
                lines.append(f"\n[[{_key(key)}]]")
                lines += [f"{_key(k)} = {_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _tables(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: object) -> str:
    return json.dumps(str(key), ensure_ascii=False)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))
