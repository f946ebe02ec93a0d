"""The CPUs training uses follow a cgroup's CPU quota (studio/cpus.py)."""

from __future__ import annotations

import pytest
import torch

from studio import cpus


def _tree(tmp_path, cgroup: str, files: dict[str, str]):
    """A fake /sys/fs/cgroup under tmp_path and a /proc/self/cgroup naming `cgroup`."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text(cgroup)
    return root, proc


def test_a_v2_quota_is_the_least_of_the_group_and_its_parents(tmp_path):
    root, proc = _tree(
        tmp_path,
        "0::/user.slice/job\n",
        {
            "cgroup.controllers": "cpu memory",
            "cpu.max": "max 100000",
            "user.slice/cpu.max": "250000 100000",
            "user.slice/job/cpu.max": "max 100000",
        },
    )
    assert cpus.cpu_quota(root, proc) == pytest.approx(2.5)
    (root / "user.slice/job/cpu.max").write_text("150000 100000")
    assert cpus.cpu_quota(root, proc) == pytest.approx(1.5)


def test_no_quota_reads_as_none(tmp_path):
    root, proc = _tree(tmp_path, "0::/\n", {"cgroup.controllers": "cpu", "cpu.max": "max 100000"})
    assert cpus.cpu_quota(root, proc) is None
    assert cpus.cpu_quota(root, tmp_path / "missing") is None  # not Linux


def test_a_v1_quota_is_found_in_a_container_that_sees_its_group_as_the_root(tmp_path):
    # Docker without a cgroup namespace: /proc names the host's path, the mount is the
    # container's own group.
    root, proc = _tree(
        tmp_path,
        "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n",
        {"cpu,cpuacct/cpu.cfs_quota_us": "100000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
    )
    assert cpus.cpu_quota(root, proc) == pytest.approx(1.0)
    (root / "cpu,cpuacct/cpu.cfs_quota_us").write_text("-1")  # no limit
    assert cpus.cpu_quota(root, proc) is None


def test_usable_cpus_rounds_a_quota_down_and_keeps_one(monkeypatch):
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 8)
    for quota, expected in ((None, 8), (2.5, 2), (0.5, 1), (16.0, 8)):
        monkeypatch.setattr(cpus, "cpu_quota", lambda q=quota: q)
        assert cpus.usable_cpus() == expected


def test_torch_threads_follow_the_quota_unless_omp_num_threads_is_set(monkeypatch):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(cpus, "usable_cpus", lambda: 1)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert cpus.fit_torch_threads() == 2  # the person's choice
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert cpus.fit_torch_threads() == 1
        monkeypatch.setattr(cpus, "usable_cpus", lambda: 4)
        assert cpus.fit_torch_threads() == 1  # never raised above what torch was given
    finally:
        torch.set_num_threads(before)


def test_a_run_trains_on_the_cpus_the_quota_allows(monkeypatch):
    from support import EXAMPLES

    from studio.projectfile import load_project
    from studio.training.session import train

    mlp = next(p for p in EXAMPLES if p.stem == "digits_mlp")
    seen = []
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 1)
    try:
        torch.set_num_threads(2)
        project = load_project(mlp, ["training.epochs=1", "training.batch_size=256"])
        train(project, runs_root=None, listeners=[lambda e: seen.append(torch.get_num_threads())])
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}


STAT = """cpu  900 0 100 1000 0 0 0 0 0 0
cpu0 100 0 50 500 20 0 0 10 0 0
cpu1 800 0 50 500 30 0 0 0 0 0
intr 1 2 3
"""


def test_proc_stat_counts_busy_time_per_cpu(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(STAT)
    # busy: everything but idle and I/O wait; steal counts (a VM's host took the time)
    assert cpus._cpu_ticks(stat) == {0: (160, 680), 1: (850, 1380)}
    assert cpus._cpu_ticks(tmp_path / "missing") is None
    stat.write_text("cpu  1 2 3 4\nintr 5\n")
    assert cpus._cpu_ticks(stat) is None


def _looks(monkeypatch, reads, own, affinity):
    """busy_elsewhere over scripted /proc/stat reads, own CPU times and 1-s spells."""
    reads, own, clock = iter(reads), iter(own), iter(range(100, 200))
    monkeypatch.setattr(cpus, "_cpu_ticks", lambda stat: next(reads))
    monkeypatch.setattr(cpus, "_own_seconds", lambda: next(own))
    monkeypatch.setattr(cpus, "_affinity", lambda: affinity)
    monkeypatch.setattr(cpus.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(cpus.time, "sleep", lambda s: None)
    monkeypatch.setattr(cpus.os, "sysconf", lambda name: 100)


def test_busy_elsewhere_leaves_out_this_process_own_time(monkeypatch):
    # 1.5 s busy over 1 s on the two CPUs, of which this process used 0.5 s
    _looks(
        monkeypatch, [{0: (0, 0), 1: (0, 0)}, {0: (100, 100), 1: (50, 100)}], [10.0, 10.5], {0, 1}
    )
    assert cpus.busy_elsewhere(looks=1) == pytest.approx(1.0)


def test_busy_elsewhere_counts_the_cpus_it_may_run_on_and_survives_odd_reads(monkeypatch):
    spell = [{0: (0, 0), 1: (0, 0), 2: (0, 0)}, {0: (100, 100), 1: (0, 100), 2: (100, 100)}]
    _looks(monkeypatch, spell, [0.0, 0.0], {0, 1})
    assert cpus.busy_elsewhere(looks=1) == pytest.approx(1.0)  # CPU 2 is not ours
    # A CPU going offline between the reads: only the CPUs in both count.
    _looks(monkeypatch, [{0: (0, 0), 1: (500, 900)}, {0: (30, 100)}], [0.0, 0.0], {0, 1})
    assert cpus.busy_elsewhere(looks=1) == pytest.approx(0.3)
    # A container whose /proc numbers its CPUs 0.. while the affinity says 4, 5: all count.
    _looks(monkeypatch, [{0: (0, 0), 1: (0, 0)}, {0: (100, 100), 1: (0, 100)}], [0.0, 0.0], {4, 5})
    assert cpus.busy_elsewhere(looks=1) == pytest.approx(1.0)


def test_a_burst_of_load_does_not_decide(monkeypatch):
    # Five spells: idle, a burst (0.6 of a CPU), idle, idle, idle: the median is idle.
    busy = [0, 0, 60, 60, 60, 60]
    reads = [{0: (b, 100 * i)} for i, b in enumerate(busy)]
    _looks(monkeypatch, reads, [0.0] * 6, {0})
    assert cpus.busy_elsewhere(looks=5) == pytest.approx(0.0)


def test_a_process_spinning_beside_shows_as_a_busy_cpu():
    import multiprocessing

    spinner = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
    spinner.start()
    try:
        import time

        time.sleep(1.0)  # a spawned interpreter starts first
        busy = cpus.busy_elsewhere()
    finally:
        spinner.terminate()
    assert busy is not None and busy >= 0.7, busy


def _spin():
    while True:
        pass


@pytest.mark.parametrize(
    "ceiling, cpus_, busy, expected",
    [
        (2, 2, None, 2),  # unknown (not Linux): as before
        (2, 2, 0.0, 2),
        (2, 2, 0.15, 2),
        (2, 2, 0.3, 1),  # a second thread needs most of a CPU free
        (2, 2, 1.0, 1),
        (2, 2, 3.0, 1),  # never below one
        (8, 8, 2.5, 5),
        (4, 8, 0.0, 4),  # torch counts 4 cores, the affinity 8 hyper-threads
        (4, 8, 1.0, 3),  # one busy hyper-thread takes half a core
        (4, 8, 0.3, 4),
        (1, 2, 0.0, 1),
        (4, 2, 0.0, 2),  # never above the CPUs
    ],
)
def test_threads_for_the_free_cpus(ceiling, cpus_, busy, expected):
    assert cpus.free_threads(ceiling, busy, cpus_) == expected


def test_a_run_started_beside_busy_processes_takes_fewer_threads(monkeypatch):
    import threading

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 2)
    monkeypatch.setattr(cpus, "busy_elsewhere", lambda: 1.0)
    seen = {}

    def start(name, **kw):  # in a thread of its own: torch's count is per thread
        seen[name] = (cpus.threads_for_a_run(**kw), torch.get_num_threads())

    for name, kw in (
        ("busy", {"full": 2}),
        ("exact", {"full": 2, "deterministic": True}),  # exact repeats keep the count
        ("gpu", {"full": 2, "on_cpu": False}),  # CPU threads only feed the device
    ):
        t = threading.Thread(target=start, args=(name,), kwargs=kw)
        t.start()
        t.join()
    (threads, said, why), now = seen["busy"]
    assert threads == now == 1
    assert said == "Using 1 of 2 CPU threads: other processes keep 1 CPU busy."
    assert "holds back every step" in why
    assert seen["exact"] == seen["gpu"] == ((2, "", ""), 2)
    assert cpus._cpus_text(0.3) == "0.3 of a CPU" and cpus._cpus_text(2.0) == "2.0 CPUs"
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the person's choice
    t = threading.Thread(target=start, args=("chosen",), kwargs={"full": 2})
    t.start()
    t.join()
    assert seen["chosen"] == ((2, "", ""), 2)


def test_studio_train_beside_a_busy_process_says_it_trains_on_fewer_threads(
    monkeypatch, tmp_path, capsys
):
    import json

    from support import EXAMPLES

    from studio.cli import main

    before = torch.get_num_threads()
    if before < 2:
        pytest.skip("one CPU thread: nothing to take away")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: before)
    monkeypatch.setattr(cpus, "busy_elsewhere", lambda: float(before))  # every CPU taken
    mlp = next(p for p in EXAMPLES if p.stem == "digits_mlp")
    out = tmp_path / "runs"
    assert main(["train", str(mlp), "--set", "training.epochs=1", "--out", str(out)]) == 0
    said = capsys.readouterr().err
    assert f"Using 1 of {before} CPU threads" in said and "OMP_NUM_THREADS" in said
    summary = json.loads(next(out.glob("digits_mlp/*/summary.json")).read_text())
    assert summary["threads"] == 1
    assert torch.get_num_threads() == before  # main() called in-process gives them back
    exact = ["--set", "training.deterministic=true", "--out", str(out)]
    assert main(["train", str(mlp), "--set", "training.epochs=1", *exact, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == before
