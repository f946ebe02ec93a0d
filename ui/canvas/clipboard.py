"""Copy and paste of layers: the selected nodes, the edges among them and their positions,
as JSON on the system clipboard (so a paste works across windows), turned back into an
`AddNodes` command with fresh ids on paste."""

from __future__ import annotations

import json

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QGuiApplication

from studio.commands import AddNodes
from studio.document import RESERVED_IDS, Edge, Network, Project, parse_node
from studio.errors import ProjectError
from studio.registry import catalog

NODES_MIME = "application/x-studio-nodes"
FORMAT = "studio-nodes"


def snapshot(project: Project, ids: list[str]) -> dict:
    """Plain data for the given nodes, the edges among them and their positions."""
    network = project.network
    chosen = [nid for nid in ids if nid in network.nodes]
    inside = set(chosen)
    cat = catalog()
    return {
        "format": FORMAT,
        "nodes": [network.nodes[nid].to_dict(cat) for nid in chosen],
        "edges": [e.to_dict() for e in network.edges if e.source in inside and e.target in inside],
        "positions": {
            nid: list(project.view.positions[nid])
            for nid in chosen
            if nid in project.view.positions
        },
    }


def to_mime(data: dict) -> QMimeData:
    mime = QMimeData()
    text = json.dumps(data)
    mime.setData(NODES_MIME, text.encode("utf-8"))
    mime.setText(text)
    return mime


def from_clipboard() -> dict | None:
    mime = QGuiApplication.clipboard().mimeData()
    if mime is None:
        return None
    if mime.hasFormat(NODES_MIME):
        raw = bytes(mime.data(NODES_MIME)).decode("utf-8", "replace")
    elif mime.hasText():
        raw = mime.text()
    else:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def fresh_id(network: Network, type_name: str, taken: set[str]) -> str:
    """`network.new_id`, also avoiding ids already handed out in this paste."""
    candidate = network.new_id(type_name)
    if candidate not in taken:
        return candidate
    stem, _, number = candidate.rpartition("_")
    i = int(number)
    while True:
        i += 1
        candidate = f"{stem}_{i}"
        if (
            candidate not in network.nodes
            and candidate not in taken
            and candidate not in RESERVED_IDS
        ):
            return candidate


def paste_command(project: Project, data: dict, offset: float) -> tuple[AddNodes, list[str]]:
    """The command that adds a copy of `data`, offset by `offset`, and the new ids.

    Raises ProjectError if the data names a layer type this studio does not know.
    """
    cat = catalog()
    mapping: dict[str, str] = {}
    nodes = []
    for raw in data.get("nodes", []):
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise ProjectError("The clipboard holds something that is not a layer.")
        new = fresh_id(project.network, raw["type"], set(mapping.values()))
        mapping[str(raw.get("id"))] = new
        nodes.append(parse_node({**raw, "id": new}, cat, new))
    positions = {}
    for i, (old, new) in enumerate(mapping.items()):
        x, y = data.get("positions", {}).get(old, [i * 30.0, i * 30.0])
        positions[new] = [float(x) + offset, float(y) + offset]
    edges = []
    for raw in data.get("edges", []):
        source, target = mapping.get(raw.get("source")), mapping.get(raw.get("target"))
        if source and target:
            edges.append(Edge(source, target, str(raw.get("target_port", "in"))))
    return AddNodes(project, nodes, positions, edges), list(mapping.values())
