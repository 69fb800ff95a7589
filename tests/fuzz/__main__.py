"""``python -m tests.fuzz --mutants 2000 --seed 1``: fuzz the scenario checker and the runs.

Every mutant is loaded in this process; ``--run-every K`` of them (one in K, plus
every one that loads on a small scenario, up to ``--max-runs``) also run as a real
``pydiasca run``, two at a time. Defects are saved as reproducers under
``--save`` (the mutant's scenario and what went wrong), and the counts printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .check import SMALL, Outcome, check_load, check_run
from .mutate import Mutant, mutants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--mutants", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--run-every", type=int, default=4, metavar="K")
    parser.add_argument("--max-runs", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300, metavar="S", help="per run")
    parser.add_argument("--save", default="results/fuzz-defects", metavar="DIR")
    args = parser.parse_args(argv)
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pydiasca-fuzz-") as tmp:
        to_run = []
        for index, mutant in enumerate(mutants(args.seed, args.mutants)):
            path = _write(Path(tmp) / f"m{index}", mutant)
            outcome = check_load(path)
            counts["tried"] += 1
            wanted = index % args.run_every == 0 or (
                outcome.kind == "accepted" and mutant.source in SMALL
            )
            if outcome.kind != "defect" and wanted and len(to_run) < args.max_runs:
                to_run.append((index, mutant, path, outcome))
            else:
                _count(counts, index, mutant, outcome, args.save)
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = pool.map(lambda item: (item, check_run(item[2], args.timeout)), to_run)
            for (index, mutant, _, loaded), outcome in runs:
                counts["run as pydiasca"] += 1
                if loaded.kind == "refused" and outcome.kind != "refused":
                    outcome = Outcome("defect", f"loads refused it, the run did not: {outcome}")
                _count(counts, index, mutant, outcome, args.save)
    print(f"seed {args.seed}, {time.perf_counter() - started:.0f} s")
    for kind in ("tried", "refused", "accepted", "run as pydiasca", "ran", "failed", "defect"):
        print(f"  {kind:<16} {counts[kind]}")
    return 1 if counts["defect"] else 0


def _write(folder: Path, mutant: Mutant) -> Path:
    folder.mkdir(parents=True)
    path = folder / "scenario.toml"
    path.write_text(mutant.text, encoding="utf-8", errors="surrogatepass")
    return path


def _count(counts: Counter, index: int, mutant: Mutant, outcome: Outcome, save: str) -> None:
    counts[outcome.kind] += 1
    if outcome.kind != "defect":
        return
    folder = Path(save) / f"mutant-{index}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.toml").write_text(mutant.text, errors="surrogatepass")
    (folder / "defect.txt").write_text(f"{mutant.label}\n\n{outcome.detail}\n")
    print(
        f"defect: mutant {index} ({mutant.label[:200]}): {outcome.detail[-500:]}", file=sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
