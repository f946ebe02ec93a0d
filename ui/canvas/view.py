"""The node editor: draws the document and turns gestures into commands.

`GraphCanvas` holds no model state. Everything it shows comes from the `DocumentModel`
(through `GraphScene`), and everything a person does — moving, connecting, deleting,
pasting, dropping a layer from the palette — becomes a command pushed with `model.push`,
so it is undoable and every other view sees it through the same events.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QLineF, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QKeySequence, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGraphicsView, QMenu, QMessageBox

from studio.commands import AddNode, Composite, Connect, Disconnect, MoveNodes, RemoveNodes
from studio.document import Edge, parse_node
from studio.errors import ProjectError
from studio.layout import COLUMN_WIDTH, ROW_HEIGHT
from studio.layout import auto_layout as layout_positions
from studio.registry import catalog
from studio.transfer.edits import backbone_template, plain_chain
from ui.canvas import clipboard, style
from ui.canvas.edge_item import DragLine, EdgeItem
from ui.canvas.node_item import NodeItem
from ui.canvas.port_item import IN, OUT, PortItem
from ui.canvas.scene import GraphScene
from ui.canvas.style import OVERVIEW_ZOOM, READABLE_ZOOM

LAYER_MIME = "application/x-studio-layer"

# Keys the canvas handles itself while it has focus, even if the window binds them too.
_OWN_KEYS = (
    QKeySequence.StandardKey.Copy,
    QKeySequence.StandardKey.Paste,
    QKeySequence.StandardKey.SelectAll,
    QKeySequence.StandardKey.Delete,
)


class GraphCanvas(QGraphicsView):
    """A view of the model's network; see the module docstring."""

    layer_activated = Signal(str)  # a node was double-clicked: its id
    status_message = Signal(str)  # a short sentence for the status bar

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self._scene = GraphScene(model, self)
        self.setScene(self._scene)
        self.setRenderHints(
            QPainter.Antialiasing | QPainter.TextAntialiasing | QPainter.SmoothPixmapTransform
        )
        self.setDragMode(QGraphicsView.RubberBandDrag)
        self.setRubberBandSelectionMode(Qt.IntersectsItemShape)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.NoFrame)
        self.setAcceptDrops(True)
        self.setFocusPolicy(Qt.StrongFocus)
        self._connecting: dict | None = None
        self._panning: QPointF | None = None
        self._space = False
        self._clipboard: dict | None = None  # used when the system clipboard is unavailable
        self._paste_count = 0
        self._fit_pending = True
        self._fitted_view: tuple[float, float, float] | None = None  # see fit_to_view
        # While a rubber band is dragged: the edges selected before it (Ctrl adds to them).
        self._band_edges: set[Edge] | None = None
        self.rubberBandChanged.connect(self._on_band)
        self._scene.selectionChanged.connect(self._band_selects_layers)
        model.project_replaced.connect(self._on_project_replaced)

    # -- public API ------------------------------------------------------------------------
    @property
    def graph_scene(self) -> GraphScene:
        return self._scene

    def node_item(self, node_id: str) -> NodeItem | None:
        return self._scene.nodes.get(node_id)

    def edge_item(self, edge: Edge) -> EdgeItem | None:
        return self._scene.edges.get(edge)

    def fit_to_view(self) -> None:
        """Show the whole network, no larger than 100 % (a small net stays readable);
        below READABLE_ZOOM the nodes show their overview face (style.OVERVIEW_ZOOM).
        Until the person zooms or pans, a resize of the canvas fits it again."""
        if not self._refit():
            self.status_message.emit(
                "The network does not fit the canvas at a readable size: its top is shown. "
                "Scroll (middle button, or Space and drag) to see the rest, or Auto Layout "
                "(Ctrl+L) to wrap it into columns."
            )

    def _refit(self) -> bool:
        """Fit and remember the view the fit left; False: only part of the network shows."""
        self._fit_pending = False
        whole = self._fit()
        self._fitted_view = self._view_state()
        return whole

    def _view_state(self) -> tuple[float, float, float]:
        centre = self.mapToScene(self.viewport().rect().center())
        return (self.transform().m11(), centre.x(), centre.y())

    def _fit(self) -> bool:
        rect = QRectF()
        for item in self._scene.nodes.values():
            rect = rect.united(item.sceneBoundingRect())
        if rect.isNull():
            self.resetTransform()
            self.centerOn(0, 0)
            return True
        rect.adjust(-40, -40, 40, 40)
        self.fitInView(rect, Qt.KeepAspectRatio)
        zoom = self.transform().m11()
        if zoom >= OVERVIEW_ZOOM:
            if zoom > 1.0:
                self._set_zoom(1.0)
            self.centerOn(rect.center())
            return True
        # Too big even for the overview faces to be read: show the top left (the Input) at
        # the least readable zoom and let the person scroll; Auto Layout wraps it to fit.
        self._set_zoom(OVERVIEW_ZOOM)
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        x = (
            rect.center().x()
            if rect.width() <= visible.width()
            else rect.left() + visible.width() / 2
        )
        self.centerOn(x, rect.top() + visible.height() / 2)
        return False

    def _on_band(self, rect, start, end) -> None:
        if rect.isNull():  # released
            self._band_edges = None
        elif self._band_edges is None:
            self._band_edges = set(self._scene.selected_edges())

    def _band_selects_layers(self) -> None:
        """A rubber band selects layers, and an edge only with both its layers: a long edge
        that merely crosses the band (one climbing to the next column of a wrapped network)
        stays unselected, so Delete does not cut a connection nobody chose."""
        if self._band_edges is None:
            return
        nodes = self._scene.nodes
        for edge, item in self._scene.edges.items():
            if not item.isSelected() or edge in self._band_edges:
                continue
            ends = nodes.get(edge.source), nodes.get(edge.target)
            if not all(end is not None and end.isSelected() for end in ends):
                item.setSelected(False)

    def auto_layout(self) -> None:
        """Lay the network out top to bottom (one undo step) and show it whole."""
        # Wrap a deep network into columns when one column would not fit at a readable size.
        port = self.viewport().rect()
        fit_rows = max(1, int(port.height() / READABLE_ZOOM / ROW_HEIGHT))
        aspect = port.width() / max(1, port.height())
        positions = layout_positions(self.model.project.network, fit_rows, aspect)
        current = self.model.project.view.positions
        new = {nid: p for nid, p in positions.items() if list(current.get(nid, [None, None])) != p}
        if not new:
            self.status_message.emit("The layout is already tidy.")
            return
        old = {nid: list(current.get(nid, positions[nid])) for nid in new}
        self.model.push(Composite("Auto-layout", [MoveNodes(self.model.project, new, old)]))
        self.fit_to_view()

    def select_nodes(self, ids) -> None:
        self.model.select(list(ids))

    def highlight_nodes(self, ids, color=style.DEFAULT_HIGHLIGHT) -> None:
        """Mark layers (e.g. those a finding is about) with a coloured glow."""
        self._scene.set_highlight(list(ids), QColor(color))

    def clear_highlight(self) -> None:
        self._scene.set_highlight(list(self._scene.nodes), None)

    def set_health(self, health: dict) -> None:
        """Health marks from the latest run: {node id: studio.training.health.Health}."""
        self._scene.set_health(health)

    def center_on(self, node_id: str) -> None:
        item = self._scene.nodes.get(node_id)
        if item is not None:
            self.centerOn(item.mapToScene(item.rect().center()))

    def add_layer(
        self, type_name: str, scene_pos: QPointF | None = None, after: str | None = None
    ) -> str | None:
        """Add a layer of a type; returns its id.

        With `after`, the new layer goes below that node and is fed by it (the palette's
        double-click); with `scene_pos` it goes there (a drop); otherwise near the middle of
        what is in view.
        """
        cat = catalog()
        layer = cat.get(type_name)
        if layer is None:
            self.status_message.emit(f"There is no layer type '{type_name}'.")
            return None
        project = self.model.project
        network = project.network
        if layer.backbone:
            started = self._start_from_backbone(type_name)
            if started is not None:
                return started
        node_id = network.new_id(type_name)
        node = parse_node({"id": node_id, "type": type_name}, cat, node_id)
        edges: list[Edge] = []
        if after is not None and after in self._scene.nodes:
            above = self._scene.nodes[after]
            gap = max(style.APPEND_GAP, above.height + 36)
            position = self._free_spot(above.pos().x(), above.pos().y() + gap)
            ports = layer.ports(node.params)
            if ports:
                edges.append(Edge(after, node_id, ports[0]))
        elif scene_pos is not None:
            position = [float(scene_pos.x()), float(scene_pos.y())]
        else:
            centre = self.mapToScene(self.viewport().rect().center())
            position = self._free_spot(centre.x(), centre.y() - 40)
        self.model.push(AddNode(project, node, position, edges))
        self.model.select([node_id])
        self.status_message.emit(
            f"Added {type_name} '{node_id}'" + (f" after '{after}'." if edges else ".")
        )
        return node_id

    def _start_from_backbone(self, type_name: str) -> str | None:
        """A backbone added to a plain Input → … → Output project becomes the template
        Input → backbone → Output in one undo step (asking first if layers would go);
        returns the backbone's id, or None to add the node on its own."""
        chain = plain_chain(self.model.project.network)
        if chain is None:
            return None
        if chain.middle and not self.confirm_template(type_name, chain.middle):
            return None
        made = backbone_template(self.model.project, type_name)
        if made is None:
            return None
        command, node_id = made
        self.model.push(command)
        self.model.select([node_id])
        self.fit_to_view()
        self.status_message.emit(f"{command.text}: Input → {node_id} → head. Undo to go back.")
        return node_id

    def confirm_template(self, type_name: str, replaced: list[str]) -> bool:
        """Ask before the template replaces the layers between Input and Output."""
        more = f" and {len(replaced) - 4} more" if len(replaced) > 4 else ""
        names = ", ".join(replaced[:4]) + more
        answer = QMessageBox.question(
            self,
            f"Start from {type_name}?",
            f"Replace the layers between the Input and the Output ({names}) with {type_name}, "
            "and size the Input for its pretrained weights?\n\nNo adds the backbone on its own.",
        )
        return answer == QMessageBox.Yes

    def copy_selection(self) -> None:
        ids = self._scene.selected_node_ids()
        if not ids:
            self.status_message.emit("Select layers to copy.")
            return
        data = clipboard.snapshot(self.model.project, ids)
        self._clipboard = data
        self._paste_count = 0
        QGuiApplication.clipboard().setMimeData(clipboard.to_mime(data))
        self.status_message.emit(f"Copied {len(ids)} layer(s).")

    def paste(self) -> None:
        data = clipboard.from_clipboard() or self._clipboard
        if not data or not data.get("nodes"):
            self.status_message.emit("Nothing to paste: copy layers first.")
            return
        self._paste_count += 1
        try:
            command, ids = clipboard.paste_command(
                self.model.project, data, style.PASTE_OFFSET * self._paste_count
            )
        except ProjectError as err:
            self.status_message.emit(f"Cannot paste: {err}")
            return
        self.model.push(command)
        self.model.select(ids)
        self.status_message.emit(f"Pasted {len(ids)} layer(s).")

    def delete_selection(self) -> None:
        """Delete the selected layers (with their connections) and selected connections."""
        ids = self._scene.selected_node_ids()
        gone = set(ids)
        edges = [
            e for e in self._scene.selected_edges() if e.source not in gone and e.target not in gone
        ]
        project = self.model.project
        parts = []
        if edges:
            parts.append(Disconnect(project, edges))
        if ids:
            parts.append(RemoveNodes(project, ids))
        if not parts:
            self.status_message.emit("Nothing selected to delete.")
            return
        command = (
            parts[0]
            if len(parts) == 1
            else Composite(f"Delete {len(ids)} layer(s) and {len(edges)} connection(s)", parts)
        )
        self.model.push(command)

    def select_all(self) -> None:
        self.model.select(list(self.model.project.network.nodes))

    # -- following the model -----------------------------------------------------------------
    def _on_project_replaced(self) -> None:
        self._cancel_connection()
        self._paste_count = 0
        if self.isVisible() and self.viewport().width() > 1:
            self.fit_to_view()
        else:
            self._fit_pending = True

    def showEvent(self, event):
        super().showEvent(event)
        if self._fit_pending:
            self.fit_to_view()

    def resizeEvent(self, event):
        # The window sizes its docks after the first show, and a person resizes it: a view
        # still as the last fit left it (the resize keeps its centre) is fitted again, so a
        # network shown whole stays whole; one the person zoomed or panned is left alone.
        super().resizeEvent(event)
        fitted = self._fitted_view
        if fitted is not None and not self._fit_pending:
            zoom, x, y = self._view_state()
            if zoom == fitted[0] and abs(x - fitted[1]) < 2 and abs(y - fitted[2]) < 2:
                self._refit()  # quietly: a drag of the window's edge says nothing

    def changeEvent(self, event):
        if event.type() in (
            QEvent.PaletteChange,
            QEvent.ApplicationPaletteChange,
            QEvent.StyleChange,
        ):
            self._scene.restyle()
            self.viewport().update()
        super().changeEvent(event)

    # -- drawing -----------------------------------------------------------------------------
    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:
        s = style.current()
        painter.fillRect(rect, s.background)
        zoom = self.transform().m11()
        for step, colour in ((style.GRID_MINOR, s.grid_minor), (style.GRID_MAJOR, s.grid_major)):
            if step * zoom < 12:  # too dense to mean anything at this zoom
                continue
            pen = QPen(colour, 1.0)
            pen.setCosmetic(True)
            painter.setPen(pen)
            left = math.floor(rect.left() / step) * step
            top = math.floor(rect.top() / step) * step
            lines = []
            x = left
            while x < rect.right():
                lines.append(QLineF(x, rect.top(), x, rect.bottom()))
                x += step
            y = top
            while y < rect.bottom():
                lines.append(QLineF(rect.left(), y, rect.right(), y))
                y += step
            painter.drawLines(lines)

    # -- zoom and pan ------------------------------------------------------------------------
    def _set_zoom(self, zoom: float) -> None:
        factor = zoom / self.transform().m11()
        self.scale(factor, factor)

    def zoom_by(self, factor: float, anchor: QPoint | None = None) -> None:
        """Zoom, keeping the scene point under `anchor` (viewport pixels) where it is."""
        zoom = self.transform().m11()
        target = min(style.ZOOM_MAX, max(style.ZOOM_MIN, zoom * factor))
        if math.isclose(target, zoom):
            return
        if anchor is None:
            anchor = self.viewport().rect().center()
        # Done by hand rather than with AnchorUnderMouse, which follows the last mouse-move
        # event and so drifts with touchpads and synthetic (test) events.
        previous = self.transformationAnchor()
        self.setTransformationAnchor(QGraphicsView.NoAnchor)
        before = self.mapToScene(anchor)
        self.scale(target / zoom, target / zoom)
        after = self.mapToScene(anchor)
        centre = self.mapToScene(self.viewport().rect().center())
        self.centerOn(centre - (after - before))
        self.setTransformationAnchor(previous)

    def wheelEvent(self, event):
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if delta:
            self.zoom_by(1.0015**delta, event.position().toPoint())
        event.accept()

    def _start_pan(self, event) -> None:
        self._panning = event.position()
        self.viewport().setCursor(Qt.ClosedHandCursor)

    # -- mouse -------------------------------------------------------------------------------
    @staticmethod
    def _shift_as_ctrl(event: QMouseEvent) -> QMouseEvent:
        """Shift-click adds to the selection like Ctrl-click (Qt only knows Ctrl)."""
        if not event.modifiers() & Qt.ShiftModifier:
            return event
        return QMouseEvent(
            event.type(),
            event.position(),
            event.globalPosition(),
            event.button(),
            event.buttons(),
            (event.modifiers() & ~Qt.ShiftModifier) | Qt.ControlModifier,
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton and self._space):
            self._start_pan(event)
            event.accept()
            return
        if event.button() == Qt.LeftButton:
            item = self.itemAt(event.position().toPoint())
            if isinstance(item, PortItem):
                self._start_connection(item)
                event.accept()
                return
        super().mousePressEvent(self._shift_as_ctrl(event))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None:
            delta = event.position() - self._panning
            self._panning = event.position()
            self.horizontalScrollBar().setValue(
                self.horizontalScrollBar().value() - round(delta.x())
            )
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - round(delta.y()))
            event.accept()
            return
        if self._connecting is not None:
            self._follow_connection(self.mapToScene(event.position().toPoint()))
            event.accept()
            return
        super().mouseMoveEvent(self._shift_as_ctrl(event))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None and event.button() in (Qt.MiddleButton, Qt.LeftButton):
            self._panning = None
            self.viewport().setCursor(Qt.OpenHandCursor if self._space else Qt.ArrowCursor)
            event.accept()
            return
        if self._connecting is not None and event.button() == Qt.LeftButton:
            self._finish_connection()
            event.accept()
            return
        super().mouseReleaseEvent(self._shift_as_ctrl(event))
        if event.button() == Qt.LeftButton:
            self._commit_moves()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        item = self.itemAt(event.position().toPoint())
        if isinstance(item, PortItem):
            item = item.node_item
        if isinstance(item, NodeItem):
            if item.face.stages:  # a backbone opens to show its stages
                self._scene.toggle_expanded(item.node_id)
            self.layer_activated.emit(item.node_id)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event) -> None:
        item = self.itemAt(event.pos())
        if isinstance(item, PortItem):
            item = item.node_item
        if isinstance(item, (NodeItem, EdgeItem)) and not item.isSelected():
            self._scene.clearSelection()
            item.setSelected(True)
        menu = QMenu(self)
        has_nodes = bool(self._scene.selected_node_ids())
        menu.addAction("Copy", self.copy_selection).setEnabled(has_nodes)
        menu.addAction("Paste", self.paste)
        menu.addAction("Delete", self.delete_selection).setEnabled(
            has_nodes or bool(self._scene.selected_edges())
        )
        menu.addSeparator()
        menu.addAction("Auto-layout", self.auto_layout)
        menu.addAction("Fit to view", self.fit_to_view)
        menu.exec(event.globalPos())

    def _commit_moves(self) -> None:
        """After a drag: one command with the old and new positions of the moved nodes."""
        new, old = {}, {}
        for nid, item in self._scene.nodes.items():
            before = item.synced_pos
            if before is None:
                continue
            pos = item.pos()
            if abs(pos.x() - before.x()) > 0.01 or abs(pos.y() - before.y()) > 0.01:
                new[nid] = [round(pos.x(), 1), round(pos.y(), 1)]
                old[nid] = [before.x(), before.y()]
        if new:
            move = MoveNodes(self.model.project, new, old)
            # Wrapped so that it does not merge with the previous drag of the same nodes
            # (MoveNodes merges by node ids): one undo step per drag.
            self.model.push(Composite(move.text, [move]))

    # -- drawing a connection ----------------------------------------------------------------
    def _start_connection(self, port: PortItem) -> None:
        line = DragLine(port.scenePos(), from_output=port.kind == OUT)
        self._scene.addItem(line)
        self._connecting = {"port": port, "line": line, "target": None, "reason": ""}
        self.viewport().setCursor(Qt.CrossCursor)

    def _check(self, start: PortItem, other: PortItem) -> tuple[Edge | None, str]:
        out_port, in_port = (start, other) if start.kind == OUT else (other, start)
        source, target = out_port.node_id, in_port.node_id
        if source == target:
            return None, "A layer cannot feed its own input."
        edge = Edge(source, target, in_port.name)
        if edge in self.model.project.network.edges:
            return None, f"{source} is already connected to {target}.{in_port.name}."
        return edge, ""

    def _follow_connection(self, point: QPointF) -> None:
        state = self._connecting
        start: PortItem = state["port"]
        radius = max(style.PORT_SNAP, 14 / max(self.transform().m11(), 1e-3))
        target = self._scene.port_near(point, radius, IN if start.kind == OUT else OUT)
        if state["target"] is not None and state["target"] is not target:
            state["target"].set_candidate(None)
        state["target"] = target
        line: DragLine = state["line"]
        if target is None:
            state["reason"] = ""
            line.set_state(None)
            line.follow(point)
            return
        edge, reason = self._check(start, target)
        state["reason"] = reason
        target.set_candidate("ok" if edge else "refused")
        line.set_state("ok" if edge else "refused")
        line.follow(target.scenePos())

    def _finish_connection(self) -> None:
        state = self._connecting
        target: PortItem | None = state["target"]
        start: PortItem = state["port"]
        self._cancel_connection()
        if target is None:
            return  # dropped on nothing: cancelled
        edge, reason = self._check(start, target)
        if edge is None:
            self.status_message.emit(reason)
            return
        command = Connect(self.model.project, edge)
        replaced = ", ".join(e.source for e in command.replaced)
        self.model.push(command)
        port = f".{edge.target_port}" if edge.target_port != "in" else ""
        self.status_message.emit(
            f"Connected {edge.source} → {edge.target}{port}"
            + (f" (instead of {replaced})." if replaced else ".")
        )

    def _cancel_connection(self) -> None:
        state = self._connecting
        if state is None:
            return
        self._connecting = None
        if state["target"] is not None:
            state["target"].set_candidate(None)
        line = state["line"]
        if line.scene() is not None:
            line.scene().removeItem(line)
        self.viewport().setCursor(Qt.ArrowCursor)

    # -- keyboard ----------------------------------------------------------------------------
    def event(self, event):
        # Claim our shortcuts while focused, so that a window-wide action bound to the same
        # keys (Edit > Copy for a text field) does not take them from the canvas.
        if event.type() == QEvent.ShortcutOverride and self._is_own_key(event):
            event.accept()
            return True
        return super().event(event)

    def _is_own_key(self, event) -> bool:
        if any(event.matches(k) for k in _OWN_KEYS):
            return True
        keys = [Qt.Key_Backspace, Qt.Key_Delete, Qt.Key_F]
        if self._connecting is not None:
            keys.append(Qt.Key_Escape)
        return event.key() in keys and not (
            event.modifiers() & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier)
        )

    def keyPressEvent(self, event) -> None:
        key = event.key()
        plain = not event.modifiers() & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier)
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
        elif event.matches(QKeySequence.StandardKey.Paste):
            self.paste()
        elif event.matches(QKeySequence.StandardKey.SelectAll):
            self.select_all()
        elif key in (Qt.Key_Delete, Qt.Key_Backspace) and plain:
            self.delete_selection()
        elif key == Qt.Key_F and plain:
            self.fit_to_view()
        elif key == Qt.Key_Escape and self._connecting is not None:
            self._cancel_connection()
        elif key == Qt.Key_Space and plain:
            if not event.isAutoRepeat():
                self._space = True
                self.setDragMode(QGraphicsView.NoDrag)
                self.viewport().setCursor(Qt.OpenHandCursor)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.setDragMode(QGraphicsView.RubberBandDrag)
            self.viewport().setCursor(Qt.ArrowCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:
        if self._space:  # the space release went elsewhere
            self._space = False
            self.setDragMode(QGraphicsView.RubberBandDrag)
            self.viewport().setCursor(Qt.ArrowCursor)
        super().focusOutEvent(event)

    # -- drops from the palette --------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasFormat(LAYER_MIME):
            event.acceptProposedAction()
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event) -> None:
        if event.mimeData().hasFormat(LAYER_MIME):
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        if not mime.hasFormat(LAYER_MIME):
            super().dropEvent(event)
            return
        type_name = bytes(mime.data(LAYER_MIME)).decode("utf-8").strip()
        point = self.mapToScene(event.position().toPoint())
        if self.add_layer(type_name, point) is not None:
            event.acceptProposedAction()
            self.setFocus()
        else:
            event.ignore()

    # -- placement ---------------------------------------------------------------------------
    def _free_spot(self, x: float, y: float) -> list[float]:
        """(x, y), or the nearest column to the side where no node stands."""
        for step in (0, 1, -1, 2, -2, 3, -3, 4, -4):
            cx = x + step * COLUMN_WIDTH
            probe = QRectF(cx - style.NODE_WIDTH / 2 - 8, y - 8, style.NODE_WIDTH + 16, 96)
            if not any(
                item.mapRectToScene(item.rect()).intersects(probe)
                for item in self._scene.nodes.values()
            ):
                return [float(cx), float(y)]
        return [float(x), float(y)]
