"""The CLI's contract for bad scenarios: one line on stderr, exit code 2, no run.

Skipped until ``runtime.cli`` exists.
"""

import subprocess
import sys

import pytest

from runtime.scenario import ScenarioError, load_scenario

pytest.importorskip("runtime.cli")

MODEL = "from engine import Actor\n\n\nclass Shop(Actor):\n    pass\n"

BAD = {
    "unknown key": "[simulation]\ntick_durtion = 1\n[[actors]]\nclass = 'model.py:Shop'\n",
    "TOML syntax": "[simulation]\nseed 5\n",
    "missing module": "[simulation]\n[[actors]]\nclass = 'no_such_pkg_xyz:Shop'\n",
    "missing class": "[simulation]\n[[actors]]\nclass = 'model.py:Shopp'\n",
    "dangling reference": "[simulation]\n[[actors]]\nclass = 'model.py:Shop'\nargs = {a = '@x'}\n",
    "no actors": "[simulation]\nseed = 1\n",
}


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
def test_bad_scenario_exits_2_with_one_line(tmp_path, text):
    (tmp_path / "model.py").write_text(MODEL)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "run", str(path), "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == f"error: {info.value}\n"
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert not (tmp_path / "results").exists()


# --- issue 9: hostile input, each one line and exit code 2, or a clean run ---------------------

SIM = "[simulation]\nstop_tick = 3\n"
SHOP = "[[actors]]\nclass = 'model.py:Shop'\n"
HEAT = (
    "[simulation]\nstop_tick = 3\n[[populations]]\nclass = 'models.heat:HeatPlate'\n"
    "args = { rows = 8, columns = 8, {} }\n"
)


def _cli(tmp_path, text, *flags, model=MODEL, timeout=120):
    """Run ``pydiasca run`` on ``text`` as a real process; return it and the --out folder."""
    (tmp_path / "model.py").write_text(model)
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "run", str(path), "--out", str(out), *flags],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, out


def _refused(done, out, *words):
    """The bad-input contract: exit 2, one line naming ``words``, no traceback, no folder."""
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    assert all(word in lines[0] for word in words), lines[0]
    assert not out.exists()
    return lines[0]


WIDE = {  # defect 4: integers above 64 bits
    "--seed above 2**64": (SIM + SHOP, ["--seed", "99999999999999999999999"], "--seed"),
    "seed = 2**64": (SIM + "seed = 18446744073709551616\n" + SHOP, [], "seed"),
    "--set seed=2**64": (SIM + SHOP, ["--set", "simulation.seed=18446744073709551616"], "seed"),
    "group_size = 10**20": (
        SIM + SHOP + "[deployment]\ngroup_size = 100000000000000000000\n",
        [],
        "group_size",
    ),
    "--group-size 10**20": (SIM + SHOP, ["--group-size", "100000000000000000000"], "--group-size"),
    "stop_tick = 2**63": (
        "[simulation]\nstop_tick = 9223372036854775808\n" + SHOP,
        [],
        "stop_tick",
    ),
    "count = 2**64": (SIM + SHOP + "count = 18446744073709551616\n", [], "count"),
    "an argument above int64": (
        SIM + SHOP + "args = { money = [1, 100000000000000000000] }\n",
        [],
        "args.money[1]",
    ),
    "--ranks 10**20": (SIM + SHOP, ["--ranks", "100000000000000000000"], "--ranks"),
}


@pytest.mark.parametrize("text, flags, word", WIDE.values(), ids=WIDE.keys())
def test_integers_beyond_64_bits_are_refused_up_front(tmp_path, text, flags, word):
    _refused(*_cli(tmp_path, text, *flags), word)


def test_the_largest_seed_runs_and_is_kept(tmp_path):
    import h5py

    done, out = _cli(tmp_path, SIM + SHOP, "--seed", str(2**64 - 1))
    assert done.returncode == 0, done.stderr
    with h5py.File(out / "results.h5") as f:
        assert int(f.attrs["seed"]) == 2**64 - 1 and f.attrs["status"] == "completed"


EXIT_AT_IMPORT = "import sys\nsys.exit(3)\n"
RAISE_AT_IMPORT = "raise BaseException('no')\n"
CHECKER = {  # defect 5: the checker's own tracebacks
    "TOML nested 600 deep": (
        SIM + SHOP + "[results]\ninclude = " + "[" * 600 + "]" * 600,
        "nested too deeply",
    ),
    "tick 5e-324 for a week": (
        "[simulation]\ntick_duration = 5e-324\nduration = '1w'\n" + SHOP,
        "duration",
    ),
    "regex repeat overflow": (
        SIM + SHOP + "[results]\ninclude = ['a{99999999999999999999}']\n",
        "include[0]",
    ),
    "class path too long": (SIM + "[[actors]]\nclass = '" + "x" * 300 + ".py:A'\n", "class"),
    "module name too long": (
        SIM + "[[actors]]\nclass = 'models." + "y" * 300 + ":A'\n",
        "class",
    ),
    "name too long": (SIM.replace("\n", "\nname = '" + "n" * 300 + "'\n", 1) + SHOP, "name"),
    "NUL in a class path": (SIM + '[[actors]]\nclass = "model.py\\u0000:Shop"\n', "class"),
    "NUL in the name": (SIM.replace("\n", '\nname = "a\\u0000b"\n', 1) + SHOP, "name"),
    "NUL in an argument": (SIM + SHOP + 'args = { a = "x\\u0000" }\n', "args.a"),
    "10,000 include patterns": (
        SIM + SHOP + "[results]\ninclude = [" + ", ".join(["'a'"] * 10_000) + "]\n",
        "include",
    ),
    "sys.exit at import": (SIM + "[[actors]]\nclass = 'exits.py:A'\n", "exits.py"),
    "BaseException at import": (SIM + "[[actors]]\nclass = 'raises.py:A'\n", "raises.py"),
}


@pytest.mark.parametrize("text, word", CHECKER.values(), ids=CHECKER.keys())
def test_the_checker_never_shows_a_traceback(tmp_path, text, word):
    (tmp_path / "exits.py").write_text(EXIT_AT_IMPORT)
    (tmp_path / "raises.py").write_text(RAISE_AT_IMPORT)
    _refused(*_cli(tmp_path, text), word)


DENSE = {  # defect 6: dense-population arguments of the wrong type
    "regions a string": ("regions = 'abc'", "args.regions"),
    "columns inf": ("wall = 0.0", "args.columns"),
    "wall a table": ("wall = { x = 1 }", "args.wall"),
    "regions of floats": ("regions = [1.5, 1]", "regions"),
    "regions too many": ("regions = [2, 99999999999]", "regions"),
    "boundary a number": ("boundary = 3", "args.boundary"),
}


@pytest.mark.parametrize("arg, word", DENSE.values(), ids=DENSE.keys())
def test_dense_arguments_of_the_wrong_type_are_refused(tmp_path, arg, word):
    text = HEAT.replace("{}", arg)
    if "columns inf" in arg or word == "args.columns":
        text = text.replace("columns = 8", "columns = inf")
    _refused(*_cli(tmp_path, text), word)


@pytest.mark.parametrize("count", [10**9, 2**63 - 1])
def test_a_count_that_cannot_fit_in_memory_is_refused_with_an_estimate(tmp_path, count):
    line = _refused(*_cli(tmp_path, SIM + SHOP + f"count = {count}\n", timeout=60), "count")
    assert f"{count:,} actors need at least" in line and "available" in line


def test_cells_that_cannot_fit_in_memory_are_refused_with_an_estimate(tmp_path):
    text = HEAT.replace("{}", "wall = 0.0").replace(
        "rows = 8, columns = 8", "rows = 10000000, columns = 10000000"
    )
    line = _refused(*_cli(tmp_path, text, timeout=60), "[[populations]] #1")
    assert "cells of population heatplate need at least" in line


# --- defect 12 -------------------------------------------------------------------------------


def test_a_hint_only_suggests_a_reference_that_resolves(tmp_path):
    text = SIM + SHOP + "id = 'bob'\n" + SHOP + "args = { to = '@bobb-0' }\n"
    line = _refused(*_cli(tmp_path, text), "dangling reference")
    assert "@bob-0" not in line and 'did you mean "@bob"?' in line


@pytest.mark.parametrize(
    "flags, word",
    [
        (["--seed", "-1"], "--seed"),
        (["--seed", "abc"], "--seed"),
        (["--stop-tick", "x"], "--stop-tick"),
        (["--mode", "nope"], "--mode"),
        (["--routing", "nope"], "--routing"),
        (["--placement", "nope"], "--placement"),
        (["--ranks", "two"], "--ranks"),
        (["--no-such-flag"], "--no-such-flag"),
    ],
)
def test_every_bad_flag_is_one_line(tmp_path, flags, word):
    _refused(*_cli(tmp_path, SIM + SHOP, *flags), word)


def test_help_still_works():
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "--seed" in done.stdout


LONG_PROBE = """
from engine import Actor


class Shop(Actor):
    def on_first_diasca(self):
        self.record("p" * 5000, 1.0)
"""


def test_a_probe_name_too_long_for_a_file_is_a_model_failure(tmp_path):
    done, out = _cli(tmp_path, SIM + SHOP, model=LONG_PROBE)
    assert done.returncode == 1, done.stderr[-2000:]
    report = (out / "failure.txt").read_text()
    assert "a probe name must be a non-empty string of at most 200" in report
    assert "(5,000 characters)" in report


def test_an_override_nested_too_deeply_is_one_line(tmp_path):
    deep = "[" * 900 + "]" * 900
    line = _refused(*_cli(tmp_path, SIM + SHOP, "--set", f"results.include={deep}"), "--set")
    assert "nested too deeply" in line and len(line) < 400


def test_a_watchdog_beyond_any_clock_is_refused(tmp_path):
    _refused(*_cli(tmp_path, SIM + SHOP, "--set", "deployment.watchdog_s=1e300"), "watchdog_s")


@pytest.mark.parametrize("where", ["output", "--out"])
def test_a_run_folder_name_too_long_for_the_file_system_is_one_line(tmp_path, where):
    long = "z" * 300
    text = SIM + SHOP + (f"[results]\noutput = '{long}'\n" if where == "output" else "")
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "s.toml").write_text(text)
    out = ["--out", long] if where == "--out" else []
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "run", "s.toml", *out],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _refused(done, tmp_path / "never", "cannot write the run folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py", "s.toml"]


# --- issue 13: messaging errors name actors by their scenario ids -----------------------------

FLOCK = """\
from engine import Actor


class Sheep(Actor):
    def __init__(self, patch: int = 0) -> None:
        self.patch = patch

    def on_first_diasca(self):
        self.send(self.patch + 1, "arrive")  # off by one: the patch is self.patch

    def grazed(self, sender):
        pass


class Patch(Actor):
    def arrive(self, sender):
        pass
"""


def test_a_send_to_the_wrong_class_names_both_actors_by_scenario_id(tmp_path):
    text = (
        SIM
        + "[[actors]]\nid = 'patch'\nclass = 'model.py:Patch'\n"
        + "[[actors]]\nid = 'sheep'\nclass = 'model.py:Sheep'\ncount = 2\n"
        + "args = { patch = '@patch' }\n"
    )
    done, out = _cli(tmp_path, text, model=FLOCK)
    assert done.returncode == 1, done.stderr[-2000:]
    assert (
        "error: model failure in actor 2 (Sheep, id 'sheep-0'), on_first_diasca, at tick 0 "
        "diasca 0 on rank 0: MessageError: actor 2 (Sheep, id 'sheep-0') at tick 0 diasca 0 "
        "(model.py:9) sent 'arrive' to actor 2 (Sheep, id 'sheep-0'): that actor is a Sheep, "
        "which has no handler 'arrive' (Patch has one); check the AAI it sent to"
    ) in done.stderr
    assert "(Sheep, id 'sheep-0')" in (out / "failure.txt").read_text()
