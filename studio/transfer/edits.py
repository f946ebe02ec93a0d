"""Edits that put a pretrained backbone into the project, each as one undoable command.

- `backbone_template`: a backbone dropped on a plain Input → … → Output project becomes
  Input (sized for the backbone's weights) → backbone → Output, with ImageNet scaling when
  the weights are ImageNet's: the usual start of transfer learning in one step.
- `use_run_as_backbone`: a model trained in an earlier run, minus its head, replaces the
  layers between the Input and the Output head.

Qt-free (the canvas and the runs panel call these), so tests can drive them directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.commands import (
    AddNode,
    Command,
    Composite,
    Disconnect,
    MoveNodes,
    RemoveNodes,
    SetNodeFields,
    SetSettings,
)
from studio.document import Edge, Network, Project, parse_node
from studio.errors import StudioError
from studio.projectfile import load_project
from studio.registry import catalog

GAP = 110.0  # from the Input down to the backbone (scene units)
# From the backbone down to the head: room for the backbone node with its stages shown.
BACKBONE_ROOM = 200.0
RUN_BACKBONE = "RunBackbone"


class TransferEditError(StudioError):
    pass


@dataclass
class Chain:
    """A network that is one line: the Input, the layers after it, and the Output head."""

    input_id: str
    middle: list[str] = field(default_factory=list)
    output_id: str | None = None


def _is_input(network: Network, nid: str) -> bool:
    layer = catalog().get(network.nodes[nid].type)
    return bool(layer is not None and layer.is_input)


def plain_chain(network: Network) -> Chain | None:
    """The chain when the network is just Input → … → Output (or only an Input, or an Input
    and an unconnected Output); None for anything with branches or loose ends."""
    inputs = [nid for nid in network.nodes if _is_input(network, nid)]
    if len(inputs) != 1:
        return None
    order = [inputs[0]]
    while True:
        out = network.outgoing(order[-1])
        if not out:
            break
        nxt = out[0].target
        if len(out) > 1 or nxt in order or len(network.incoming(nxt)) != 1:
            return None
        order.append(nxt)
    rest = [nid for nid in network.nodes if nid not in order]
    if len(order) == 1:
        if not rest:
            return Chain(order[0])
        # The Input has no edges, so a lone Output beside it is unconnected too.
        if len(rest) == 1 and network.nodes[rest[0]].type == "Output":
            return Chain(order[0], [], rest[0])
        return None
    if rest or network.nodes[order[-1]].type != "Output":
        return None
    return Chain(order[0], order[1:-1], order[-1])


def fresh_id(network: Network, stem: str = "backbone") -> str:
    """'backbone', or 'backbone_2', … when taken."""
    if stem not in network.nodes:
        return stem
    i = 2
    while f"{stem}_{i}" in network.nodes:
        i += 1
    return f"{stem}_{i}"


def backbone_template(project: Project, type_name: str) -> tuple[Command, str] | None:
    """The template command for a backbone dropped on a plain chain, and the new node's id;
    None when the project is not a plain chain (the caller then just adds the node)."""
    network = project.network
    chain = plain_chain(network)
    cat = catalog()
    layer = cat.get(type_name)
    if chain is None or layer is None:
        return None
    node_id = fresh_id(network)
    node = parse_node({"id": node_id, "type": type_name}, cat, node_id)
    hint_of = getattr(layer, "input_hint", None)
    hint = hint_of(node.params) if hint_of is not None else None

    parts: list[Command] = []
    parts.extend(_clear_between(project, chain))
    if hint and list(network.nodes[chain.input_id].params.get("shape", [])) != list(hint["shape"]):
        parts.append(
            SetNodeFields(
                project, {chain.input_id: {"params": {"shape": [int(v) for v in hint["shape"]]}}}
            )
        )
    parts.extend(_place(project, chain, node, layer))
    if (
        hint
        and node.params.get("weights") == "imagenet"
        and project.data.get("scaling") != "imagenet"
    ):
        # The pretrained filters expect inputs normalized as in their training.
        parts.append(SetSettings(project, {"data.scaling": "imagenet"}))
    return Composite(f"Start from {type_name}", parts), node_id


def use_run_as_backbone(
    project: Project, run_dir: Path, project_dir: Path | None
) -> tuple[Command, str]:
    """A RunBackbone node for the model of a past run, fed by the Input and feeding the
    Output head, instead of the layers between them. Raises TransferEditError (one
    sentence) when the project has no Input or the run cannot be read."""
    network = project.network
    inputs = [nid for nid in network.nodes if _is_input(network, nid)]
    if len(inputs) != 1:
        raise TransferEditError(
            "Use as backbone needs a project with exactly one Input layer to feed the "
            f"backbone; this one has {len(inputs)}."
        )
    run_dir = Path(run_dir)
    try:
        run_project = load_project(run_dir / "project.json")
    except (StudioError, OSError) as err:
        raise TransferEditError(f"Cannot use run '{run_dir.name}' as a backbone: {err}") from None
    cat = catalog()
    if RUN_BACKBONE not in cat:
        raise TransferEditError("The RunBackbone layer type is not installed.")
    heads = [nid for nid, n in network.nodes.items() if n.type == "Output"]
    chain = Chain(inputs[0], [], heads[0] if len(heads) == 1 else None)
    if chain.output_id is not None:
        chain.middle = _between(network, chain.input_id, chain.output_id)
    node_id = fresh_id(network)
    node = parse_node(
        {
            "id": node_id,
            "type": RUN_BACKBONE,
            "params": {"run": _run_reference(run_dir, project_dir)},
        },
        cat,
        node_id,
    )
    parts: list[Command] = []
    parts.extend(_clear_between(project, chain))
    # The backbone takes what its run was trained on.
    run_inputs = [n for n in run_project.network.nodes.values() if n.type == "Input"]
    if run_inputs:
        want = list(run_inputs[0].params.get("shape", []))
        if want and list(network.nodes[chain.input_id].params.get("shape", [])) != want:
            parts.append(SetNodeFields(project, {chain.input_id: {"params": {"shape": want}}}))
    parts.extend(_place(project, chain, node, cat.get(RUN_BACKBONE)))
    return Composite(f"Use run {run_dir.name} as backbone", parts), node_id


# -- helpers ---------------------------------------------------------------------------------
def _between(network: Network, source: str, target: str) -> list[str]:
    """Nodes on some path from source to target (both excluded), in document order."""

    def reach(start: str, step) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in step(todo.pop()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    after = reach(source, lambda n: [e.target for e in network.outgoing(n)])
    before = reach(target, lambda n: [e.source for e in network.incoming(n)])
    inside = (after & before) - {source, target}
    return [nid for nid in network.nodes if nid in inside]


def _clear_between(project: Project, chain: Chain) -> list[Command]:
    parts: list[Command] = []
    if chain.output_id is not None:
        direct = [
            e for e in project.network.incoming(chain.output_id) if e.source == chain.input_id
        ]
        if direct:
            parts.append(Disconnect(project, direct))
    if chain.middle:
        parts.append(RemoveNodes(project, chain.middle))
    return parts


def _place(project: Project, chain: Chain, node, layer) -> list[Command]:
    """Add the backbone under the Input, wired in, and move the head under it."""
    x, y = project.view.positions.get(chain.input_id, [0.0, 0.0])
    ports = layer.ports(node.params)
    edges = [Edge(chain.input_id, node.id, ports[0])] if ports else []
    if chain.output_id is not None:
        edges.append(Edge(node.id, chain.output_id))
    parts: list[Command] = [AddNode(project, node, [x, y + GAP], edges)]
    if chain.output_id is not None:
        parts.append(MoveNodes(project, {chain.output_id: [x, y + GAP + BACKBONE_ROOM]}))
    return parts


def _run_reference(run_dir: Path, project_dir: Path | None) -> str:
    """The run folder as the node stores it: relative to the project file when the run
    lies beside it (the pair moves together), else absolute (runs kept in the user's data
    folder stay found wherever the project is saved)."""
    run_dir = Path(run_dir).resolve()
    if project_dir is not None:
        base = Path(project_dir).resolve()
        if run_dir.is_relative_to(base):
            return os.path.relpath(run_dir, base)
    return str(run_dir)
