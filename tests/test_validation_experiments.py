"""Small-data validation (issue 12, item 4): training.validation.method kfold, bootstrap and
leave_one_out train one run per fold, grouped as one experiment with mean ± std and a 95 %
confidence interval, in the CLI summary, `studio runs` and the index; each run keeps its
fold, so resuming and evaluating it use the fold's own samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats
from support import EXAMPLES

from studio.cli import main
from studio.data.prepare import load_raw, prepare_data
from studio.data.resampling import Fold, cost_warning, fold_samples, run_count
from studio.data.sources import DataError
from studio.evaluation import evaluate_run
from studio.projectfile import load_project
from studio.training.experiment import group_rows, run_experiment, statistics
from studio.training.runs import Run, list_runs

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")
FAST = ["training.epochs=1", "training.batch_size=128", "training.device=cpu"]


def small_project(**validation):
    """digits_mlp on the digits 0, 1 and 2 (537 samples), one epoch, cpu."""
    project = load_project(MLP)
    project.data["classes"] = [0, 1, 2]
    project.network.nodes["classes"].params["units"] = 3
    project.training.update(epochs=1, batch_size=128, device="cpu")
    project.training["validation"].update(validation)
    return project


def test_kfold_with_k_5_on_digits_gives_5_runs_and_mean_and_std(tmp_path, capsys):
    sets = [f"--set={s}" for s in FAST] + [
        "--set=training.validation.method=kfold",
        "--set=training.validation.folds=5",
    ]
    code = main(["train", str(MLP), "--out", str(tmp_path), "--quiet", *sets])
    out = capsys.readouterr().out
    assert code == 0
    rows = list_runs(tmp_path)
    assert len(rows) == 5
    assert len({r["experiment"] for r in rows}) == 1 and rows[0]["experiment"]
    assert sorted(r["fold"] for r in rows) == [0, 1, 2, 3, 4]
    # Each run's own validation score, from its folder, and their mean ± std (n - 1).
    scores = []
    for row in rows:
        summary = json.loads((tmp_path / row["path"] / "summary.json").read_text())
        scores.append(summary["best"]["metrics"]["val_accuracy"])
    assert len(set(scores)) > 1  # five different models
    mean, std = np.mean(scores), np.std(scores, ddof=1)
    assert f"validation accuracy: {mean:.1%} ± {std:.1%}" in out
    assert "5-fold cross-validation: 5 of 5 runs finished" in out
    # `studio runs` shows the experiment as one group with the same numbers.
    assert main(["runs", "--out", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "5-fold cross-validation, 5 of 5 runs finished" in listed
    assert f"validation accuracy {mean:.1%} ± {std:.1%}" in listed


def test_kfold_validation_folds_cover_every_sample_once_and_keep_the_test_split_out():
    project = small_project(method="kfold", folds=4)
    project.data["test"] = 0.2
    raw = load_raw(project.data, (1, 8, 8))
    parts = [
        prepare_data(project.data, (1, 8, 8), 0, raw=raw, fold=Fold("kfold", k, 4))
        for k in range(4)
    ]
    tests = {tuple(p.test.index.tolist()) for p in parts}
    assert len(tests) == 1  # the same test split for every fold
    test = set(next(iter(tests)))
    validation = [set(p.validation.index.tolist()) for p in parts]
    assert sum(len(v) for v in validation) == len(set().union(*validation))  # disjoint
    assert set().union(*validation) | test == set(range(len(raw.y)))
    for p, v in zip(parts, validation):
        assert not (set(p.train.index.tolist()) & (v | test))
        # Stratified: each fold holds each class in proportion (within one sample).
        counts = torch.bincount(p.validation.y, minlength=3)
        expected = torch.bincount(raw.y[list(v | set(p.train.index.tolist()))], minlength=3) / 4
        assert (counts - expected).abs().max() <= 1


def test_bootstrap_trains_on_draws_with_replacement_and_validates_out_of_bag():
    y = np.repeat(np.arange(3), 20)
    seen = []
    for k in range(5):
        train, val = fold_samples(len(y), y, Fold("bootstrap", k, 5), seed=3)
        assert len(train) == len(y) and len(np.unique(train)) < len(y)  # repeats
        assert set(val) == set(range(len(y))) - set(train)  # exactly the out-of-bag ones
        seen.append(tuple(train))
    assert len(set(seen)) == 5  # each repeat draws anew
    again, _ = fold_samples(len(y), y, Fold("bootstrap", 2, 5), seed=3)
    assert tuple(again) == seen[2]  # and the same again for the same fold


def test_leave_one_out_makes_one_run_per_sample_and_says_what_it_costs():
    validation = {"method": "leave_one_out", "folds": 5, "repeats": 10}
    assert run_count(validation, 12) == 12
    for k in (0, 7, 11):
        train, val = fold_samples(12, None, Fold("leave_one_out", k, 12), seed=0)
        assert val.tolist() == [k] and k not in train and len(train) == 11
    warning = cost_warning(validation, 12, 3)
    assert "12 models" in warning and "12× the time" in warning
    assert cost_warning({**validation, "method": "kfold"}, 12, 3) is None


def test_more_folds_than_samples_is_one_sentence_naming_the_field(tmp_path, capsys):
    code = main(
        [
            "train",
            str(MLP),
            "--out",
            str(tmp_path),
            "--set=data.classes=[0,1]",
            "--set=training.validation.method=kfold",
            "--set=training.validation.folds=1000",
        ]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "'training.validation.folds' is 1000 but only 360 samples" in err
    assert "Traceback" not in err
    with pytest.raises(DataError, match="at least 2 samples"):
        run_count({"method": "leave_one_out", "folds": 5, "repeats": 2}, 1)
    with pytest.raises(DataError, match="k-fold needs at least 2 samples .* lower data.test"):
        run_count({"method": "kfold", "folds": 2, "repeats": 2}, 1)


def test_kfold_interval_is_students_t_and_bootstrap_interval_is_percentiles():
    values = [0.91, 0.88, 0.95, 0.90, 0.93]
    s = statistics(values, "kfold")
    low, high = stats.t.interval(0.95, len(values) - 1, np.mean(values), stats.sem(values))
    assert s["mean"] == pytest.approx(np.mean(values))
    assert s["std"] == pytest.approx(np.std(values, ddof=1))
    assert (s["low"], s["high"]) == pytest.approx((low, high))
    b = statistics(values * 4, "bootstrap")
    assert (b["low"], b["high"]) == pytest.approx(tuple(np.percentile(values * 4, [2.5, 97.5])))
    assert statistics([0.5], "kfold")["std"] is None  # one run: no spread to speak of
    # An accuracy's interval stays within 0..1, a loss's above 0.
    wide = statistics([1.0, 0.8, 1.0], "kfold", (0.0, 1.0))
    assert wide["high"] == 1.0 and wide["low"] > 0
    assert statistics([0.01, 0.9, 0.05], "kfold", (0.0, None))["low"] == 0.0


def test_a_fold_run_is_evaluated_and_resumed_on_its_own_samples(tmp_path):
    project = small_project(method="kfold", folds=3)
    outcome = run_experiment(project, runs_root=tmp_path)
    assert outcome.status == "completed" and len(outcome.outcomes) == 3
    second = outcome.outcomes[1].run
    fold = Run.open(tmp_path, second.id).fold()
    assert fold == Fold("kfold", 1, 3)
    expected = prepare_data(project.data, (1, 8, 8), 0, fold=fold).validation
    report = evaluate_run(Run.open(tmp_path, second.id))
    assert sum(map(sum, report["confusion_matrix"])) == len(expected)
    # Resumed, the run trains on its fold again and stays in its experiment, counted once.
    from studio.training.session import train

    resumed = train(project, runs_root=tmp_path, resume=Run.open(tmp_path, second.id))
    assert resumed.run.fold() == fold
    assert resumed.run.experiment() == second.experiment()
    split = outcome.outcomes[1].summary["data"].split("Split: ")[1]
    assert resumed.summary["data"].split("Split: ")[1] == split
    [group] = [g for g in group_rows(list_runs(tmp_path)) if g["kind"] == "experiment"]
    assert len(group["runs"]) == 4  # the three folds and the resumed one
    assert group["summary"]["runs_planned"] == 3 and len(group["summary"]["runs"]) == 3
