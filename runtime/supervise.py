"""``pydiasca run ... --ranks N --recover K``: k-crash resilience on one machine.

The launcher runs the job; when it ends without its results (a rank was
killed, crashed, ran out of memory, or went silent past the watchdog), the
launcher has already ended the job and recovered what it had staged
(``runtime.launch``). Here it then says what happened and resumes the run
from its newest complete checkpoint (``pydiasca resume``), on the same number
of ranks, up to K times. A run that fails on its own (a model error) or that
the user interrupts is never resumed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .checkpoint import MANIFEST, checkpoints
from .launch import run_job

# The flags of ``run`` that ``resume`` takes as well (the layout of the job).
_KEPT = ("--group-size", "--routing", "--placement", "--checkpoint-every")


def supervise(ranks: int, cli_args: Sequence[str], tries: int) -> int:
    """Run ``pydiasca <cli_args>`` on ``ranks`` ranks, resuming it after up to ``tries`` crashes."""
    job = run_job(ranks, cli_args)
    left = tries
    while job.crashed and job.run_dir:
        tick = _newest_tick(Path(job.run_dir))
        if left == 0 or tick is None:
            why = "no complete checkpoint" if tick is None else f"--recover {tries} used up"
            print(f"error: the run cannot be resumed ({why})", file=sys.stderr, flush=True)
            break
        left -= 1
        print(
            f"resuming {job.run_dir} from its checkpoint of tick {tick} "
            f"(recovery {tries - left} of {tries})",
            file=sys.stderr,
            flush=True,
        )
        job = run_job(ranks, ["resume", job.run_dir, *_kept(cli_args)])
    return job.code


def _newest_tick(run_dir: Path) -> int | None:
    return next((t for t, folder in checkpoints(run_dir) if (folder / MANIFEST).exists()), None)


def _kept(cli_args: Sequence[str]) -> list[str]:
    out: list[str] = []
    args = list(cli_args)
    for i, arg in enumerate(args):
        name = arg.split("=", 1)[0]
        if name in _KEPT:
            out.append(arg)
            if "=" not in arg and i + 1 < len(args):
                out.append(args[i + 1])
    return out


__all__ = ["supervise"]
