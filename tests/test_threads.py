"""Training off the calling thread: the caller yields its CPUs, the worker gets them all,
and the losses do not change. Runs in a subprocess: it changes process-wide thread state."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT

SCRIPT = r"""
import json, os, torch
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
def policies():  # the worker's and one its OpenMP team runs on (threads it started)
    import os, threading
    mine = os.sched_getscheduler(0)
    seen = []
    t = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
    t.start(); t.join()
    return mine, seen[0]
policy = {"main": os.sched_getscheduler(0) if hasattr(os, "SCHED_BATCH") else None,
          "batch": getattr(os, "SCHED_BATCH", None),
          "worker": run_in_worker(policies).result(timeout=60) if hasattr(os, "SCHED_BATCH") else None}
def failing():
    raise ValueError("boom")
try:
    run_in_worker(failing).result(timeout=30)
    raised = False
except ValueError:
    raised = True
print(json.dumps({"full": full, "caller": torch.get_num_threads(), "worker": worker_threads,
                  "same": here == there, "steps": len(here), "raised": raised, "policy": policy}))
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
    policy = report["policy"]
    if policy["batch"] is not None:  # Linux: the GUI thread is not kept waiting by training
        assert policy["worker"] == [policy["batch"], policy["batch"]]
        assert policy["main"] != policy["batch"]


FIRST_RUN = r"""
import json, sys
from studio.training.threads import import_training_modules
import tempfile
# What the window has imported by the time Train is pressed: the project and the session.
from studio.projectfile import load_project
from studio.training.session import train
project = load_project("resources/examples/digits_cnn.json", ["training.epochs=1"])
import_training_modules()
before = set(sys.modules)
train(project, runs_root=tempfile.mkdtemp())
new = sorted(m for m in set(sys.modules) - before
             if (getattr(sys.modules[m], "__file__", "") or "").endswith((".so", ".pyd")))
print(json.dumps(new))
"""


def test_a_first_run_imports_no_extension_modules_after_the_preload():
    # An extension module's import holds the GIL; in a training thread it froze the window.
    done = subprocess.run(
        [sys.executable, "-c", FIRST_RUN], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
