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


# --- structure: one home for each concept ---------------------------------------------

PACKAGES = ("engine", "runtime")
MAX_MODULE_LINES = 620  # "no module over ~600 lines": split by concept before it grows past


def _module_name(path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _runtime_imports(path, modules: set[str]) -> set[str]:
    """Modules of ``modules`` that ``path`` imports when it runs, at any depth of the
    file (imports inside functions count), leaving out ``if TYPE_CHECKING:`` blocks."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = (
                (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            )
            submodules = {f"{module}.{a.name}" for a in node.names} & modules
            if node.module is None and len(submodules) == len(node.names):
                found.update(submodules)  # "from . import rng": the submodule, not the package
            else:
                found.add(module)
                found.update(submodules)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in modules and m != me}


def _package_files():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_no_import_cycles_in_engine_or_runtime():
    files = list(_package_files())
    modules = {_module_name(p) for p in files}
    graph = {_module_name(p): _runtime_imports(p, modules) for p in files}
    # A package's __init__ running its submodules is not a cycle; a submodule
    # importing its own package's __init__ back would be, and counts.
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n) :] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                walk(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m)


def test_the_cycle_check_finds_a_cycle(tmp_path, monkeypatch):
    """The check above must be able to fail: two modules importing each other."""
    pkg = tmp_path / "engine"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("from engine.a import f\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "PACKAGES", ("engine",))
    try:
        test_no_import_cycles_in_engine_or_runtime()
    except AssertionError as error:
        assert "engine.a -> engine.b -> engine.a" in str(error)
    else:
        raise AssertionError("the cycle between engine.a and engine.b went unnoticed")


def test_no_module_is_over_about_600_lines():
    too_long = {
        str(p.relative_to(ROOT)): n
        for p in _package_files()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"split these by concept: {too_long}"


def test_packages_say_what_is_public():
    for package in PACKAGES:
        tree = ast.parse((ROOT / package / "__init__.py").read_text())
        names = [
            t.id
            for node in tree.body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        ]
        assert "__all__" in names, f"{package}/__init__.py has no __all__"


def test_runtime_public_names_resolve():
    import runtime

    for name in runtime.__all__:
        assert getattr(runtime, name).__name__ == name


def _kernel_uses(path) -> set[str]:
    """Attributes that ``path`` reads off an actor's kernel: ``self._k.X``, ``sender._k.X``,
    and ``k.X`` where ``k`` was bound to such a ``._k``."""
    used: set[str] = set()
    for func in ast.walk(ast.parse(path.read_text())):
        if not isinstance(func, ast.FunctionDef):
            continue
        aliases = {
            t.id
            for node in ast.walk(func)
            if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "_k"
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(func):
            if not isinstance(node, ast.Attribute):
                continue
            base = node.value
            if isinstance(base, ast.Attribute) and base.attr == "_k":
                used.add(node.attr)
            elif isinstance(base, ast.Name) and base.id in aliases:
                used.add(node.attr)
    return used


def test_actor_uses_only_the_named_kernel_surface():
    from engine import Kernel
    from engine.actor import KernelSurface

    surface = {n for n in vars(KernelSurface) if not n.startswith("_")}
    surface |= set(KernelSurface.__annotations__)
    used = _kernel_uses(ROOT / "engine" / "actor.py")
    assert used, "the check found no use of the kernel at all: it is broken"
    assert used <= surface, f"Actor reaches past KernelSurface: {sorted(used - surface)}"
    kernel = Kernel()
    missing = [name for name in sorted(surface) if not hasattr(kernel, name)]
    assert not missing, f"Kernel lacks {missing} of KernelSurface"


def test_the_readme_model_example_runs_as_written(tmp_path):
    import subprocess
    import sys

    import h5py

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## What a model looks like") : text.index("## The command line")]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (scenario,) = re.findall(r"```toml\n(.*?)```", section, re.S)
    (tmp_path / "shop.py").write_text(code)
    (tmp_path / "shop.toml").write_text(scenario)
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "run", "shop.toml", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with h5py.File(tmp_path / "out" / "results.h5") as f:
        assert f.attrs["status"] == "completed"
        assert {"money", "stock", "refused"} <= set(f["probes"])
