"""Repository contracts: the Quickstart, CI and the layering rules stay true."""

from __future__ import annotations

import ast
import re

from conftest import ROOT


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^#+\s*Quickstart\s*$\s*```[^\n]*\n(.*?)^```", text, re.M | re.S)
    assert match, "README.md needs a Quickstart heading followed by a code block"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_second():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert "scenarios/soda.toml" in commands[0]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_runtime_models_or_mpi():
    for path in (ROOT / "engine").rglob("*.py"):
        bad = _imports(path) & {"runtime", "models", "mpi4py"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_models_depend_on_engine_only():
    for path in (ROOT / "models").rglob("*.py"):
        bad = _imports(path) & {"runtime", "mpi4py"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_single_process_run_imports_no_mpi(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from runtime.cli import main; "
        f"rc = main(['run', 'scenarios/soda.toml', '--out', r'{tmp_path / 'run'}']); "
        "assert rc == 0, rc; assert 'mpi4py' not in sys.modules, 'mpi4py was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
