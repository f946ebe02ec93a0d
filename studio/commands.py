"""Every edit a person makes, as an undoable command over the project document.

Commands are Qt-free: each has `redo`, `undo` and a `text`, and changes the document only
through its own methods, whose events the views follow (Orange's document/commands.py is
the model). The window's QUndoStack wraps them; tests drive them without Qt. A command
validates before it changes anything, so a refused edit leaves the document as it was.
"""

from __future__ import annotations

import copy
from typing import Any

from studio.document import Edge, Node, Project, parse_node
from studio.errors import ProjectError
from studio.registry import catalog
from studio.settings import DATA, TRAINING, fill_section

NODE_FIELDS = ("params", "initializer", "normalization", "activation", "dropout", "trainable")


class Command:
    text = ""

    def redo(self) -> None:
        raise NotImplementedError

    def undo(self) -> None:
        raise NotImplementedError

    # Consecutive commands with the same merge key fold into one undo step (dragging a node).
    merge_key: Any = None

    def merge(self, other: Command) -> bool:
        return False


class AddNode(Command):
    def __init__(self, project: Project, node: Node, position: list[float], edges: list[Edge] = ()):
        self.project, self.node, self.position, self.edges = (
            project,
            node,
            list(position),
            list(edges),
        )
        self.text = f"Add {node.type} '{node.id}'"

    def redo(self):
        self.project.network.add_node(self.node.copy())
        self.project.view.move({self.node.id: self.position})
        for edge in self.edges:
            self.project.network.add_edge(edge)

    def undo(self):
        self.project.network.remove_node(self.node.id)
        self.project.view.positions.pop(self.node.id, None)


class AddNodes(Command):
    """Several nodes and the edges among them (paste, templates)."""

    def __init__(
        self,
        project: Project,
        nodes: list[Node],
        positions: dict[str, list[float]],
        edges: list[Edge],
    ):
        self.project, self.nodes, self.positions, self.edges = project, nodes, positions, edges
        self.text = f"Paste {len(nodes)} layer(s)"

    def redo(self):
        for node in self.nodes:
            self.project.network.add_node(node.copy())
        self.project.view.move(self.positions)
        for edge in self.edges:
            self.project.network.add_edge(edge)

    def undo(self):
        for node in reversed(self.nodes):
            self.project.network.remove_node(node.id)
            self.project.view.positions.pop(node.id, None)


class RemoveNodes(Command):
    def __init__(self, project: Project, node_ids: list[str]):
        self.project = project
        self.ids = [n for n in node_ids if n in project.network.nodes]
        self.text = (
            f"Delete {', '.join(self.ids)}"
            if len(self.ids) <= 3
            else f"Delete {len(self.ids)} layers"
        )
        self._removed: list = []

    def redo(self):
        self._removed = []
        for nid in self.ids:
            position = self.project.view.positions.pop(nid, None)
            self._removed.append((*self.project.network.remove_node(nid), position))

    def undo(self):
        # Put nodes and edges back at their old places, so the file reads as before.
        for node, edges, index, position in reversed(self._removed):
            self.project.network.add_node(node, index)
            if position is not None:
                self.project.view.move({node.id: position})
            for edge_index, edge in edges:
                self.project.network.add_edge(edge, edge_index)


class Connect(Command):
    """Connect an output to an input port; whatever fed that port before is replaced."""

    def __init__(self, project: Project, edge: Edge):
        self.project, self.edge = project, edge
        self.replaced = [
            e for e in project.network.incoming(edge.target) if e.target_port == edge.target_port
        ]
        self.text = f"Connect {edge.source} → {edge.target}"
        self._indices: list[int] = []

    def redo(self):
        self._indices = [self.project.network.remove_edge(old) for old in self.replaced]
        self.project.network.add_edge(self.edge)

    def undo(self):
        self.project.network.remove_edge(self.edge)
        for index, old in reversed(list(zip(self._indices, self.replaced))):
            self.project.network.add_edge(old, index)


class Disconnect(Command):
    def __init__(self, project: Project, edges: list[Edge]):
        self.project, self.edges = project, list(edges)
        self.text = "Remove connection" if len(edges) == 1 else f"Remove {len(edges)} connections"
        self._indices: list[int] = []

    def redo(self):
        self._indices = [self.project.network.remove_edge(edge) for edge in self.edges]

    def undo(self):
        for index, edge in reversed(list(zip(self._indices, self.edges))):
            self.project.network.add_edge(edge, index)


class SetNodeFields(Command):
    """Change fields of one or many nodes in one step ("Kaiming on all 20 layers").

    changes: {node_id: {"params": {...partial...}, "initializer": {...}, "activation": "relu", ...}}.
    Dict-valued fields are merged into the current value. Raises ProjectError (and changes
    nothing) if any resulting node is invalid.
    """

    def __init__(self, project: Project, changes: dict[str, dict], text: str = ""):
        self.project = project
        self.before: dict[str, Node] = {}
        self.after: dict[str, Node] = {}
        cat = catalog()
        for nid, fields in changes.items():
            node = project.network.nodes[nid]
            raw = node.to_dict(cat)
            for key, value in fields.items():
                if key not in NODE_FIELDS:
                    raise ProjectError(f"'{key}' is not a field a layer has.")
                if key in ("params", "normalization") and isinstance(value, dict):
                    raw[key] = {**raw.get(key, {}), **value}
                else:
                    raw[key] = copy.deepcopy(value)
            self.before[nid] = node.copy()
            self.after[nid] = parse_node(raw, cat, nid)
        fields = sorted({k for f in changes.values() for k in f})
        names = list(changes)
        who = names[0] if len(names) == 1 else f"{len(names)} layers"
        self.text = text or f"Set {', '.join(fields)} of {who}"

    def redo(self):
        for node in self.after.values():
            self.project.network.replace_node(node.copy())

    def undo(self):
        for node in self.before.values():
            self.project.network.replace_node(node.copy())


class MoveNodes(Command):
    def __init__(
        self,
        project: Project,
        new: dict[str, list[float]],
        old: dict[str, list[float]] | None = None,
    ):
        self.project = project
        self.new = {k: list(v) for k, v in new.items()}
        self.old = old or {k: list(project.view.positions.get(k, [0.0, 0.0])) for k in new}
        self.text = "Move layers" if len(new) > 1 else f"Move {next(iter(new))}"
        self.merge_key = ("move", tuple(sorted(new)))

    def redo(self):
        self.project.view.move(self.new)

    def undo(self):
        self.project.view.move(self.old)

    def merge(self, other: Command) -> bool:
        if isinstance(other, MoveNodes) and other.merge_key == self.merge_key:
            self.new = other.new
            return True
        return False


def describe_setting(path: str, value: Any) -> str:
    """An undo label in words: "Set learning rate to 0.01", "Turn on horizontal flip"."""
    from studio.schema import Param

    node: Any = {"data": DATA, "training": TRAINING}
    words = []
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, Param):
            words.append(node.title.lower() if node.label else part.replace("_", " "))
        elif part not in ("data", "training", "augmentation", "optimizer"):
            words.append(part.replace("_", " "))
    if len(words) == 1 and path.startswith("data.") and path.count(".") == 1:
        words.insert(0, "data")  # "data path", not "path"
    if words and words[-1] == "enabled" and isinstance(value, bool):
        return f"Turn {'on' if value else 'off'} {' '.join(words[:-1])}"
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    what = " ".join(words) if words else path
    return f"Set {what} to {shown}" if len(shown) <= 24 else f"Set {what}"


class SetSettings(Command):
    """Change data or training settings by dotted path ("training.optimizer.lr": 0.01)."""

    def __init__(self, project: Project, values: dict[str, Any], text: str = ""):
        self.project = project
        self.values = dict(values)
        self.old = {path: _get(project, path) for path in values}
        # Validate the result before anything changes.
        trial = {"data": copy.deepcopy(project.data), "training": copy.deepcopy(project.training)}
        for path, value in values.items():
            _put(trial, path, value)
        fill_section(DATA, trial["data"], "data")
        fill_section(TRAINING, trial["training"], "training")
        self.text = text or (
            describe_setting(*next(iter(values.items())))
            if len(values) == 1
            else f"Change {len(values)} settings"
        )
        self.merge_key = ("settings", tuple(sorted(values)))

    def _apply(self, values: dict[str, Any]) -> None:
        sections = {"data": self.project.data, "training": self.project.training}
        for path, value in values.items():
            _put(sections, path, value)
        self.project.settings_changed.emit(list(values))

    def redo(self):
        self._apply(self.values)

    def undo(self):
        self._apply(self.old)

    def merge(self, other: Command) -> bool:
        # Typing into a field: consecutive edits of the same settings are one undo step.
        if isinstance(other, SetSettings) and other.merge_key == self.merge_key:
            self.values = other.values
            return True
        return False


class Composite(Command):
    def __init__(self, text: str, commands: list[Command]):
        self.text, self.commands = text, commands

    def redo(self):
        for command in self.commands:
            command.redo()

    def undo(self):
        for command in reversed(self.commands):
            command.undo()


def apply_fix(project: Project, fix: dict, title: str) -> Command:
    """One command for a diagnosis finding's suggested change."""
    parts: list[Command] = []
    nodes = {
        nid: changes
        for nid, changes in fix.get("nodes", {}).items()
        if nid in project.network.nodes
    }
    if nodes:
        parts.append(SetNodeFields(project, nodes))
    settings = {
        k if k.startswith(("training.", "data.")) else f"training.{k}": v
        for k, v in fix.get("training", {}).items()
    }
    if settings:
        parts.append(SetSettings(project, settings))
    return Composite(f"Apply fix: {title}", parts)


def _get(project: Project, path: str) -> Any:
    section, *keys = path.split(".")
    value: Any = {"data": project.data, "training": project.training}.get(section)
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise ProjectError(f"'{path}' is not a data or training setting.")
        value = value[key]
    return copy.deepcopy(value)


def _put(sections: dict, path: str, value: Any) -> None:
    section, *keys = path.split(".")
    if section not in sections or not keys:
        raise ProjectError(f"'{path}' is not a data or training setting.")
    target = sections[section]
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            raise ProjectError(f"'{path}' is not a data or training setting.")
        target = target[key]
    target[keys[-1]] = copy.deepcopy(value)
