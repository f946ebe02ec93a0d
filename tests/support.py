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
