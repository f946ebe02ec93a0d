"""`studio train --nproc N`: run the same command in N data-parallel processes via torchrun.

torchrun (torch.distributed.run) is the launcher, used as it is: its elastic agent starts
the processes, sets RANK / WORLD_SIZE / LOCAL_RANK, forwards Ctrl-C once to each of them
(they stop together at the next step, rank 0 keeps a resumable checkpoint) and ends the
job when one process dies. Several machines: the same command on each, with torchrun's
own rendezvous options (--nnodes, --node-rank, --rdzv-endpoint, --rdzv-id), passed
through. `torchrun --nproc-per-node N -m studio train PROJECT` works as well.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from studio.cpus import usable_cpus
from studio.errors import StudioError

# Options of `studio train` that are the launcher's, not the processes'.
LAUNCHER_OPTIONS = (
    "--nproc",
    "--nnodes",
    "--node-rank",
    "--rdzv-endpoint",
    "--rdzv-id",
    "--rdzv-backend",
)


def worker_argv(argv: list[str]) -> list[str]:
    """The command line each process runs: this one without the launcher's options."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCHER_OPTIONS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def torchrun_argv(args, worker: list[str]) -> list[str]:
    """torchrun's own command line for these `studio train` options."""
    argv = [f"--nproc-per-node={args.nproc}", "--max-restarts=0"]
    if args.nnodes:
        argv.append(f"--nnodes={args.nnodes}")
        argv.append(f"--node-rank={args.node_rank}")
    if args.rdzv_endpoint:
        argv += [
            f"--rdzv-endpoint={args.rdzv_endpoint}",
            f"--rdzv-backend={args.rdzv_backend}",
            f"--rdzv-id={args.rdzv_id}",
        ]
    elif not args.nnodes or args.nnodes == "1":
        argv.append("--standalone")  # one machine: a local rendezvous on a free port
    return [*argv, "-m", "studio", *worker]


def launch(args, argv: list[str]) -> int:
    """Run `studio train` in args.nproc processes; one sentence when the job fails."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if args.nproc < 1:
        raise StudioError("--nproc must be 1 or more.")
    # Each process gets its share of the CPUs it may use (torchrun would give each one).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, usable_cpus() // args.nproc)))
    # Its agent's own log lines (signals forwarded, workers closed, a worker failed) say
    # what the one sentence below says.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    started = time.time()
    config = get_args_parser().parse_args(torchrun_argv(args, worker_argv(argv)))
    try:
        run(config)
    except ChildFailedError as err:
        if 0 in err.failures and err.failures[0].exitcode == 1:
            return 1  # rank 0 refused in its own sentence (the others said nothing)
        # The first to fail: the others fail after it, when their collectives break.
        rank, failure = min(err.failures.items(), key=lambda item: item[1].timestamp)
        how = (
            f"was killed by {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exited with code {failure.exitcode}"
        )
        raise StudioError(
            f"Process {rank} of the {_world(args)} data-parallel processes {how}, so the job "
            f"ended{_resume_hint(args, started)}"
        ) from None
    except SignalException:
        print(f"studio: stopped{_resume_hint(args, started)}", file=sys.stderr, flush=True)
        return 130
    return 0


def _world(args) -> str:
    nodes = int(args.nnodes or 1) if str(args.nnodes or 1).isdigit() else 1
    return str(args.nproc * nodes)


def _resume_hint(args, started: float) -> str:
    """ "; run X keeps its last checkpoint: …" for the run this job wrote, if any."""
    from studio.training.runs import list_runs

    try:
        rows = [r for r in list_runs(Path(args.out)) if r["started"] >= started - 1]
    except StudioError:
        rows = []
    if not rows:
        return "."
    row = max(rows, key=lambda r: r["started"])
    if not row.get("resumable"):
        return f"; its run is {row['id']}."
    return (
        f"; run {row['id']} keeps its last checkpoint: `studio train --resume {row['id']} "
        f"--out {args.out} --nproc {args.nproc}` continues it."
    )
