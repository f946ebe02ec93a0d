"""The scene mirrors the document: one NodeItem per node, one EdgeItem per edge.

It follows the network's psygnal events (node/edge added, removed, changed) and the model's
Qt signals (analysis, selection, positions) and updates only the items concerned; the whole
scene is rebuilt only when another project is opened. It changes the document only through
the model: the selection a person made with the mouse (`model.select`), and, when a
backbone node expanded to show its stages would cover the nodes under it, one undoable
MoveNodes command that pushes them down.
"""

from __future__ import annotations

import contextlib
import logging

import shiboken6
from PySide6.QtCore import QPointF, QRectF, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsScene

from studio.commands import MoveNodes
from studio.document import Edge, Network, Node
from studio.layout import auto_layout
from studio.registry import catalog
from studio.shapes_text import describe
from ui.canvas import style
from ui.canvas.edge_item import EdgeItem
from ui.canvas.node_item import NodeItem, make_face
from ui.canvas.port_item import PortItem

log = logging.getLogger(__name__)


class _NetworkLink:
    """The psygnal connections to one network, so they can be dropped when the project is
    replaced (or the canvas goes away) without holding the old network's events."""

    def __init__(self, network: Network, handlers: dict):
        self.network = network
        self.handlers = handlers
        for name, handler in handlers.items():
            getattr(network, name).connect(handler)

    def disconnect(self, *_args) -> None:
        if self.network is None:
            return
        for name, handler in self.handlers.items():
            with contextlib.suppress(Exception):  # already gone
                getattr(self.network, name).disconnect(handler)
        self.network = None


class GraphScene(QGraphicsScene):
    _redraw_requested = Signal()

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self._redraw_requested.connect(self.rebuild, Qt.QueuedConnection)
        self.model = model
        self.nodes: dict[str, NodeItem] = {}
        self.edges: dict[Edge, EdgeItem] = {}
        self._link: _NetworkLink | None = None
        self._applying_selection = False
        self._place_pending = False
        # Backbone nodes showing their stages: view state, never saved in the project.
        self.expanded: set[str] = set()
        # A huge fixed rect: the view pans freely and the scroll range does not jump as
        # nodes move (the grid is drawn wherever one looks).
        self.setSceneRect(QRectF(-50_000, -50_000, 100_000, 100_000))
        self.selectionChanged.connect(self._selection_to_model)
        model.project_replaced.connect(self.rebuild)
        model.analysis_changed.connect(self.apply_analysis)
        model.selection_changed.connect(self.apply_selection)
        model.positions_changed.connect(self.apply_positions)
        self.rebuild()

    # -- following the network -----------------------------------------------------------
    def _relink(self) -> None:
        if self._link is not None:
            self._link.disconnect()
        # psygnal calls these synchronously inside the command that changes the network;
        # _guard keeps a canvas bug from raising into (and half-applying) that command.
        self._link = _NetworkLink(
            self.model.project.network,
            {
                "node_added": self._guard(self._node_added),
                "node_removed": self._guard(self._node_removed),
                "node_changed": self._guard(self._node_changed),
                "edge_added": self._guard(self._edge_added),
                "edge_removed": self._guard(self._edge_removed),
            },
        )

    def unlink(self) -> None:
        if self._link is not None:
            self._link.disconnect()
            self._link = None

    def _guard(self, handler):
        def call(arg):
            if not shiboken6.isValid(self):
                # The canvas was closed but the project lives on (another window): let go.
                if self._link is not None:
                    self._link.disconnect()
                return
            if QThread.currentThread() != self.thread():
                # Items may only be touched in the GUI thread; an edit made elsewhere is
                # drawn by a full redraw there (queued, so this thread does not wait).
                self._redraw_requested.emit()
                return
            try:
                handler(arg)
            except Exception:
                log.exception("canvas could not follow a document change; redrawing")
                self._redraw_requested.emit()

        return call

    @property
    def network(self) -> Network:
        return self.model.project.network

    def rebuild(self) -> None:
        """Drop every item and draw the document afresh (opening a project)."""
        self._relink()
        self._applying_selection = True
        try:
            self.clear()
        finally:
            self._applying_selection = False
        self.nodes.clear()
        self.edges.clear()
        self.expanded &= set(self.network.nodes)
        network = self.network
        positions = self.model.project.view.positions
        missing = [nid for nid in network.nodes if nid not in positions]
        fallback = auto_layout(network) if missing else {}
        for node in network.nodes.values():
            self._node_added(node, positions.get(node.id) or fallback.get(node.id))
        for edge in network.edges:
            self._edge_added(edge)
        self.apply_analysis()
        self.apply_selection(self.model.selection)

    def _face(self, node: Node):
        info = self.model.analysis.layers.get(node.id)
        return make_face(node, catalog().get(node.type), info, node.id in self.expanded)

    def toggle_expanded(self, node_id: str, expanded: bool | None = None) -> None:
        """Show or hide a backbone node's stages (view state only; no undo step)."""
        node = self.network.nodes.get(node_id)
        item = self.nodes.get(node_id)
        if node is None or item is None:
            return
        if expanded is None:
            expanded = node_id not in self.expanded
        if expanded:
            self.expanded.add(node_id)
        else:
            self.expanded.discard(node_id)
        before = item.sceneBoundingRect()
        if item.set_face(self._face(node)):
            if expanded:
                self._make_room_below(node_id, before, item.sceneBoundingRect())
            self.reroute()  # a taller node may now stand in another edge's way

    def _make_room_below(self, node_id: str, before: QRectF, after: QRectF) -> None:
        """An expanded node that now covers the nodes under it pushes them down (one
        undoable move), so no layer hides behind the list of stages."""
        grown = after.height() - before.height()
        covered = [
            nid
            for nid, other in self.nodes.items()
            if nid != node_id and other.sceneBoundingRect().intersects(after)
        ]
        if grown <= 0 or not covered:
            return
        positions = self.model.project.view.positions
        below = {
            nid: [positions[nid][0], positions[nid][1] + grown + style.GRID_MINOR]
            for nid, other in self.nodes.items()
            if nid != node_id and nid in positions and other.pos().y() >= before.bottom() - 1
        }
        if below:
            self.model.push(MoveNodes(self.model.project, below))

    def _node_added(self, node: Node, position=None) -> None:
        item = NodeItem(self._face(node))
        self.nodes[node.id] = item
        self.addItem(item)
        position = position or self.model.project.view.positions.get(node.id)
        if position is not None:
            self._place(item, position)
        else:
            # AddNode sets the position right after adding the node; if nothing does, the
            # node is placed (for display only) once the current command is over.
            item.synced_pos = None
            self._schedule_placement()

    def _node_removed(self, node: Node) -> None:
        item = self.nodes.pop(node.id, None)
        self.expanded.discard(node.id)
        if item is None:
            return
        for edge_item in list(item.edges):
            self._drop_edge_item(edge_item)
        self.removeItem(item)

    def _node_changed(self, node: Node) -> None:
        item = self.nodes.get(node.id)
        if item is not None:
            item.set_face(self._face(node))
            self._update_ports(item)

    def _edge_added(self, edge: Edge) -> None:
        source, target = self.nodes.get(edge.source), self.nodes.get(edge.target)
        if source is None or target is None or edge in self.edges:
            return
        item = EdgeItem(edge, source, target)
        self.edges[edge] = item
        source.edges.add(item)
        target.edges.add(item)
        self.addItem(item)
        self._edge_state(item)
        # Now that it is in the scene it can route round other nodes; siblings too, since
        # where their labels sit depends on how many edges share their ends.
        self._reroute_around(source, target)
        self._update_ports(target)

    def _edge_removed(self, edge: Edge) -> None:
        item = self.edges.get(edge)
        if item is not None:
            self._drop_edge_item(item)

    def _drop_edge_item(self, item: EdgeItem) -> None:
        self.edges.pop(item.edge, None)
        item.source.edges.discard(item)
        item.target.edges.discard(item)
        if item.scene() is self:
            self.removeItem(item)
        self._reroute_around(item.source, item.target)
        self._update_ports(item.target)

    @staticmethod
    def _reroute_around(*nodes: NodeItem) -> None:
        for edge in {e for n in nodes for e in n.edges}:
            edge.update_geometry()

    def _update_ports(self, item: NodeItem) -> None:
        fed = {e.edge.target_port for e in item.edges if e.target is item}
        for name, port in item.in_ports.items():
            port.set_connected(name in fed)
        item.out_port.set_connected(any(e.source is item for e in item.edges))

    # -- following the model's Qt signals ------------------------------------------------
    def apply_analysis(self) -> None:
        """Refresh faces and edge labels; only items whose look changed repaint."""
        network = self.network
        for nid, item in self.nodes.items():
            node = network.nodes.get(nid)
            if node is not None:
                item.set_face(self._face(node))
                self._update_ports(item)
        for item in self.edges.values():
            self._edge_state(item)

    def _edge_state(self, item: EdgeItem) -> None:
        layers = self.model.analysis.layers
        source = layers.get(item.edge.source)
        target = layers.get(item.edge.target)
        label = describe(source.output_shape) if source is not None and source.output_shape else ""
        item.set_state(label, bool(target is not None and target.error))

    def apply_positions(self, ids) -> None:
        positions = self.model.project.view.positions
        for nid in ids:
            item = self.nodes.get(nid)
            if item is not None and nid in positions:
                self._place(item, positions[nid])
        self.reroute()

    def _place(self, item: NodeItem, position) -> None:
        point = QPointF(float(position[0]), float(position[1]))
        item.synced_pos = point
        if item.pos() != point:
            item.setPos(point)

    def _schedule_placement(self) -> None:
        if not self._place_pending:
            self._place_pending = True
            QTimer.singleShot(0, self, self._place_unplaced)  # dropped if the scene goes

    def _place_unplaced(self) -> None:
        self._place_pending = False
        unplaced = [nid for nid, item in self.nodes.items() if item.synced_pos is None]
        if not unplaced:
            return
        layout = auto_layout(self.network)
        for nid in unplaced:
            item = self.nodes[nid]
            item.setPos(QPointF(*layout.get(nid, [0.0, 0.0])))
            item.synced_pos = QPointF(item.pos())

    def reroute(self) -> None:
        """Recompute every edge's path (a moved node may now stand in another edge's way)."""
        for item in self.edges.values():
            item.update_geometry()

    def obstacles(self, p0: QPointF, p1: QPointF, exclude) -> list[QRectF]:
        """Node rectangles an edge from p0 down to p1 would run through."""
        if p1.y() - p0.y() < 12:
            return []
        corridor = QRectF(
            min(p0.x(), p1.x()) - 3, p0.y() + 6, abs(p1.x() - p0.x()) + 6, p1.y() - p0.y() - 12
        )
        found = []
        for item in self.nodes.values():
            if item in exclude:
                continue
            rect = item.mapRectToScene(item.rect())
            if rect.intersects(corridor):
                found.append(rect)
        return found

    # -- selection -----------------------------------------------------------------------
    def selected_node_ids(self) -> list[str]:
        return [nid for nid, item in self.nodes.items() if item.isSelected()]

    def selected_edges(self) -> list[Edge]:
        return [edge for edge, item in self.edges.items() if item.isSelected()]

    def _selection_to_model(self) -> None:
        if self._applying_selection:
            return
        self.model.select(self.selected_node_ids())

    def apply_selection(self, ids) -> None:
        wanted = set(ids)
        if wanted == set(self.selected_node_ids()):
            return
        self._applying_selection = True
        try:
            for nid, item in self.nodes.items():
                item.setSelected(nid in wanted)
            # A selection made elsewhere (the findings panel) replaces the canvas's own,
            # edges included, so that Delete never removes something out of sight.
            for item in self.edges.values():
                item.setSelected(False)
        finally:
            self._applying_selection = False

    # -- helpers for the view ------------------------------------------------------------
    def port_near(self, point: QPointF, radius: float, kind: str) -> PortItem | None:
        """The closest port of a kind within radius of a scene point."""
        best, best_d = None, radius * radius
        area = QRectF(point.x() - radius, point.y() - radius, 2 * radius, 2 * radius)
        for item in self.items(area):
            if isinstance(item, PortItem) and item.kind == kind:
                d = item.scenePos() - point
                dist = d.x() * d.x() + d.y() * d.y()
                if dist <= best_d:
                    best, best_d = item, dist
        return best

    def set_highlight(self, ids, colour: QColor | None) -> None:
        for nid in ids:
            item = self.nodes.get(nid)
            if item is not None:
                item.set_highlight(colour)

    def set_health(self, health: dict) -> None:
        """Each node's health mark from the latest run ({node id: Health}); others none."""
        for nid, item in self.nodes.items():
            item.set_health(health.get(nid))

    def restyle(self) -> None:
        """Repaint everything after a palette change."""
        style.refresh()
        for item in self.items():
            item.update()
        self.reroute()
