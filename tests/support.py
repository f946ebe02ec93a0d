"""Helpers shared by the tests: paths, example projects, and a tiny network builder."""

from __future__ import annotations

from pathlib import Path

from studio.document import Edge, Network, Project, parse_node
from studio.registry import catalog

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "resources" / "examples").glob("*.json"))


def net(*nodes: dict, edges: list[tuple] = ()) -> Network:
    """A network from node dicts (validated like a file) and (source, target[, port]) edges."""
    network = Network()
    for raw in nodes:
        network.add_node(parse_node(raw, catalog(), raw.get("id", "?")))
    for edge in edges:
        network.add_edge(Edge(*edge))
    return network


def chain(*nodes: dict) -> Network:
    """Nodes connected one after another."""
    ids = [n["id"] for n in nodes]
    return net(*nodes, edges=list(zip(ids, ids[1:])))


def project_of(network: Network) -> Project:
    return Project(name="test", network=network)


def mlp_project(
    depth: int,
    width: int,
    activation: str,
    initializer: dict,
    normalization: str = "none",
    optimizer: dict | None = None,
    **training,
) -> Project:
    """A chain on the 8×8 digits: Flatten, `depth` Linear layers alike, a 10-class head."""
    hidden = [
        {
            "id": f"dense{i}",
            "type": "Linear",
            "params": {"out_features": width},
            "initializer": initializer,
            "normalization": {"kind": normalization},
            "activation": activation,
        }
        for i in range(1, depth + 1)
    ]
    project = project_of(
        chain(
            {"id": "image", "type": "Input", "params": {"shape": [1, 8, 8]}},
            {"id": "flatten", "type": "Flatten"},
            *hidden,
            {"id": "classes", "type": "Output", "params": {"units": 10}},
        )
    )
    project.name = f"mlp{depth}_{activation}_{initializer['name']}"
    project.training["optimizer"].update(optimizer or {"name": "adam", "lr": 1e-3})
    project.training.update(training)
    return project


def resnet18_on_images(folder: Path, classes: int, freeze_point: int) -> Project:
    """A ResNet-18 (no pretrained weights) on 32×32 images from `folder`, a new head."""
    project = project_of(
        chain(
            {"id": "image", "type": "Input", "params": {"shape": [3, 32, 32]}},
            {
                "id": "backbone",
                "type": "ResNet18",
                "params": {"weights": "none", "freeze_point": freeze_point},
            },
            {"id": "classes", "type": "Output", "params": {"units": classes}},
        )
    )
    project.data.update(source="image_folder", path=str(folder))
    return project


def image_folder(root: Path, classes: int = 3, per_class: int = 12, size: int = 64) -> Path:
    """Generated PNGs. Class c: a bright square in one of three places, on noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            at = 8 + c * (size // 4)
            pixels[at : at + size // 4, at : at + size // 4, c % 3] = 255
            Image.fromarray(pixels).save(root / f"class_{c}" / f"{i}.png")
    return root


def train_stopped_and_resumed(path: Path, sets: list[str], runs: Path, stop_after: int = 30):
    """Train a project whole; train it again, stopped after `stop_after` steps, and resume
    that run. Returns (whole, stopped, resumed) outcomes, for exact-resume checks."""
    import threading

    from studio.projectfile import load_project
    from studio.training.runs import Run
    from studio.training.session import train

    whole = train(load_project(path, sets), runs_root=runs)
    stop, seen = threading.Event(), [0]

    def stop_midway(event):
        if event["type"] == "steps":
            seen[0] += len(event["step"])
            if seen[0] >= stop_after:
                stop.set()

    part = train(
        load_project(path, sets), runs_root=runs, stop=stop, listeners=[stop_midway], emit_hz=0
    )
    resumed = None
    if part.result.status == "stopped":
        resumed = train(None, runs_root=runs, resume=Run.open(runs, part.run.id))
    return whole, part, resumed
