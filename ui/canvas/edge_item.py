"""A connection: a bezier curve from a node's output (bottom) to an input port (top) of
another, labelled at its middle with the shape of the tensor it carries.

A long edge that would run behind other nodes (a residual shortcut drawn beside a straight
column of layers) is routed around them through a side lane, so it and its label stay
visible. The edge into a node with an error is drawn in the error colour.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainterPath, QPainterPathStroker, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QStyle

from studio.document import Edge
from ui.canvas import style
from ui.canvas.port_item import IN, OUT

LANE_MARGIN = 26.0


def route(
    p0: QPointF, p1: QPointF, obstacles: list[QRectF], label_at: float = 0.5
) -> tuple[QPainterPath, QPointF]:
    """The curve from p0 (an output, flowing down) to p1 (an input) and its label point
    (`label_at` along the curve, unless the edge goes round obstacles: then beside them)."""
    path = QPainterPath(p0)
    dy = p1.y() - p0.y()
    if dy <= 0 and abs(p1.x() - p0.x()) >= style.NODE_WIDTH:
        # Up into the next column of a wrapped network: under the source, up the gap
        # between the columns, over the target, never across the nodes of either.
        lane, reach = (p0.x() + p1.x()) / 2, 24.0
        path.cubicTo(
            QPointF(p0.x(), p0.y() + reach), QPointF(lane, p0.y() + reach), QPointF(lane, p0.y())
        )
        path.lineTo(QPointF(lane, p1.y()))
        path.cubicTo(QPointF(lane, p1.y() - reach), QPointF(p1.x(), p1.y() - reach), p1)
        return path, QPointF(lane, (p0.y() + p1.y()) / 2)
    if dy <= 0:
        # Going up (a loop, or nodes placed out of order): swing out below and come in above.
        reach = max(50.0, min(160.0, -dy / 2 + 50))
        path.cubicTo(QPointF(p0.x(), p0.y() + reach), QPointF(p1.x(), p1.y() - reach), p1)
        return path, path.pointAtPercent(label_at)
    if not obstacles:
        bend = max(18.0, min(dy * 0.5, 120.0))
        path.cubicTo(QPointF(p0.x(), p0.y() + bend), QPointF(p1.x(), p1.y() - bend), p1)
        return path, path.pointAtPercent(label_at)
    # Go round what is in the way, on the side that is the shorter detour.
    top = min(r.top() for r in obstacles)
    bottom = max(r.bottom() for r in obstacles)
    left = min(r.left() for r in obstacles) - LANE_MARGIN
    right = max(r.right() for r in obstacles) + LANE_MARGIN
    mid = (p0.x() + p1.x()) / 2
    lane = right if abs(right - mid) <= abs(mid - left) else left
    top = max(top, p0.y() + 8)
    bottom = min(bottom, p1.y() - 8)
    a, b = QPointF(lane, top), QPointF(lane, max(bottom, top))
    k0 = max(10.0, (a.y() - p0.y()) * 0.6)
    path.cubicTo(QPointF(p0.x(), p0.y() + k0), QPointF(lane, a.y() - k0), a)
    path.lineTo(b)
    k1 = max(10.0, (p1.y() - b.y()) * 0.6)
    path.cubicTo(QPointF(lane, b.y() + k1), QPointF(p1.x(), p1.y() - k1), p1)
    return path, QPointF(lane, (a.y() + b.y()) / 2)


class EdgeItem(QGraphicsItem):
    Type = QGraphicsItem.UserType + 12

    def __init__(self, edge: Edge, source, target):
        super().__init__()
        self.edge = edge
        self.source = source  # NodeItem
        self.target = target  # NodeItem
        self.label = ""
        self.error = False
        self.hovered = False
        self._path = QPainterPath()
        self._label_at = QPointF()
        self._label_rect = QRectF()
        self._shape: QPainterPath | None = None
        self.setFlag(QGraphicsItem.ItemIsSelectable)
        self.setAcceptHoverEvents(True)
        self.setZValue(0)
        self._tooltip()
        self.update_geometry()

    def type(self) -> int:
        return self.Type

    def _tooltip(self) -> None:
        port = f".{self.edge.target_port}" if self.edge.target_port != "in" else ""
        carries = f"<br>carries {self.label}" if self.label else ""
        self.setToolTip(
            f"{self.edge.source} → {self.edge.target}{port}{carries}<br>click, then Delete to remove"
        )

    def set_state(self, label: str, error: bool) -> None:
        if (label, error) == (self.label, self.error):
            return
        geometry = label != self.label
        self.label, self.error = label, error
        self._tooltip()
        if geometry:
            self.update_geometry()
        else:
            self.update()

    def update_geometry(self) -> None:
        p0 = self.source.port_scene_pos(OUT)
        p1 = self.target.port_scene_pos(IN, self.edge.target_port)
        scene = self.scene()
        obstacles = (
            scene.obstacles(p0, p1, (self.source, self.target))
            if scene is not None and hasattr(scene, "obstacles")
            else []
        )
        path, at = route(p0, p1, obstacles, self._label_position())
        self.prepareGeometryChange()
        self._path = path
        self._label_at = at
        self._shape = None
        if self.label:
            metrics = QFontMetricsF(style.current().label_font)
            w = metrics.horizontalAdvance(self.label) + 10
            h = metrics.height() + 3
            self._label_rect = QRectF(at.x() - w / 2, at.y() - h / 2, w, h)
        else:
            self._label_rect = QRectF()
        self.update()

    def _label_position(self) -> float:
        """Where along the curve the label sits: where edges fan out of one port, towards
        their targets; where they fan into one node, towards their sources, so that
        sibling labels spread apart instead of piling up at the shared end."""
        fan_out = sum(1 for e in self.source.edges if e.source is self.source)
        fan_in = sum(1 for e in self.target.edges if e.target is self.target)
        if fan_out > 1 and fan_in <= 1:
            return 0.7
        if fan_in > 1 and fan_out <= 1:
            return 0.3
        return 0.5

    def path(self) -> QPainterPath:
        return self._path

    def label_rect(self) -> QRectF:
        return self._label_rect

    def boundingRect(self) -> QRectF:
        rect = self._path.boundingRect().adjusted(-4, -4, 4, 4)
        return rect.united(self._label_rect) if not self._label_rect.isNull() else rect

    def shape(self) -> QPainterPath:
        # A wide invisible stroke so that a thin curve is easy to click.
        if self._shape is None:
            stroker = QPainterPathStroker()
            stroker.setWidth(12)
            shape = stroker.createStroke(self._path)
            if not self._label_rect.isNull():
                shape.addRect(self._label_rect)
            self._shape = shape
        return self._shape

    def hoverEnterEvent(self, event):
        self.hovered = True
        self.update()

    def hoverLeaveEvent(self, event):
        self.hovered = False
        self.update()

    def paint(self, painter, option, widget=None):
        s = style.current()
        selected = bool(option.state & QStyle.State_Selected)
        colour = s.error if self.error else s.edge
        width = 1.6
        if selected:
            colour, width = s.accent, 2.6
        elif self.hovered:
            colour = QColor(colour).lighter(130) if s.dark else QColor(colour).darker(130)
            width = 2.2
        painter.setPen(QPen(colour, width, Qt.SolidLine, Qt.RoundCap))
        painter.setBrush(Qt.NoBrush)
        painter.drawPath(self._path)
        if self.label and not self._label_rect.isNull():
            lod = option.levelOfDetailFromTransform(painter.worldTransform())
            if lod < style.READABLE_ZOOM:  # too small to read: the nodes' overview says it
                return
            painter.setPen(QPen(colour, 1.0))
            painter.setBrush(s.edge_label_bg)
            painter.drawRoundedRect(self._label_rect, 4, 4)
            painter.setFont(s.label_font)
            painter.setPen(s.error if self.error else (s.accent if selected else s.edge_label_text))
            painter.drawText(self._label_rect, Qt.AlignCenter, self.label)


class DragLine(QGraphicsPathItem):
    """The temporary curve that follows the mouse while a connection is being drawn."""

    def __init__(self, anchor: QPointF, from_output: bool):
        super().__init__()
        self.anchor = anchor
        self.from_output = from_output
        self.setZValue(5)
        self.set_state(None)
        self.follow(anchor)

    def set_state(self, state: str | None) -> None:
        s = style.current()
        colour = {"ok": s.accent, "refused": s.error}.get(state, s.edge)
        pen = QPen(colour, 2.0, Qt.DashLine if state is None else Qt.SolidLine, Qt.RoundCap)
        self.setPen(pen)

    def follow(self, point: QPointF) -> None:
        p0, p1 = (self.anchor, point) if self.from_output else (point, self.anchor)
        bend = max(18.0, min(abs(p1.y() - p0.y()) * 0.5, 120.0))
        path = QPainterPath(p0)
        path.cubicTo(QPointF(p0.x(), p0.y() + bend), QPointF(p1.x(), p1.y() - bend), p1)
        self.setPath(path)
