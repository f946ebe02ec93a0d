"""Class balance: `studio check` and training say how many samples each class has and
suggest a remedy when the classes are imbalanced; training.class_weights=auto weights the
loss by inverse class frequency, training.sampling=balanced draws every class equally
often (reproducibly, and resumably), and the defaults train exactly as before."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from support import EXAMPLES, chain, project_of, train_stopped_and_resumed

from studio.cli import main
from studio.data.balance import ClassBalance, class_weights
from studio.data.prepare import Split, prepare_data
from studio.projectfile import load_project
from studio.training.engine import Trainer
from studio.training.setup import TrainingError
from studio.weights import read_state_dict

MLP = next(p for p in EXAMPLES if p.stem == "digits_mlp")
FAST = ["training.epochs=1", "training.batch_size=64", "training.device=cpu"]


def zeros_and_few_ones() -> tuple:
    """A two-class project on the digits 0 and 1, with every 0 but only a tenth of the 1s
    in the training split (about 142 zeros, 15 ones)."""
    project = project_of(
        chain(
            {"id": "image", "type": "Input", "params": {"shape": [1, 8, 8]}},
            {"id": "flatten", "type": "Flatten"},
            {"id": "hidden", "type": "Linear", "params": {"out_features": 16}},
            {"id": "classes", "type": "Output", "params": {"units": 2}},
        )
    )
    project.data["classes"] = [0, 1]
    project.training.update(device="cpu", batch_size=32, epochs=1)
    data = prepare_data(project.data, (1, 8, 8), seed=0)
    y = data.train.y
    ones = torch.nonzero(y == 1).reshape(-1)
    keep = torch.cat([torch.nonzero(y == 0).reshape(-1), ones[::10]]).sort().values
    return project, replace(data, train=Split(data.train.x[keep], y[keep]))


def test_auto_class_weights_weight_the_loss_by_inverse_class_frequency():
    project, data = zeros_and_few_ones()
    y = data.train.y
    counts = torch.bincount(y).double()
    assert counts[0] > 8 * counts[1]  # imbalanced indeed
    project.training["class_weights"] = "auto"
    trainer = Trainer(project, data=data)

    # Inverse frequency, normalized so that the weights average 1 over the samples.
    expected = (len(y) / (2 * counts)).float()
    assert torch.allclose(trainer.class_weights, expected)
    assert trainer.class_weights[y].mean().item() == pytest.approx(1.0, abs=1e-5)

    x, labels = next(trainer.batches.epoch())
    assert (labels == 1).any() and (labels == 0).any()  # both classes in this batch
    out = trainer.model(x)
    per_sample = -torch.log_softmax(out, 1).gather(1, labels[:, None]).squeeze(1)
    w = expected[labels]
    by_hand = (w * per_sample).sum() / w.sum()
    assert trainer.loss_fn(out, labels).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert not math.isclose(trainer.loss_fn(out, labels).item(), per_sample.mean().item())

    project.training["class_weights"] = "none"
    plain = Trainer(project, data=data)
    assert plain.class_weights is None
    assert plain.loss_fn(out, labels).item() == pytest.approx(per_sample.mean().item(), rel=1e-5)


def test_auto_class_weights_weight_a_binary_head_alike():
    project, data = zeros_and_few_ones()
    project.network.nodes["classes"].params.update(units=1, task="binary")
    project.training["class_weights"] = "auto"
    trainer = Trainer(project, data=data)
    x, labels = next(trainer.batches.epoch())
    out = trainer.model(x)
    per_sample = torch.nn.functional.binary_cross_entropy_with_logits(
        out.reshape(-1), labels.float(), reduction="none"
    )
    w = trainer.class_weights[labels]
    by_hand = (w * per_sample).sum() / w.sum()
    assert trainer.loss_fn(out, labels).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_class_weights_give_an_absent_class_the_largest_weight():
    weights = class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert torch.allclose(weights, torch.tensor([4 / 6, 2.0, 2.0]))


def test_balanced_sampling_draws_every_class_about_equally_and_repeats_with_the_seed():
    project, data = zeros_and_few_ones()
    project.training["sampling"] = "balanced"

    def epoch_labels(seed: int, epochs: int = 1) -> torch.Tensor:
        project.training["seed"] = seed
        batches = Trainer(project, data=data).batches
        return torch.cat([y for _ in range(epochs) for _, y in batches.epoch()])

    first = epoch_labels(seed=5)
    n = len(data.train)
    assert len(first) == n  # an epoch keeps its length
    share = (first == 1).float().mean().item()
    assert abs(share - 0.5) < 0.12  # today's shuffle would give about 0.1
    many = epoch_labels(seed=5, epochs=10)
    assert abs((many == 1).float().mean().item() - 0.5) < 0.04
    assert torch.equal(epoch_labels(seed=5), first)
    assert not torch.equal(epoch_labels(seed=6), first)


def test_a_balanced_run_resumes_to_the_same_weights(tmp_path):
    sets = [
        "training.epochs=2",
        "training.batch_size=64",
        "training.deterministic=true",
        "training.sampling=balanced",
        "training.class_weights=auto",
        "data.augmentation.noise.enabled=true",
    ]
    whole, part, resumed = train_stopped_and_resumed(MLP, sets, tmp_path, stop_after=30)
    assert part.result.status == "stopped" and resumed.result.status == "completed"
    a = read_state_dict(whole.run.path / "checkpoints" / "last.safetensors")
    b = read_state_dict(resumed.run.path / "checkpoints" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_defaults_train_exactly_as_before():
    implicit = load_project(MLP, FAST)
    explicit = load_project(
        MLP, [*FAST, "training.class_weights=none", "training.sampling=shuffle"]
    )
    trainer = Trainer(implicit)
    # The code path of before: an unweighted loss, a plain shuffle from the seed.
    assert trainer.loss_fn.weight is None and trainer.batches.balanced is None
    order = torch.randperm(len(trainer.data.train), generator=torch.Generator().manual_seed(0))
    _, y = next(trainer.batches.epoch())
    assert torch.equal(y, trainer.data.train.y[order[: len(y)]])
    trainer = Trainer(implicit)
    trainer.fit()
    other = Trainer(explicit)
    other.fit()
    a, b = trainer.model.state_dict(), other.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def imbalanced_csv(tmp_path):
    rows = ["width,height,label"]
    rows += [f"{i % 7},{i % 5},cat" for i in range(400)]
    rows += [f"{i % 3},{i % 4},dog" for i in range(50)]
    (tmp_path / "pets.csv").write_text("\n".join(rows) + "\n")
    project = tmp_path / "pets.json"
    project.write_text(
        """{"version": 1, "name": "pets",
        "network": {"nodes": [
            {"id": "x", "type": "Input", "params": {"shape": [2]}},
            {"id": "out", "type": "Output", "params": {"units": 2}}],
          "edges": [{"source": "x", "target": "out"}]},
        "data": {"source": "csv", "path": "pets.csv"}, "training": {}}"""
    )
    return project


def test_check_counts_the_classes_of_a_csv_and_suggests_a_remedy(tmp_path, capsys):
    project = imbalanced_csv(tmp_path)
    assert main(["check", str(project)]) == 0  # advice, not an error
    out = capsys.readouterr().out
    assert "'cat' 400, 'dog' 50" in out
    assert (
        "Classes are imbalanced (ratio 8.0: 'cat' 400 samples, 'dog' 50): consider "
        "training.class_weights=auto or training.sampling=balanced." in out
    )
    assert main(["check", str(project), "--set", "training.class_weights=auto"]) == 0
    out = capsys.readouterr().out
    assert "training.class_weights=auto makes up for it" in out and "consider" not in out


def test_check_counts_balanced_classes_without_a_suggestion(capsys):
    assert main(["check", str(MLP)]) == 0
    out = capsys.readouterr().out
    assert "'0' 178, '1' 182" in out and "imbalanced" not in out


def test_training_says_the_classes_are_imbalanced():
    project, data = zeros_and_few_ones()
    events = []
    Trainer(project, data=data, listeners=[events.append]).fit()
    start = next(e for e in events if e["type"] == "start")
    assert "Classes are imbalanced" in start["data"] and "class_weights=auto" in start["data"]


def test_class_remedies_on_real_valued_targets_are_one_sentence(tmp_path):
    (tmp_path / "sizes.csv").write_text("a,size\n" + "".join(f"{i},{i}.5\n" for i in range(40)))
    project = project_of(
        chain(
            {"id": "x", "type": "Input", "params": {"shape": [1]}},
            {"id": "size", "type": "Output", "params": {"units": 1, "task": "regression"}},
        )
    )
    project.data.update(source="csv", path=str(tmp_path / "sizes.csv"), label_column="size")
    project.training.update(device="cpu", sampling="balanced")
    with pytest.raises(TrainingError, match="training.sampling' is balanced"):
        Trainer(project)
    project.training.update(sampling="shuffle", class_weights="auto")
    with pytest.raises(TrainingError, match="training.class_weights' is auto"):
        Trainer(project)


def test_the_summary_names_the_biggest_and_smallest_class():
    balance = ClassBalance(("a", "b", "c"), (400, 50, 100))
    assert balance.ratio == 8.0 and balance.imbalanced
    assert "'a' 400 samples, 'b' 50" in balance.suggestion()
    assert ClassBalance(("a", "b"), (100, 40)).suggestion() is None
