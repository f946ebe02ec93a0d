"""Training off the calling thread: the caller yields its CPUs, the worker gets them all,
and the losses do not change. Runs in a subprocess: it changes process-wide thread state."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT

SCRIPT = r"""
import json, torch
from studio.projectfile import load_project
from studio.training.engine import Trainer
from studio.training.threads import run_in_worker, training_threads

torch.ones(100_000).sum()  # the main thread has used torch, as a GUI thread would
full = training_threads()

def losses():
    seen = []
    project = load_project("resources/examples/digits_mlp.json", ["training.epochs=1"])
    Trainer(project, listeners=[lambda e: seen.extend(e["loss"].tolist()) if e["type"] == "steps" else None]).fit()
    return seen, torch.get_num_threads()

here, _ = losses()
worker = run_in_worker(losses)
there, worker_threads = worker.result(timeout=120)
def failing():
    raise ValueError("boom")
try:
    run_in_worker(failing).result(timeout=30)
    raised = False
except ValueError:
    raised = True
print(json.dumps({"full": full, "caller": torch.get_num_threads(), "worker": worker_threads,
                  "same": here == there, "steps": len(here), "raised": raised}))
"""


def test_a_worker_trains_with_all_cpus_and_the_same_losses():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["caller"] == 1, "the calling thread keeps one intra-op thread"
    assert report["worker"] == report["full"], "the worker gets the process's full count"
    assert report["same"] and report["steps"] == 45
    assert report["raised"], "an error in the worker reaches whoever asks for the result"
