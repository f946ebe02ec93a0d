"""Document → `nn.Module`.

The model is a `GraphModel` whose `layers` ModuleDict is keyed by node id, so parameter
names (`layers.conv1.layer.weight`) depend only on the node, never on its position in the
graph: a checkpoint still loads after edits elsewhere. Each node's weights are drawn from
its own seed (project seed + node id), so the same seed gives the same weights, and adding
a layer does not reshuffle the others.
"""

from __future__ import annotations

import zlib
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from studio import pretrained
from studio.analysis import Analysis, analyze
from studio.blocks import build_block
from studio.document import Network, Project
from studio.errors import Problem, StudioError
from studio.initializers import initialize
from studio.registry import Catalog, Shape, catalog


class InvalidNetwork(StudioError):
    """The network cannot be built; carries every problem shape inference found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        more = f" ({len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(problems[0].message + more)


def node_seed(seed: int, node_id: str) -> int:
    return zlib.crc32(f"{seed}/{node_id}".encode()) & 0x7FFFFFFF


class GraphModel(nn.Module):
    """Runs the network's nodes in topological order."""

    def __init__(self, analysis: Analysis, blocks: dict[str, nn.Module]):
        super().__init__()
        self.layers = nn.ModuleDict(blocks)
        self.input_id = analysis.input_id
        self.output_id = analysis.output_id
        self.input_shape: Shape = analysis.layers[analysis.input_id].output_shape
        self.output_shape: Shape = analysis.output_shape
        self.steps = [(nid, analysis.sources[nid]) for nid in analysis.order if nid in blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input_id: x}
        for node_id, sources in self.steps:
            values[node_id] = self.layers[node_id](*[values[s] for s in sources])
        return values[self.output_id]


def build_model(
    network: Network | Project,
    seed: int | None = None,
    cat: Catalog | None = None,
    base: Path | None = None,
    analysis: Analysis | None = None,
) -> GraphModel:
    """Build the network; raise InvalidNetwork naming the nodes at fault if it cannot be built.

    base is the project file's folder, for relative weight-file and run paths (default: the
    one an enclosing build set, else the current folder). Backbones' reports on what they
    loaded are collected in `model.weights_reports` (node id → sentence). `analysis`: the
    network's, when the caller has it (it is not made again).
    """
    with pretrained.project_folder(base) if base is not None else nullcontext():
        return _build_model(network, seed, cat, analysis)


def _build_model(
    network: Network | Project, seed: int | None, cat: Catalog | None, analysis: Analysis | None
) -> GraphModel:
    if isinstance(network, Project):
        seed = network.training.get("seed", 0) if seed is None else seed
        network = network.network
    seed = 0 if seed is None else seed
    cat = cat or catalog()
    if analysis is None:
        analysis = analyze(network, cat)
    if not analysis.ok:
        raise InvalidNetwork(analysis.problems)
    blocks: dict[str, nn.Module] = {}
    reports: dict[str, str] = {}
    for nid in analysis.order:
        node = network.nodes[nid]
        layer = cat.get(node.type)
        if layer.is_input:
            continue
        info = analysis.layers[nid]
        # The layer's own default init draws from the global generator: give it this node's seed.
        with torch.random.fork_rng(devices=[]), pretrained.building(nid, node.type):
            torch.manual_seed(node_seed(seed, nid))
            block = build_block(node, layer, info.input_shapes, info.output_shape)
            if layer.weighted:
                initialize(block.layer, node.initializer["name"], node.initializer)
        if not node.trainable:
            block.requires_grad_(False)
        blocks[nid] = block
        if getattr(block.layer, "weights_report", ""):
            reports[nid] = block.layer.weights_report
    model = GraphModel(analysis, blocks)
    model.weights_reports = reports
    return model
