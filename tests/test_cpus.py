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
