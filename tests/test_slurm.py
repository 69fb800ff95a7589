"""pydiasca under a real SLURM: srun, the batch scripts of docs/clusters.md, scancel.

The tests that run jobs need a SLURM cluster that answers on this machine with
at least 3 CPUs, and whose MpiDefault is none (as on many sites): CI starts a
one-node one with .ci/slurm-up when it runs as root with apt. Elsewhere they skip,
unless PYDIASCA_REQUIRE_SLURM=1 (which CI sets once its cluster is up) makes a
missing cluster a failure. Each run is checked against the one-process digest.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

DOC = ROOT / "docs" / "clusters.md"
BIN = Path(sys.executable).parent  # this venv: its pydiasca, and the mpich wheel's MPI
PYDIASCA = str(BIN / "pydiasca")
SCENARIO = "scenarios/soda.toml"
TASKS = 3


def _slurm_state() -> str:
    """'' when a SLURM cluster answers here with an idle node, else why not."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "SLURM is not installed (no sinfo/sbatch)"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T %c"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    nodes = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode or not any(s in ("idle", "mixed") for s, _ in nodes):
        return f"no SLURM node is up (sinfo: {(proc.stdout + proc.stderr).strip()!r})"
    if not any(int(c.rstrip("+")) >= TASKS for _, c in nodes):
        return f"no SLURM node has {TASKS} CPUs"
    return ""


_WHY = _slurm_state()
needs_slurm = pytest.mark.skipif(
    bool(_WHY) and os.environ.get("PYDIASCA_REQUIRE_SLURM") != "1",
    reason=f"{_WHY}; as root with apt, .ci/slurm-up starts a one-node SLURM for these tests",
)


def _digests(text: str) -> list[str]:
    return re.findall(r"^results digest: ([0-9a-f]{64})$", text, re.M)


def _info(run_dir: Path) -> dict[str, str]:
    """`pydiasca info` as {key: value} for its one-word keys."""
    proc = subprocess.run(
        [PYDIASCA, "info", str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return dict(re.findall(r"^(\w+) +(.+)$", proc.stdout, re.M))


@pytest.fixture(scope="module")
def one_process_digest(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("one") / "run"
    proc = subprocess.run(
        [PYDIASCA, "run", SCENARIO, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    (digest,) = _digests(proc.stdout)
    return digest


def _srun(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["srun", f"--ntasks={TASKS}", "--time=00:02:00", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


@needs_slurm
def test_srun_pmi2_runs_one_job_of_three_ranks(tmp_path, one_process_digest):
    out = tmp_path / "run"
    proc = _srun("--mpi=pmi2", PYDIASCA, "run", SCENARIO, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert _digests(proc.stdout) == [one_process_digest]
    assert _info(out)["ranks"] == str(TASKS)


@needs_slurm
def test_srun_without_pmi_is_refused_in_one_line(tmp_path):
    """MpiDefault=none and no --mpi: 3 tasks that MPI does not join must not run alone."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    if not re.search(r"^MpiDefault\s*=\s*none$", config.stdout, re.M):
        pytest.skip("this SLURM's MpiDefault is not none: plain srun may wire MPI up")
    out = tmp_path / "run"
    proc = _srun(PYDIASCA, "run", SCENARIO, "--out", str(out))  # as the doc once said
    assert proc.returncode == 2, proc.stdout + proc.stderr
    ours = [line for line in proc.stderr.splitlines() if not line.startswith("srun:")]
    assert len(ours) == 1, proc.stderr
    assert ours[0].startswith(f"error: srun started {TASKS} tasks")
    assert "srun --mpi=pmi2" in ours[0]
    assert proc.stdout == ""
    assert not out.exists()


def _doc_scripts() -> dict[str, str]:
    """The batch scripts of docs/clusters.md, by job name."""
    blocks = re.findall(r"^```sh\n(#!/bin/bash\n.*?)^```", DOC.read_text(), re.M | re.S)
    scripts = {}
    for block in blocks:
        name = re.search(r"^#SBATCH --job-name=(\S+)", block, re.M)
        assert name, f"a batch script of {DOC.name} has no --job-name"
        scripts[name.group(1)] = block
    return scripts


def _shrunk(script: str) -> str:
    """The script on one node of TASKS tasks, with a short time limit and small groups."""
    for option, value in (
        ("nodes", "1"),
        ("ntasks", str(TASKS)),
        ("ntasks-per-node", str(TASKS)),
        ("time", "00:03:00"),
    ):
        script = re.sub(rf"^(#SBATCH --{option}=)\S+", rf"\g<1>{value}", script, flags=re.M)
    return re.sub(r"--group-size \d+", "--group-size 2", script)  # 2 groups: s_group for real


def test_the_doc_has_the_batch_scripts_this_file_runs():
    assert set(_doc_scripts()) == {"try-pydiasca", "soda", "long-run"}
    for script in _doc_scripts().values():
        assert "srun --mpi=pmi2 pydiasca run" in script
    assert "srun --mpi=pmi2 pydiasca resume" in _doc_scripts()["long-run"]


def _job(job: str) -> dict[str, str]:
    """`scontrol show job` as {key: value}; {} once SLURM has forgotten the job."""
    proc = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True)
    return dict(re.findall(r"(\w+)=(\S*)", proc.stdout)) if proc.returncode == 0 else {}


_ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")


def _job_ended(job: str) -> bool:
    return _job(job).get("JobState", "COMPLETED") in _ENDED


def _wait(job: str, seconds: float) -> str:
    """The job's exit code once it has ended ('' if SLURM forgot it); at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while not _job_ended(job):
        assert time.monotonic() < deadline, f"job {job} still runs after {seconds} s"
        time.sleep(0.5)
    return _job(job).get("ExitCode", "")


def _home(tmp_path: Path) -> dict[str, str]:
    """An environment where the doc's paths lead here: $HOME/venvs/pydiasca is this
    venv, $SCRATCH a scratch folder, and the job's folder holds scenarios/."""
    home = tmp_path / "home"
    (home / "venvs").mkdir(parents=True)
    (home / "venvs" / "pydiasca").symlink_to(Path(sys.prefix))
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    (tmp_path / "scratch").mkdir()
    return {**os.environ, "HOME": str(home), "SCRATCH": str(tmp_path / "scratch")}


def _submit(script: Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """sbatch ``script`` from ``cwd``; its job id."""
    proc = subprocess.run(
        ["sbatch", "--parsable", str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


@needs_slurm
@pytest.mark.parametrize("name", sorted(set(_doc_scripts()) - {"long-run"}))
def test_the_doc_batch_script_runs_as_written(name, tmp_path, one_process_digest):
    job = tmp_path / f"{name}.sbatch"
    job.write_text(_shrunk(_doc_scripts()[name]))
    job_id = _submit(job, tmp_path, _home(tmp_path))
    try:
        code = _wait(job_id, 180)
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30)
    (output,) = tmp_path.glob(f"{name}-*.out")
    log = output.read_text()
    assert code == "0:0", log
    digests = _digests(log)
    assert digests and set(digests) == {one_process_digest}, log
    assert sum(_info(p)["ranks"] == str(TASKS) for p in tmp_path.rglob("results.h5")) == 1


@needs_slurm
def test_scancel_leaves_readable_results(tmp_path):
    """A long run cancelled mid-way: interrupted results, or recoverable staging files."""
    out = tmp_path / "run"
    job = tmp_path / "long.sbatch"
    job.write_text(
        "#!/bin/bash\n#SBATCH --time=00:03:00\n"
        f"#SBATCH --ntasks={TASKS}\n#SBATCH --output={tmp_path}/long-%j.out\n"
        f"srun --mpi=pmi2 {PYDIASCA} run {SCENARIO} --stop-tick 1000000000000000 --out {out}\n"
    )
    job_id = _submit(job, ROOT)
    try:
        deadline = time.monotonic() + 90
        while len(list(out.glob(".staging-rank*.bin"))) < TASKS:  # the ranks are running
            assert time.monotonic() < deadline and not _job_ended(job_id), "the job never ran"
            time.sleep(0.5)
        time.sleep(2)
        subprocess.run(["scancel", job_id], check=True, timeout=30)
        _wait(job_id, 90)
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30)
    log = "".join(p.read_text() for p in tmp_path.glob("long-*.out"))
    status = _info_status(out)
    if status is None:  # killed before writing results.h5: its staging files remain
        recovered = subprocess.run(
            [PYDIASCA, "recover", str(out)], capture_output=True, text=True, timeout=120
        )
        assert recovered.returncode == 0, log + recovered.stderr
    else:  # SIGTERM reached the ranks: they ended the tick and wrote their results
        assert status == "interrupted", log
    info = _info(out)
    assert info["ranks"] == str(TASKS)
    assert int(info["last_tick"].replace(",", "")) > 0


def _info_status(run_dir: Path) -> str | None:
    proc = subprocess.run(
        [PYDIASCA, "info", str(run_dir)], capture_output=True, text=True, timeout=60
    )
    found = re.search(r"^status +(\S+)$", proc.stdout, re.M)
    return found.group(1) if proc.returncode == 0 and found else None


TICKER = ROOT / "tests" / "data" / "ticker.py"


def _ticker_scenario(folder: Path, pause_s: float) -> Path:
    """Three actors recording every tick for 400 ticks; ``pause_s`` only slows them down."""
    path = folder / f"ticker-{pause_s}.toml"
    path.write_text(
        f'[simulation]\nname = "ticker"\nstop_tick = 400\nseed = 5\n\n[results]\nplots = false\n'
        f'\n[[actors]]\nclass = "{TICKER}:Ticker"\ncount = {TASKS}\n'
        f"args = {{ pause_s = {pause_s} }}\n"
    )
    return path


@needs_slurm
def test_a_cancelled_and_resubmitted_job_ends_with_the_uninterrupted_digest(tmp_path):
    """The doc's long-run script: scancel after a checkpoint, sbatch again, same digest."""
    reference = subprocess.run(
        [PYDIASCA, "run", str(_ticker_scenario(tmp_path, 0.0)), "--out", str(tmp_path / "ref")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert reference.returncode == 0, reference.stderr
    (uninterrupted,) = _digests(reference.stdout)
    script = _shrunk(_doc_scripts()["long-run"])
    script = script.replace("scenarios/phold.toml", str(_ticker_scenario(tmp_path, 0.01)))
    script = script.replace("--checkpoint-every 1000", "--checkpoint-every 10")
    job = tmp_path / "long-run.sbatch"
    job.write_text(script)
    env = _home(tmp_path)
    run = tmp_path / "scratch" / "runs" / "long-run"
    first = _submit(job, tmp_path, env)
    try:
        deadline = time.monotonic() + 120
        while not list(run.glob("checkpoints/tick-*/manifest.json")):
            assert time.monotonic() < deadline and not _job_ended(first), "no checkpoint"
            time.sleep(0.2)
        subprocess.run(["scancel", first], check=True, timeout=30)
        _wait(first, 90)
    finally:
        subprocess.run(["scancel", first], capture_output=True, timeout=30)
    assert _info_status(run) != "completed", "the job ended before it was cancelled"
    second = _submit(job, tmp_path, env)
    try:
        code = _wait(second, 180)
    finally:
        subprocess.run(["scancel", second], capture_output=True, timeout=30)
    log = (tmp_path / f"long-run-{second}.out").read_text()
    assert code == "0:0", log
    assert _digests(log) == [uninterrupted], log
    assert _info_status(run) == "completed"
