"""Shape inference: what flows through every layer, what each costs, and what is wrong.

For a network it gives each node's output shape, parameter count (trainable or frozen) and
multiply-accumulates, and attaches every problem to the node that causes it, in a sentence
that says what to change. Parameter counts come from building each block on the meta
device, so they are the real module's by construction; shapes come from each layer type's
own rule, which the tests hold against real forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from studio.blocks import build_block
from studio.document import Network
from studio.errors import Problem, ShapeError, clip
from studio.initializers import check_initializer, weight_ranks
from studio.registry import Catalog, LayerType, Shape, catalog
from studio.shapes_text import describe


@dataclass
class LayerInfo:
    node_id: str
    type: str
    input_shapes: list[Shape] | None = None
    output_shape: Shape | None = None
    params: int = 0
    trainable: bool = True
    macs: int = 0
    error: str | None = None
    # Parameters that do not train: all of them for a frozen node, a backbone's frozen stages.
    frozen: int = 0
    # A backbone's stages, input → output: (name, parameter count, frozen).
    stages: list[tuple[str, int, bool]] | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.node_id,
            "type": self.type,
            "input_shapes": [list(s) for s in self.input_shapes] if self.input_shapes else None,
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "params": self.params,
            "trainable": self.trainable,
            "macs": self.macs,
            "error": self.error,
            "frozen": self.frozen,
            "stages": [list(s) for s in self.stages] if self.stages is not None else None,
        }


@dataclass
class Analysis:
    order: list[str] = field(default_factory=list)
    layers: dict[str, LayerInfo] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    input_id: str | None = None
    output_id: str | None = None
    # Sources feeding each node, in port order (only for nodes whose ports are all connected).
    sources: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def trainable_params(self) -> int:
        return sum(i.params - i.frozen for i in self.layers.values())

    @property
    def frozen_params(self) -> int:
        return sum(i.frozen for i in self.layers.values())

    @property
    def macs(self) -> int:
        return sum(i.macs for i in self.layers.values())

    @property
    def output_shape(self) -> Shape | None:
        return self.layers[self.output_id].output_shape if self.output_id in self.layers else None

    def problem_for(self, node_id: str) -> str | None:
        return self.layers[node_id].error if node_id in self.layers else None

    def to_dict(self) -> dict:
        return {
            "valid": self.ok,
            "input": self.input_id,
            "output": self.output_id,
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params,
            "macs": self.macs,
            "layers": [self.layers[n].to_dict() for n in self.order],
            "problems": [p.to_dict() for p in self.problems],
        }


def analyze(network: Network, cat: Catalog | None = None) -> Analysis:
    cat = cat or catalog()
    result = _Analyzer(network, cat)
    return result.run()


class _Analyzer:
    def __init__(self, network: Network, cat: Catalog):
        self.net = network
        self.cat = cat
        self.out = Analysis()
        self.types: dict[str, LayerType] = {
            nid: cat.get(n.type) for nid, n in network.nodes.items()
        }
        for nid, node in network.nodes.items():
            self.out.layers[nid] = LayerInfo(nid, node.type, trainable=node.trainable)

    def problem(self, node_id: str | None, message: str, field: str | None = None) -> None:
        if node_id is not None:
            if self.out.layers[node_id].error:
                return  # one sentence per node: the first cause
            node = self.net.nodes[node_id]
            message = f"Node '{node_id}' ({node.type}): {message}"
            self.out.layers[node_id].error = message
        self.out.problems.append(
            Problem(message if message.endswith(".") else message + ".", node_id, field)
        )

    def run(self) -> Analysis:
        inputs = [nid for nid, t in self.types.items() if t.is_input]
        if not inputs:
            self.problem(
                None, "The network has no Input layer; add one from the Core group of the palette"
            )
        for extra in inputs[1:]:
            self.problem(
                extra,
                f"only one Input layer is supported and '{inputs[0]}' is already one; delete this one",
            )
        self.out.input_id = inputs[0] if inputs else None

        port_edges = self._check_ports()
        order = self._topological_order(port_edges)
        self.out.order = order
        for nid in order:
            self._infer(nid, port_edges.get(nid, {}))
        self._find_output()
        return self.out

    def _check_ports(self) -> dict[str, dict[str, str]]:
        """Map node → port → source node, reporting edges into missing or busy ports."""
        ports: dict[str, dict[str, str]] = {}
        for edge in self.net.edges:
            layer = self.types[edge.target]
            names = layer.ports(self.net.nodes[edge.target].params)
            if not names:
                self.problem(
                    edge.target,
                    f"an {layer.name} layer takes no incoming connections; remove the one from '{edge.source}'",
                )
                continue
            if edge.target_port not in names:
                self.problem(
                    edge.target,
                    f"there is no input port '{edge.target_port}' (its ports: {', '.join(names)}); "
                    f"reconnect '{edge.source}' to one of them",
                    "target_port",
                )
                continue
            taken = ports.setdefault(edge.target, {})
            if edge.target_port in taken:
                self.problem(
                    edge.target,
                    f"input '{edge.target_port}' receives both '{taken[edge.target_port]}' and "
                    f"'{edge.source}'; a port takes one connection (use Add or Concat to join branches)",
                )
                continue
            taken[edge.target_port] = edge.source
        return ports

    def _topological_order(self, port_edges: dict[str, dict[str, str]]) -> list[str]:
        successors: dict[str, list[str]] = {nid: [] for nid in self.net.nodes}
        indegree = dict.fromkeys(self.net.nodes, 0)
        for target, ports in port_edges.items():
            for source in ports.values():
                successors[source].append(target)
                indegree[target] += 1
        ready = [nid for nid in self.net.nodes if indegree[nid] == 0]
        order: list[str] = []
        while ready:
            nid = ready.pop(0)
            order.append(nid)
            for nxt in successors[nid]:
                indegree[nxt] -= 1
                if indegree[nxt] == 0:
                    ready.append(nxt)
        stuck = [nid for nid in self.net.nodes if nid not in order]
        if stuck:
            cycle = _find_cycle(stuck, port_edges)
            loop = " → ".join([*cycle, cycle[0]])
            for nid in stuck:
                if nid in cycle:
                    self.problem(
                        nid,
                        f"it is part of a cycle ({loop}); a network must flow one way from Input to output, "
                        "so remove one of these connections",
                    )
        return order

    def _infer(self, nid: str, ports: dict[str, str]) -> None:
        node = self.net.nodes[nid]
        layer = self.types[nid]
        info = self.out.layers[nid]
        if info.error:
            return
        shapes: list[Shape] = []
        names = layer.ports(node.params)
        for port in names:
            source = ports.get(port)
            if source is None:
                what = f"its input '{port}'" if len(names) > 1 else "its input"
                self.problem(
                    nid, f"nothing is connected to {what}; connect an upstream layer to it"
                )
                return
            shape = self.out.layers[source].output_shape
            if shape is None:
                return  # the upstream node already carries the error
            shapes.append(shape)
        try:
            output = layer.output_shape(node.params, shapes)
            block = _meta_block(node, layer, shapes, output)
            if layer.weighted:
                check_initializer(
                    node.initializer["name"], node.initializer, weight_ranks(block.layer)
                )
        except ShapeError as err:
            self.problem(nid, str(err))
            return
        except (RuntimeError, ValueError, OverflowError, TypeError) as err:
            # Torch refusing what no layer rule foresaw, such as more weights than it can count.
            self.problem(nid, _unbuildable(shapes, err))
            return
        info.input_shapes = shapes
        info.output_shape = tuple(output)
        info.params = sum(p.numel() for p in block.parameters())
        info.frozen = (
            sum(p.numel() for p in block.parameters() if not p.requires_grad)
            if node.trainable
            else info.params
        )
        info.stages = _stages(block.layer, node.trainable) if layer.backbone else None
        info.macs = layer.macs(node.params, shapes, output)
        self.out.sources[nid] = [ports[p] for p in names]

    def _find_output(self) -> None:
        used = {e.source for e in self.net.edges}
        ends = [nid for nid in self.out.order if nid not in used]
        if not self.net.nodes or self.out.input_id is None:
            return
        if len(self.net.nodes) == 1:
            self.problem(self.out.input_id, "the network has only an Input; add layers after it")
            return
        heads = [nid for nid in ends if self.net.nodes[nid].type == "Output"]
        if len(ends) == 1:
            self.out.output_id = ends[0]
        elif len(heads) == 1:
            self.out.output_id = heads[0]
        for nid in ends:
            if nid != self.out.output_id:
                self.problem(
                    nid, "its output goes nowhere; connect it to the next layer or delete it"
                )


def _find_cycle(stuck: list[str], port_edges: dict[str, dict[str, str]]) -> list[str]:
    """One cycle among nodes that the topological sort could not order.

    Every such node has a predecessor that could not be ordered either, so walking
    predecessors must come back to a node already seen.
    """
    inside = set(stuck)
    path: list[str] = []
    position: dict[str, int] = {}
    nid = stuck[0]
    while nid not in position:
        position[nid] = len(path)
        path.append(nid)
        nid = next(s for s in port_edges.get(nid, {}).values() if s in inside)
    return list(reversed(path[position[nid] :]))


def _stages(module, trainable: bool) -> list[tuple[str, int, bool]]:
    """A backbone's stages (studio/transfer/backbone.py) with their parameter counts and
    whether each is frozen."""
    names = module.stage_names
    return [
        (name, sum(p.numel() for p in stage.parameters()), not trainable or i < module.freeze_point)
        for i, (name, stage) in enumerate(zip(names, module.stage_modules(), strict=True))
    ]


def _unbuildable(shapes: list[Shape], err: Exception) -> str:
    given = f"for inputs of {' and '.join(map(describe, shapes))}" if shapes else "as set"
    if "overflow" in str(err).lower():
        return f"it cannot be built {given}: its weights would be more than torch can count; use smaller sizes"
    reason = clip((str(err).strip().splitlines() or [type(err).__name__])[0], 100)
    return f"it cannot be built {given} ({reason})"


def _meta_block(node, layer: LayerType, shapes: list[Shape], output: Shape):
    with torch.device("meta"):
        return build_block(node, layer, shapes, output)
