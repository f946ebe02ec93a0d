"""Trains digits_mlp and SIGKILLs the training process at the N-th checkpoint write event.

Run by tests/test_checkpoint_kill.py as a subprocess: `python kill_during_checkpoint.py
RUNS EVENTS_FILE N [N ...]`. Events are every write a checkpoint makes (a torch.save or a
safetensors save, each either cut half-way through or let finish; each rename and link in
a checkpoints folder). This process first trains once unharmed into RUNS/-1 and writes the
list of events to EVENTS_FILE (so the test can choose where to kill); then, for each N, a
forked copy of it (warm: nothing left to import) trains into RUNS/N and is killed at event
N. Each copy's fate is printed as "N <exit status>". Then, again in forked copies, each
killed run is resumed to its end: RUNS/N/resumed.txt names the resumed run's folder, or
RUNS/N/refused.txt holds the sentence that refused it. (Killing, resuming and the unharmed
run all happen in this one process's copies: the same thread count and the same kernels,
so their weights compare bit for bit.) Nothing here is part of the studio.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

import safetensors.torch
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

SETS = [
    "training.epochs=2",
    "training.deterministic=true",
    "training.schedule.name=one_cycle",
    "training.batch_size=64",
]
EVENTS: list[str] = []
KILL_AT = [-1]


def event(label: str) -> bool:
    """Record a write event; True when this is the one to be killed at."""
    EVENTS.append(label)
    return len(EVENTS) - 1 == KILL_AT[0]


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def cut_short(data: bytes, target) -> None:
    with open(target, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    die()


def install() -> None:
    real_save, real_save_file = torch.save, safetensors.torch.save_file
    real_replace, real_link = os.replace, os.link

    def save(obj, f, *args, **kwargs):
        name = Path(str(f)).name
        if event(f"torch.save {name} cut"):
            buffer = io.BytesIO()
            real_save(obj, buffer, *args, **kwargs)
            cut_short(buffer.getvalue(), f)
        real_save(obj, f, *args, **kwargs)
        if event(f"torch.save {name} done"):
            die()

    def save_file(tensors, filename, metadata=None):
        name = Path(str(filename)).name
        if event(f"save_file {name} cut"):
            cut_short(safetensors.torch.save(tensors, metadata=metadata), filename)
        real_save_file(tensors, filename, metadata=metadata)
        if event(f"save_file {name} done"):
            die()

    def replace(src, dst, *args, **kwargs):
        if "checkpoints" in str(dst) and event(f"replace {Path(str(dst)).name}"):
            die()
        return real_replace(src, dst, *args, **kwargs)

    def link(src, dst, *args, **kwargs):
        if event(f"link {Path(str(dst)).name}"):
            die()
        return real_link(src, dst, *args, **kwargs)

    torch.save, os.replace, os.link = save, replace, link
    import studio.training.runs as runs_module

    runs_module.save_file = save_file


def main() -> None:
    from studio.projectfile import load_project
    from studio.training.session import train

    # One thread: quick on a busy 2-core machine, the same arithmetic as the resumes the
    # test runs (also on one thread, so weights compare bit for bit), and no OpenMP team
    # for the forked copies to inherit half-alive.
    torch.set_num_threads(1)
    runs, events_file = Path(sys.argv[1]), Path(sys.argv[2])
    project = HERE.parent / "resources" / "examples" / "digits_mlp.json"
    install()
    train(load_project(project, SETS), runs_root=runs / "-1")
    events_file.write_text("\n".join(EVENTS) + "\n")
    waiting: dict[int, int] = {}
    for kill_at in (int(p) for p in sys.argv[3:]):
        if len(waiting) == 2:  # two at a time: the machine may have two cores only
            pid, status = os.wait()
            print(waiting.pop(pid), status, flush=True)
        pid = os.fork()
        if pid == 0:
            try:
                EVENTS.clear()
                KILL_AT[0] = kill_at
                train(load_project(project, SETS), runs_root=runs / str(kill_at))
            finally:
                os._exit(0)
        waiting[pid] = kill_at
    while waiting:
        pid, status = os.wait()
        print(waiting.pop(pid), status, flush=True)
    KILL_AT[0] = -1
    for point in (int(p) for p in sys.argv[3:]):
        pid = os.fork()
        if pid == 0:
            try:
                resume(runs / str(point), project)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)


def resume(runs: Path, project: Path) -> None:
    from studio.errors import StudioError
    from studio.projectfile import load_project
    from studio.training.runs import Run
    from studio.training.session import train

    (killed,) = [p.parent for p in runs.glob("*/*/project.json")]
    try:
        outcome = train(
            load_project(project, SETS), runs_root=runs, resume=Run.open(runs, str(killed))
        )
    except StudioError as err:
        (runs / "refused.txt").write_text(str(err))
        return
    (runs / "resumed.txt").write_text(str(outcome.run.path))


if __name__ == "__main__":
    main()
