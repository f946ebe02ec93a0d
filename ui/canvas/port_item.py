"""A port: the dot where a connection starts (the output, at a node's bottom) or ends (an
input, along its top). Ports draw themselves and report where they are; the view turns a
drag from one port to another into a `Connect` command."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem

from ui.canvas import style

IN, OUT = "in", "out"


class PortItem(QGraphicsItem):
    Type = QGraphicsItem.UserType + 11

    def __init__(self, node_item: QGraphicsItem, kind: str, name: str):
        super().__init__(node_item)
        self.node_item = node_item
        self.kind = kind  # IN or OUT
        self.name = name  # the port name an Edge carries ("in", "in0", "out")
        self.connected = False
        self.hovered = False
        self.candidate: str | None = None  # "ok" / "refused" while a connection drag hovers it
        self.setAcceptHoverEvents(True)
        # Above the node body so that a press on the port is the port's, not a node drag.
        self.setZValue(2)
        self.setCursor(Qt.CrossCursor)
        owner = getattr(node_item, "node_id", "?")
        what = "output" if kind == OUT else f"input '{name}'"
        self.setToolTip(
            f"{what} of {owner} — drag to {'an input' if kind == OUT else 'an output'} to connect"
        )

    @property
    def node_id(self) -> str:
        return self.node_item.node_id

    def type(self) -> int:
        return self.Type

    def boundingRect(self) -> QRectF:
        r = style.PORT_HIT_RADIUS
        return QRectF(-r, -r, 2 * r, 2 * r)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        r = style.PORT_HIT_RADIUS
        path.addEllipse(QPointF(0, 0), r, r)
        return path

    def set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            self.update()

    def set_candidate(self, state: str | None) -> None:
        if state != self.candidate:
            self.candidate = state
            self.update()

    def hoverEnterEvent(self, event):
        self.hovered = True
        self.update()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event):
        self.hovered = False
        self.update()
        super().hoverLeaveEvent(event)

    def paint(self, painter, option, widget=None):
        s = style.current()
        r = style.PORT_RADIUS
        colour = s.port_fill
        if self.candidate == "ok":
            colour, r = s.accent, r + 2.5
        elif self.candidate == "refused":
            colour, r = s.error, r + 1.5
        elif self.hovered:
            colour, r = s.accent, r + 1.5
        painter.setPen(QPen(s.port_ring if self.connected else colour, 1.6))
        # A hollow port is one nothing is connected to: easy to spot a dangling input.
        painter.setBrush(
            QBrush(colour)
            if self.connected or self.candidate or self.hovered
            else QBrush(s.node_body)
        )
        painter.drawEllipse(QPointF(0, 0), r, r)
