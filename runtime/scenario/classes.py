"""Model classes named by scenarios: import them, and match their constructor arguments.

A class is ``"package.module:Class"`` or ``"path/to/file.py:Class"``; a file is
loaded once, under a module name derived from its absolute path, so that every
rank gives it the same name (pickle needs it) and two files called model.py do
not clash.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import sys
import types
import typing
from collections import abc
from pathlib import Path
from types import ModuleType
from typing import NoReturn

from engine import Actor

from .values import ScenarioError, _expected, _quote, _unknown


def _resolve_class(ref: str, folder: Path, where: str, base: type = Actor) -> type:
    """The ``base`` subclass named by "package.module:Class" or "path/to/file.py:Class"."""
    module_name, _, class_name = ref.rpartition(":")
    if not module_name or not class_name:
        raise ScenarioError(
            f"got string {_quote(ref)}",
            where=where,
            fix='expected "package.module:Class" or "path/to/file.py:Class"',
        )
    is_file = module_name.endswith(".py") or "/" in module_name or "\\" in module_name
    module = _import_file(module_name, folder, where) if is_file else _import(module_name, where)
    cls = getattr(module, class_name, None)
    if cls is None:
        kind = base.__name__
        actors = sorted(
            name
            for name, obj in vars(module).items()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base
        )
        close = difflib.get_close_matches(class_name, actors, n=1)
        fix = f"did you mean {close[0]}? " if close else ""
        fix += f"its {kind} classes: {', '.join(actors)}" if actors else f"it has no {kind} class"
        raise ScenarioError(f"{_quote(module_name)} has no {class_name}", where=where, fix=fix)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ScenarioError(
            f"{class_name} is not a subclass of engine.{base.__name__}",
            where=where,
            fix=f"name a class that subclasses engine.{base.__name__}",
        )
    return cls


def _import(name: str, where: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and (name == error.name or name.startswith(error.name + ".")):
            raise ScenarioError(
                f"no module named {_quote(name)}",
                where=where,
                fix='check the spelling, or give a file: "path/to/file.py:Class"',
            ) from error
        _import_failed(name, error, where)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # also sys.exit() and BaseException at import
        _import_failed(name, error, where)


def _import_file(name: str, folder: Path, where: str) -> ModuleType:
    """Load a model file once, under a name that is the same on every rank.

    The name comes from the absolute path, so two files both called model.py do
    not clash, and it is registered in sys.modules so pickle finds the classes.
    """
    try:
        path = (folder / name).resolve()
        found = path.is_file()
    except (OSError, ValueError) as error:  # a name too long for the file system, a NUL
        raise ScenarioError(
            f"cannot use the path {_quote(name)} ({getattr(error, 'strerror', None) or error})",
            where=where,
            fix="give the path of a .py file, relative to the scenario file's folder",
        ) from None
    if not found:
        raise ScenarioError(
            f"no file {path}", where=where, fix="paths are relative to the scenario file's folder"
        )
    module_name = "pydiasca_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError(f"cannot load {path} as Python", where=where, fix="name a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:  # Ctrl-C while loading: the user's, not the module's
        del sys.modules[module_name]
        raise
    except BaseException as error:  # sys.exit() or BaseException at import: still the module's
        del sys.modules[module_name]
        _import_failed(name, error, where)
    return module


def _import_failed(name: str, error: BaseException, where: str) -> NoReturn:
    raise ScenarioError(
        f"importing {_quote(name)} failed: {type(error).__name__}: {error}",
        where=where,
        fix="fix that module",
    ) from error


def _check_args(cls: type, base: type, args: dict, label: str) -> None:
    """Match ``args`` against the constructor, if the class has one of its own.

    The base classes' constructors take any keyword and set it as an attribute.
    """
    if cls.__init__ is base.__init__:
        return
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # past self
    except (TypeError, ValueError):
        return
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    call = f"{cls.__name__}()"
    for key in args:
        if key not in named and not takes_any:
            where = f"{label} args.{key}"
            if not named:
                raise ScenarioError(
                    f"unknown argument of {call}", where=where, fix=f"{call} takes no arguments"
                )
            _unknown(f"unknown argument of {call}", key, named, where, f"{call} accepts")
    missing = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.name not in args
    ]
    if missing:
        example = ", ".join(f"{name} = ..." for name in missing)
        raise ScenarioError(
            f"missing required argument{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} of {call}",
            where=f"{label} args",
            fix=f"add {'them' if len(missing) > 1 else 'it'} to args, e.g. args = {{ {example} }}",
        )


def _check_types(cls: type, base: type, args: dict, label: str) -> None:
    """Match each argument against its constructor annotation, where that is a plain type.

    ``rows: int`` refuses ``rows = inf``, ``regions: list | tuple`` refuses
    ``regions = "abc"``: the run would fail later, with a traceback, or silently.
    Annotations that are not plain types (classes of the model, ``Any``) accept anything.
    """
    if cls.__init__ is base.__init__:
        return
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that does not evaluate: nothing to check against
        return
    for key, value in args.items():
        accepted = _accepted(hints.get(key, typing.Any))
        if accepted is not None and not _matches(value, accepted):
            # TOML has no None, and a number covers the integers
            skip = {type(None)} | ({int} if float in accepted else set())
            names = sorted({_TYPE_NAMES[t] for t in accepted if t not in skip})
            _expected(
                value,
                f"{label} args.{key}",
                f"{' or '.join(names)} (as {cls.__name__}() declares {key})",
            )


# What a TOML value must be to match a plain annotation; None: no check.
_PLAIN = {int: (int,), float: (int, float), bool: (bool,), str: (str,), type(None): (type(None),)}
_PLAIN.update({t: (list,) for t in (list, tuple, abc.Sequence, abc.Iterable, abc.Collection)})
_PLAIN.update({t: (dict,) for t in (dict, abc.Mapping)})
_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def _accepted(hint: object) -> tuple[type, ...] | None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [_accepted(h) for h in typing.get_args(hint)]
        if any(m is None for m in members):
            return None
        return tuple(t for m in members for t in m)  # type: ignore[union-attr]
    return _PLAIN.get(origin or hint)  # list[int] is checked as a list


def _matches(value: object, accepted: tuple[type, ...]) -> bool:
    if type(value) is bool:
        return bool in accepted
    return type(value) in accepted
