"""The four benchmark models, their data, and a hand-written training loop for each.

Shared by `train_overhead.py` (engine vs. raw loop) and `omp_threads.py` (where the
training thread runs). Everything here is deterministic: the same seed gives the same
weights, batches and losses in every process.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from studio.builder import build_model
from studio.data.prepare import Batches, PreparedData, Split, prepare_data
from studio.document import Project
from studio.training.callbacks import Callback
from studio.training.engine import Trainer
from studio.training.monitors import Monitors
from studio.training.setup import make_optimizer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "resources" / "examples"
SEED = 0
CASES = ("mlp", "cnn", "resnet18", "deep")
# Steps per timed run when --steps is not given; resnet18 takes ~0.11 s a step on 2 cores.
DEFAULT_STEPS = {"mlp": 500, "cnn": 100, "resnet18": 20, "deep": 200}


@dataclass
class Case:
    name: str
    title: str
    project: Project
    data: PreparedData
    # Builds the model; None: the studio's own `build_model(project)`.
    make_model: Callable[[], nn.Module] | None = None
    node_types: dict | None = None  # for a custom model: layer name -> type, for Monitors

    def model(self) -> nn.Module:
        return self.make_model() if self.make_model else build_model(self.project)


# ------------------------------------------------------------------------------ projects


def _example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def _conv(node_id: str, channels: int) -> dict:
    return {
        "id": node_id,
        "type": "Conv2d",
        "params": {"out_channels": channels, "kernel_size": 3, "padding": "same", "bias": False},
        "initializer": {"name": "kaiming_normal", "mode": "fan_in", "nonlinearity": "relu"},
        "normalization": {"kind": "batch"},
        "activation": "relu",
    }


def _chain(raw: dict, nodes: list[dict]) -> dict:
    raw["network"]["nodes"] = nodes
    ids = [n["id"] for n in nodes]
    raw["network"]["edges"] = [{"source": a, "target": b} for a, b in zip(ids, ids[1:])]
    raw["view"] = {"positions": {}}
    return raw


def cnn_project() -> Project:
    """Input [1,28,28], conv 32 → conv 32 → pool → conv 64 → pool → flatten → dense 128 → 10."""
    raw = _example("digits_cnn")
    raw["name"] = "cnn28"
    pool = {"type": "MaxPool2d", "params": {"kernel_size": 2}}
    nodes = [
        {"id": "image", "type": "Input", "params": {"shape": [1, 28, 28]}},
        _conv("conv1", 32),
        _conv("conv2", 32),
        {"id": "pool1", **pool},
        _conv("conv3", 64),
        {"id": "pool2", **pool},
        {"id": "flatten", "type": "Flatten", "params": {}},
        {
            "id": "dense",
            "type": "Linear",
            "params": {"out_features": 128},
            "initializer": {"name": "kaiming_normal", "mode": "fan_in", "nonlinearity": "relu"},
            "activation": "relu",
            "dropout": 0.3,
        },
        {"id": "classes", "type": "Output", "params": {"units": 10, "task": "multiclass"}},
    ]
    return Project.from_dict(_chain(raw, nodes))


def deep_project(layers: int = 30) -> Project:
    """deep_relu_kaiming_bn, but `layers` Linear(64)+BN+ReLU layers instead of 20."""
    raw = _example("deep_relu_kaiming_bn")
    raw["name"] = f"deep_relu_{layers}"
    nodes = raw["network"]["nodes"]
    dense = next(n for n in nodes if n["id"] == "dense1")
    head = next(n for n in nodes if n["type"] == "Output")
    hidden = []
    for i in range(1, layers + 1):
        node = copy.deepcopy(dense)
        node["id"] = f"dense{i}"
        hidden.append(node)
    return Project.from_dict(_chain(raw, [nodes[0], nodes[1], *hidden, head]))


def stub_project(shape: list[int]) -> Project:
    """Input → Flatten → Output 10: only the Trainer's settings and checks use it."""
    raw = _example("digits_cnn")
    raw["name"] = "resnet18"
    nodes = [
        {"id": "image", "type": "Input", "params": {"shape": shape}},
        {"id": "flatten", "type": "Flatten", "params": {}},
        {"id": "classes", "type": "Output", "params": {"units": 10, "task": "multiclass"}},
    ]
    return Project.from_dict(_chain(raw, nodes))


# ---------------------------------------------------------------------------------- data


def digits_data(project: Project, size: int | None = None, channels: int = 1) -> PreparedData:
    """The studio's digits split, optionally upsampled (bilinear) to size×size.

    The validation split is emptied: the engine evaluates it at every epoch end, which a
    hand-written loop would not do, and this benchmark measures the training step.
    """
    data = prepare_data(project.data, (1, 8, 8), project.training["seed"])
    x = data.train.x.reshape(-1, 1, 8, 8)
    if size is not None:
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.repeat(1, channels, 1, 1).contiguous()
    empty = Split(x[:0], data.train.y[:0])
    return PreparedData(
        Split(x, data.train.y),
        empty,
        empty,
        data.classes,
        tuple(x.shape[1:]),
        f"digits {tuple(x.shape[1:])}",
    )


# ------------------------------------------------------------------------------ resnet18


class Sequence(nn.Module):
    """A GraphModel look-alike (a `layers` ModuleDict run in order) around any modules."""

    def __init__(self, parts: dict[str, nn.Module], input_shape: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleDict(parts)
        self.input_shape = input_shape
        self.output_shape = (10,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers.values():
            x = layer(x)
        return x


RESNET_TYPES = {
    "conv1": "Conv2d",
    "bn1": "BatchNorm",
    "relu": "ReLU",
    "maxpool": "MaxPool2d",
    **{f"layer{i}_{j}": "ResidualBlock" for i in range(1, 5) for j in range(2)},
    "avgpool": "GlobalAvgPool",
    "flatten": "Flatten",
    "fc": "Output",
}


def resnet18() -> Sequence:
    """torchvision's resnet18(num_classes=10), its top-level parts and blocks as layers."""
    from studio.vision import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        net = torchvision().models.resnet18(num_classes=10)
    parts: dict[str, nn.Module] = {
        "conv1": net.conv1,
        "bn1": net.bn1,
        "relu": net.relu,
        "maxpool": net.maxpool,
    }
    for i in range(1, 5):
        for j, block in enumerate(getattr(net, f"layer{i}")):
            parts[f"layer{i}_{j}"] = block
    parts.update({"avgpool": net.avgpool, "flatten": nn.Flatten(), "fc": net.fc})
    return Sequence(parts, (3, 64, 64))


# --------------------------------------------------------------------------------- cases


def make_case(name: str) -> Case:
    case = _make_case(name)
    case.project.training["epochs"] = 100_000  # StopAfter ends the run, never the epochs
    return case


def _make_case(name: str) -> Case:
    if name == "mlp":
        project = Project.from_dict(_example("digits_mlp"))
        return Case(name, "tiny MLP, digits 8×8 (digits_mlp.json)", project, digits_data(project))
    if name == "cnn":
        project = cnn_project()
        return Case(name, "small CNN, 1×28×28", project, digits_data(project, 28))
    if name == "deep":
        project = deep_project(30)
        return Case(name, "30-layer ReLU+BN MLP, 64 wide", project, digits_data(project))
    if name == "resnet18":
        project = stub_project([3, 64, 64])
        return Case(
            name,
            "torchvision resnet18, 3×64×64",
            project,
            digits_data(project, 64, 3),
            resnet18,
            RESNET_TYPES,
        )
    raise ValueError(f"unknown case {name!r} (known: {', '.join(CASES)})")


# --------------------------------------------------------------------------- raw loop


def raw_loop(case: Case, steps: int) -> tuple[float, list[float]]:
    """A plain PyTorch loop doing the engine's math; returns (seconds, losses)."""
    s = case.project.training
    model = case.model()
    model.train()
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=s["optimizer"]["lr"],
        betas=(s["optimizer"]["beta1"], s["optimizer"]["beta2"]),
        weight_decay=s["optimizer"]["weight_decay"],
        foreach=True,  # as the engine's make_optimizer: the comparison stays one of overhead
    )
    loss_fn = nn.CrossEntropyLoss()
    batches = Batches(case.data.train, s["batch_size"], case.project.data["shuffle"], s["seed"])
    losses: list[torch.Tensor] = []
    torch.manual_seed(s["seed"])
    started = time.perf_counter()
    while len(losses) < steps:
        for x, y in batches.epoch():
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            if len(losses) == steps:
                break
    seconds = time.perf_counter() - started
    return seconds, torch.stack(losses).tolist()


# ------------------------------------------------------------------------------ engine


class StopAfter(Callback):
    def __init__(self, steps: int):
        self.steps = steps

    def on_step_end(self, trainer, step):
        if step + 1 >= self.steps:
            trainer.request_stop("completed", f"benchmark finished after {self.steps} steps")


def make_trainer(case: Case, steps: int, listener: Callable[[dict], None]) -> Trainer:
    """The engine with every monitor at its default interval and budget, 30 Hz events."""
    project = case.project
    trainer = Trainer(
        project,
        device="cpu",
        listeners=[listener],
        callbacks=[StopAfter(steps)],
        emit_hz=30.0,
        data=case.data,
    )
    if case.make_model is not None:
        # A model the studio cannot build yet: swap it in with what depends on it.
        model = case.model()
        # The steps call trainer.forward (the model, or DDP around it): both are replaced.
        trainer.model = trainer.forward = model
        trainer.optimizer = make_optimizer(project.training["optimizer"], list(model.parameters()))
        trainer.penalized = [p for p in model.parameters() if p.dim() > 1]
        trainer.monitors = Monitors(model, case.node_types, {}, project.training["monitors"])
    if not trainer.monitors.enabled:
        raise RuntimeError("monitors are off")
    return trainer


def fit_timed(trainer: Trainer) -> float:
    started = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - started


def losses_of(events: list[dict]) -> list[float]:
    return [float(v) for e in events if e["type"] == "steps" for v in e["loss"]]
