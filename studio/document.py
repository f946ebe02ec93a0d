"""The project document: the one source of truth for an experiment.

A project holds the network (nodes with stable ids, edges by node id and port name), the
data and training sections, and, kept apart from the domain data, the view state (node
positions on the canvas). The canvas edits it through commands, the builder turns it into
an `nn.Module`, the trainer reads it; nothing reads widgets to learn the model.

The network is evented (psygnal, Qt-free) so views can follow edits without polling.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import Any

from psygnal import Signal
from torch import nn

from studio.errors import ProjectError, clip, kind_of, shown
from studio.options import ACTIVATION, DROPOUT, fill_initializer, fill_normalization
from studio.registry import Catalog, catalog
from studio.schema import fill_params
from studio.settings import DATA, TRAINING, defaults, fill_section, stored_data

FORMAT_VERSION = 1
NODE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Names the model's ModuleDict already uses; a node id cannot be one of them.
RESERVED_IDS = frozenset(dir(nn.ModuleDict()))


@dataclass
class Node:
    """One layer on the canvas. Options that a layer type does not take stay at their defaults."""

    id: str
    type: str
    params: dict = field(default_factory=dict)
    initializer: dict = field(default_factory=lambda: {"name": "default"})
    normalization: dict = field(
        default_factory=lambda: {"kind": "none", "groups": 8, "position": "before_activation"}
    )
    activation: str = "none"
    dropout: float = 0.0
    trainable: bool = True

    def to_dict(self, cat: Catalog | None = None) -> dict:
        layer = (cat or catalog()).get(self.type)
        out: dict[str, Any] = {"id": self.id, "type": self.type, "params": dict(self.params)}
        if layer is None or layer.weighted:
            out["initializer"] = dict(self.initializer)
        if layer is None or layer.block_options:
            out["normalization"] = dict(self.normalization)
            out["activation"] = self.activation
            out["dropout"] = self.dropout
        if not self.trainable:
            out["trainable"] = False
        return out

    def copy(self) -> Node:
        return copy.deepcopy(self)


@dataclass(frozen=True)
class Edge:
    """A connection from a node's output to a named input port of another node."""

    source: str
    target: str
    target_port: str = "in"
    source_port: str = "out"

    def to_dict(self) -> dict:
        out = {"source": self.source, "target": self.target}
        if self.target_port != "in":
            out["target_port"] = self.target_port
        if self.source_port != "out":
            out["source_port"] = self.source_port
        return out


class Network:
    """Nodes and edges, with events for every change."""

    node_added = Signal(object)
    node_removed = Signal(object)
    node_changed = Signal(object)
    edge_added = Signal(object)
    edge_removed = Signal(object)
    changed = Signal()

    def __init__(self, nodes: list[Node] | None = None, edges: list[Edge] | None = None):
        self.nodes: dict[str, Node] = {n.id: n for n in nodes or []}
        self.edges: list[Edge] = list(edges or [])

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def add_node(self, node: Node, index: int | None = None) -> None:
        """Add a node (at `index` in the node order, so an undo restores the file exactly)."""
        if node.id in self.nodes:
            raise ValueError(f"a node with id '{node.id}' already exists")
        if index is None or index >= len(self.nodes):
            self.nodes[node.id] = node
        else:
            items = list(self.nodes.items())
            items.insert(index, (node.id, node))
            self.nodes = dict(items)
        self.node_added.emit(node)
        self.changed.emit()

    def remove_node(self, node_id: str) -> tuple[Node, list[tuple[int, Edge]], int]:
        """Remove a node and its edges; returns what an undo needs to put them back in place."""
        index = list(self.nodes).index(node_id)
        attached = [(i, e) for i, e in enumerate(self.edges) if node_id in (e.source, e.target)]
        for _, edge in reversed(attached):
            self.remove_edge(edge)
        node = self.nodes.pop(node_id)
        self.node_removed.emit(node)
        self.changed.emit()
        return node, attached, index

    def replace_node(self, node: Node) -> None:
        """Swap in an edited copy of a node (same id)."""
        if node.id not in self.nodes:
            raise KeyError(node.id)
        self.nodes[node.id] = node
        self.node_changed.emit(node)
        self.changed.emit()

    def add_edge(self, edge: Edge, index: int | None = None) -> None:
        for end in (edge.source, edge.target):
            if end not in self.nodes:
                raise ValueError(f"there is no node '{end}'")
        if edge in self.edges:
            raise ValueError(
                f"{edge.source} → {edge.target}.{edge.target_port} is already connected"
            )
        self.edges.insert(len(self.edges) if index is None else index, edge)
        self.edge_added.emit(edge)
        self.changed.emit()

    def remove_edge(self, edge: Edge) -> int:
        index = self.edges.index(edge)
        del self.edges[index]
        self.edge_removed.emit(edge)
        self.changed.emit()
        return index

    def incoming(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.target == node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.source == node_id]

    def new_id(self, type_name: str) -> str:
        """A fresh readable id such as 'conv2d_3'."""
        stem = re.sub(r"[^a-z0-9]+", "_", type_name.lower()).strip("_") or "node"
        i = 1
        while f"{stem}_{i}" in self.nodes or f"{stem}_{i}" in RESERVED_IDS:
            i += 1
        return f"{stem}_{i}"


@dataclass
class ViewState:
    """What only the canvas needs: node positions, keyed by node id."""

    positions: dict[str, list[float]] = field(default_factory=dict)
    # Emitted with the ids whose positions changed.
    moved = Signal(object)

    def move(self, positions: dict[str, list[float]]) -> None:
        self.positions.update({k: list(v) for k, v in positions.items()})
        self.moved.emit(list(positions))

    def to_dict(self) -> dict:
        return {
            "positions": {k: [round(v[0], 1), round(v[1], 1)] for k, v in self.positions.items()}
        }


@dataclass
class Project:
    name: str = "untitled"
    description: str = ""
    network: Network = field(default_factory=Network)
    data: dict = field(default_factory=lambda: defaults(DATA))
    training: dict = field(default_factory=lambda: defaults(TRAINING))
    view: ViewState = field(default_factory=ViewState)
    version: int = FORMAT_VERSION
    # Emitted with the dotted paths ("training.optimizer.lr") of changed settings.
    settings_changed = Signal(object)

    def to_dict(self) -> dict:
        cat = catalog()
        return {
            "format": "studio-project",
            "version": self.version,
            "name": self.name,
            "description": self.description,
            "network": {
                "nodes": [n.to_dict(cat) for n in self.network.nodes.values()],
                "edges": [e.to_dict() for e in self.network.edges],
            },
            "data": stored_data(self.data),
            "training": copy.deepcopy(self.training),
            "view": self.view.to_dict(),
        }

    def copy(self) -> Project:
        """An independent copy (no listeners attached)."""
        return Project.from_dict(self.to_dict())

    @classmethod
    def new(cls) -> Project:
        """What File → New starts from: the default settings (the built-in digits data), an
        Input shaped for those digits and no other layer, trained for 20 epochs (what the
        digits examples take to converge)."""
        project = cls()
        image = {"id": "image", "type": "Input", "params": {"shape": [1, 8, 8]}}
        project.network.add_node(parse_node(image, catalog(), "the new project"))
        project.training["epochs"] = 20
        project.view.positions = {"image": [0.0, 0.0]}
        return project

    @classmethod
    def from_dict(cls, raw: Any, cat: Catalog | None = None) -> Project:
        """Build a project from plain data, validating every field.

        Raises ProjectError with one sentence naming the node or field at fault.
        """
        return _parse_project(raw, cat or catalog())


def _expect(value: Any, kind: type | tuple, where: str, what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ProjectError(f"{where} must be {what}, got {kind_of(value)}.")
    return value


_TOP_FIELDS = ("format", "version", "name", "description", "network", "data", "training", "view")


def _parse_project(raw: Any, cat: Catalog) -> Project:
    _expect(raw, dict, "The project", "a JSON object")
    unknown = [k for k in raw if k not in _TOP_FIELDS]
    if unknown:
        raise ProjectError(
            f"The project has an unknown top-level field {shown(unknown[0])} (the fields are {', '.join(_TOP_FIELDS)}); "
            "settings belong under 'training' or 'data'."
        )
    if raw.get("format", "studio-project") != "studio-project":
        raise ProjectError(
            f"Field 'format' is {shown(raw['format'])}; a studio project says \"studio-project\"."
        )
    if "network" not in raw:
        raise ProjectError(
            "The project has no 'network' section (an object with 'nodes' and 'edges')."
        )
    version = raw.get("version")
    if version != FORMAT_VERSION:
        raise ProjectError(
            f"Field 'version' must be {FORMAT_VERSION} after migration, got {shown(version)}."
        )
    network = _expect(
        raw.get("network"), dict, "Field 'network'", "an object with 'nodes' and 'edges'"
    )
    raw_nodes = _expect(network.get("nodes", []), list, "Field 'network.nodes'", "a list")
    raw_edges = _expect(network.get("edges", []), list, "Field 'network.edges'", "a list")

    nodes: list[Node] = []
    seen: set[str] = set()
    for i, raw_node in enumerate(raw_nodes):
        node = parse_node(raw_node, cat, f"network.nodes[{i}]")
        if node.id in seen:
            raise ProjectError(f"Node id '{node.id}' is used twice; every node needs its own id.")
        seen.add(node.id)
        nodes.append(node)

    edges: list[Edge] = []
    for i, raw_edge in enumerate(raw_edges):
        where = f"Edge network.edges[{i}]"
        _expect(raw_edge, dict, where, "an object with 'source' and 'target'")
        unknown = set(raw_edge) - {"source", "target", "source_port", "target_port"}
        if unknown:
            raise ProjectError(f"{where} has unknown field {shown(sorted(unknown)[0])}.")
        for end in ("source", "target"):
            value = raw_edge.get(end)
            # A list or an object is no id (and cannot be looked up: it is unhashable).
            if not isinstance(value, str) or value not in seen:
                raise ProjectError(f"{where} has {end} {shown(value)}, which is not a node id.")
        for port in ("target_port", "source_port"):
            _expect(raw_edge.get(port, ""), str, f"{where} field '{port}'", "a port name")
        edge = Edge(
            raw_edge["source"],
            raw_edge["target"],
            raw_edge.get("target_port", "in"),
            raw_edge.get("source_port", "out"),
        )
        if edge.source_port != "out":
            raise ProjectError(
                f"{where} has source_port {shown(edge.source_port)}; layers have one output, 'out'."
            )
        if edge in edges:
            raise ProjectError(f"{where} repeats the connection {edge.source} → {edge.target}.")
        edges.append(edge)

    view = raw.get("view") or {}
    _expect(view, dict, "Field 'view'", "an object")
    positions = _expect(view.get("positions", {}), dict, "Field 'view.positions'", "an object")
    for key, value in positions.items():
        ok = isinstance(value, list) and len(value) == 2
        # NaN, infinity or a 400-digit number is no place on a canvas.
        if not ok or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= 1e9 for v in value
        ):
            raise ProjectError(
                f"Field 'view.positions.{clip(key)}' must be [x, y], got {shown(value)}."
            )
    name = _expect(raw.get("name", "untitled"), str, "Field 'name'", "text")
    description = _expect(raw.get("description", ""), str, "Field 'description'", "text")
    return Project(
        name=name,
        description=description,
        network=Network(nodes, edges),
        data=fill_section(DATA, raw.get("data", {}), "data"),
        training=fill_section(TRAINING, raw.get("training", {}), "training"),
        view=ViewState({k: list(v) for k, v in positions.items() if k in seen}),
    )


_NODE_FIELDS = {
    "id",
    "type",
    "params",
    "initializer",
    "normalization",
    "activation",
    "dropout",
    "trainable",
}


def parse_node(raw: Any, cat: Catalog, where: str) -> Node:
    """Validate one node's plain data against the catalog and fill in defaults."""
    _expect(raw, dict, f"Entry {where}", "an object with 'id' and 'type'")
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not NODE_ID.match(node_id):
        raise ProjectError(
            f"Entry {where} has id {shown(node_id)}; an id is a name of letters, digits and _ "
            "that does not start with a digit (e.g. 'conv1')."
        )
    label = f"Node '{node_id}'"
    if node_id in RESERVED_IDS:
        raise ProjectError(
            f"{label}: the id '{node_id}' is reserved; rename the node (e.g. '{node_id}_1')."
        )
    unknown = set(raw) - _NODE_FIELDS
    if unknown:
        raise ProjectError(f"{label} has unknown field {shown(sorted(unknown)[0])}.")
    type_name = raw.get("type")
    layer = cat.get(type_name) if isinstance(type_name, str) else None
    if layer is None:
        raise ProjectError(
            f"{label} has unknown layer type {shown(type_name)}; {_known_types(type_name, cat)}."
        )
    label = f"Node '{node_id}' ({type_name})"
    try:
        params = fill_params(
            layer.params,
            _expect(raw.get("params", {}), dict, f"{label} field 'params'", "an object"),
            label,
        )
        node = Node(node_id, type_name, params)
        if layer.weighted:
            node.initializer = fill_initializer(raw.get("initializer"), label)
        elif "initializer" in raw:
            raise ValueError(f"{label} has no weights, so field 'initializer' does not apply.")
        if layer.block_options:
            node.normalization = fill_normalization(raw.get("normalization"), label)
            node.activation = _coerce(ACTIVATION, raw.get("activation", "none"), label)
            node.dropout = _coerce(DROPOUT, raw.get("dropout", 0.0), label)
        else:
            for opt in ("normalization", "activation", "dropout"):
                if opt in raw:
                    raise ValueError(
                        f"{label} does not take field '{opt}'; add a separate layer instead."
                    )
        trainable = raw.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ValueError(f"{label}, field 'trainable': must be true or false.")
        node.trainable = trainable
    except ValueError as err:
        raise ProjectError(str(err)) from None
    return node


def _known_types(type_name: Any, cat: Catalog) -> str:
    """The closest known type names, or where to find them all (the full list of ~40 would
    make the sentence run on)."""
    # A type name is short; matching a 200 KB one would take seconds for nothing.
    plausible = isinstance(type_name, str) and len(type_name) <= 64
    close = get_close_matches(type_name, cat.names(), n=3) if plausible else []
    if close:
        closest = "type is" if len(close) == 1 else "types are"
        return (
            f"the closest known {closest} {', '.join(close)} "
            f"(`studio layers` lists all {len(cat.names())})"
        )
    return f"`studio layers` lists the {len(cat.names())} known types"


def _coerce(param, value: Any, label: str) -> Any:
    try:
        return param.coerce(value)
    except ValueError as err:
        raise ValueError(f"{label}, field '{param.name}': {err}.") from None
