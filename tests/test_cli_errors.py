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
