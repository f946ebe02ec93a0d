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
