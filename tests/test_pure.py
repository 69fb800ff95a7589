"""The engine without its C cores: the Python references alone give the same results.

setup.py builds optional C cores (engine._stream, engine._mail, engine._actor,
engine._packing). Where no compiler is at hand the engine runs on their Python
references, so each run here blocks the cores in a fresh interpreter and checks
that whole models give the digests of the compiled run, and that the time-model
tests pass.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import C_CORES, PURE_PYTHON, ROOT
from dense_support import digest, run_ranks
from test_mail import _world

from engine.kernel import MODES

RUNS = [(ranks, mode) for ranks in (1, 3) for mode in MODES]

SCRIPT = f"""
import sys
for name in {C_CORES!r}:
    sys.modules[name] = None
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "tests")!r}]
import engine.actor, engine.mail, engine.random
assert engine.actor._Core is engine.actor._PyActorCore
assert engine.mail.Mail is engine.mail._PyMail and engine.mail.deliver is engine.mail._py_deliver
assert not engine.random.COMPILED
from dense_support import digest, run_ranks
from test_mail import _world
for ranks, mode in {RUNS!r}:
    print(digest(run_ranks(ranks, _world, stop_tick=40, mode=mode)))
from runtime.cli import main
main(["run", "scenarios/soda-stochastic.toml", "--out", sys.argv[1]])
"""


def _pure(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, PURE_PYTHON: "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_models_give_the_compiled_digests_on_the_python_references(tmp_path):
    proc = _pure(["-c", SCRIPT, str(tmp_path / "run")])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    expected = [digest(run_ranks(r, _world, stop_tick=40, mode=m)) for r, m in RUNS]
    assert lines[: len(RUNS)] == expected
    assert "results digest: c8f292c4" in proc.stdout  # the shipped soda-stochastic digest


def test_the_time_model_tests_pass_on_the_python_references():
    proc = _pure(
        [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_time_model.py",
            "tests/test_mail.py",
            f"{__file__}::test_the_cores_are_blocked_when_asked",
        ]
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout


def test_the_cores_are_blocked_when_asked():
    if not os.environ.get(PURE_PYTHON):
        pytest.skip("runs inside test_the_time_model_tests_pass_on_the_python_references")
    import engine.actor
    import engine.mail
    import engine.random

    assert engine.actor._Core is engine.actor._PyActorCore
    assert engine.mail.deliver is engine.mail._py_deliver
    assert not engine.random.COMPILED
