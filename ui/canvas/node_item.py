"""A layer on the canvas: a rounded box with a group-coloured header.

What a node shows is computed by `make_face` from the document's node, its layer type and
the latest analysis, and handed to the item whole; the item keeps only that display copy
(never model state) and repaints only when the face really changed, so one edit does not
repaint sixty nodes.

Layout, top to bottom: input ports on the top edge, header (type in bold, id on the right),
the key parameters, the compact per-layer options line, and a band with the parameter
count and the output shape; the output port sits on the bottom edge. A backbone node can
be opened (▸ in its header, or a double-click) to list its stages between the options
line and the band, frozen stages greyed; which nodes are open is view state, kept by the
scene. Zoomed out past reading (style.READABLE_ZOOM), a node draws an overview face
instead: its group colour, and its type and id in text that keeps its size on screen.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyle, QStyleOptionGraphicsItem

from studio.analysis import LayerInfo
from studio.document import Node
from studio.registry import LayerType
from studio.shapes_text import describe
from studio.training.health import Health
from studio.transfer.stages import StageRow, freeze_point, stage_rows
from ui.canvas import style
from ui.canvas.port_item import IN, OUT, PortItem

HEALTH_COLOURS = {"good": "#16a34a", "weak": "#d97706", "bad": "#dc2626"}
HEALTH_STRIP = 4.0  # px: the coloured edge on the node's left side

# Initializer names, shortened for the options line (the tooltip and inspector say them whole).
_INIT_SHORT = {
    "kaiming_normal": "kaiming",
    "kaiming_uniform": "kaiming-u",
    "xavier_uniform": "xavier",
    "xavier_normal": "xavier-n",
    "truncated_normal": "trunc-normal",
}


@dataclass(frozen=True)
class NodeFace:
    """Everything a node item draws; equal faces mean nothing to repaint."""

    node_id: str
    type_name: str
    group: str
    key_line: str
    option_line: str
    shape_text: str  # "" when the analysis has no output shape
    params_text: str
    error: str | None
    frozen: bool
    ports: tuple[str, ...]
    tooltip: str
    # Backbones: their stages (frozen ones greyed), listed inside the node when expanded.
    stages: tuple[StageRow, ...] = ()
    expanded: bool = False


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def option_line(node: Node, layer: LayerType | None) -> str:
    """'kaiming · batch · relu · drop 0.1': only what differs from the defaults."""
    if layer is None:
        return ""
    parts = []
    if layer.weighted:
        name = node.initializer.get("name", "default")
        if name != "default":
            parts.append(_INIT_SHORT.get(name, name))
    if layer.block_options:
        kind = node.normalization.get("kind", "none")
        if kind != "none":
            parts.append(kind)
        if node.activation != "none":
            parts.append(node.activation)
        if node.dropout:
            parts.append(f"drop {node.dropout:g}")
    return " · ".join(parts)


def overview_lines(
    face: NodeFace, health: Health | None, width_px: float, height_px: float
) -> list[tuple[str, bool]]:
    """What a node's overview face says, as (text, bold) lines, given its size on screen
    in pixels: as many lines of style.OVERVIEW_TEXT_PX text as fit, the most telling first.
    One line: the id ("dense7" names the layer and its kind). Two: the type and the id, or,
    when something is wrong (an error, a health mark with a label: "sat 58%"), the id and
    that. Three or more: the type, the id, then what is wrong, the options, the output
    shape and the key parameters, as many as fit."""
    if height_px < style.OVERVIEW_TEXT_PX + 1 or width_px < 3 * style.OVERVIEW_TEXT_PX:
        return []
    # One line fits a node as short as its text; more need their full line height each.
    rows = max(1, int((height_px - 2) // style.OVERVIEW_LINE_PX))
    if rows == 1:
        return [(face.node_id, True)]
    if face.error:
        wrong = "error"
    elif health is not None and health.level and health.label:
        wrong = health.label
    else:
        wrong = ""
    if rows == 2 and wrong:
        return [(face.node_id, True), (wrong, False)]
    # Below the type and the id, as room allows: what is wrong, the options the person
    # sets to mend it ("normal · sigmoid": a deep sigmoid net's cause), the output shape,
    # the key parameters.
    more = [wrong, face.option_line, face.shape_text, face.key_line]
    lines = [(face.type_name, True), (face.node_id, False)]
    return lines + [(text, False) for text in more if text][: rows - 2]


def make_face(
    node: Node, layer: LayerType | None, info: LayerInfo | None, expanded: bool = False
) -> NodeFace:
    key = ""
    ports: tuple[str, ...] = ("in",)
    summary = ""
    group = "Plugins"
    if layer is not None:
        group = layer.group
        summary = layer.summary
        try:
            key = layer.key_params(node.params)
            ports = tuple(layer.ports(node.params))
        except Exception:  # a plugin's key_params must not break the canvas
            key = ""
    shape = describe(info.output_shape) if info is not None and info.output_shape else ""
    error = info.error if info is not None else None
    params = info.params if info is not None else 0
    params_text = f"{_count(params)} params" if params else ""
    frozen = not node.trainable
    stages: tuple[StageRow, ...] = ()
    freeze_text = ""
    if layer is not None and layer.backbone:
        stages = tuple(stage_rows(node, layer, info))
        point = freeze_point(node, len(stages))
        held = info.frozen if info is not None else 0
        frozen = frozen or (params > 0 and held >= params)  # the whole base: greyed
        if 0 < held < params:
            params_text = f"{_count(params)} · {_count(held)} frozen"
        names = [r.name for r in stages]
        freeze_text = (
            f"Frozen: {point} of {len(stages)} stages"
            + (f" ({', '.join(names[:point])})" if point else "")
            + (" — the whole node is frozen" if not node.trainable else "")
        )
    if frozen:
        params_text = f"frozen · {_count(params)} params" if params else "frozen"
    title = f"<b>{html.escape(node.type)}</b> &nbsp;<span style='color:gray'>{html.escape(node.id)}</span>"
    if error:
        tooltip = f"{title}<br>{html.escape(error, quote=False)}"
    else:
        lines = [title]
        if summary:
            lines.append(html.escape(summary, quote=False))
        lines.append(f"Output: <b>{shape or '?'}</b>")
        if info is not None:
            lines.append(f"Parameters: {info.params:,}" + ("" if not frozen else " (frozen)"))
        if freeze_text:
            lines.append(html.escape(freeze_text, quote=False))
            lines.append("<i>Double-click or ▸ to show the stages.</i>")
        tooltip = "<br>".join(lines)
    return NodeFace(
        node_id=node.id,
        type_name=node.type,
        group=group,
        key_line=key,
        option_line=option_line(node, layer),
        shape_text=shape,
        params_text=params_text,
        error=error,
        frozen=frozen,
        ports=ports,
        tooltip=tooltip,
        stages=stages,
        expanded=expanded and bool(stages),
    )


class NodeItem(QGraphicsItem):
    Type = QGraphicsItem.UserType + 10

    def __init__(self, face: NodeFace):
        super().__init__()
        self.node_id = face.node_id
        self.face = face
        self.edges: set = set()  # EdgeItems attached to this node, kept by the scene
        self.in_ports: dict[str, PortItem] = {}
        self.out_port = PortItem(self, OUT, "out")
        self.highlight: QColor | None = None
        # How the signal fares here in the latest training run (None: no run yet).
        self.health: Health | None = None
        # The position last taken from the document: a drag is the difference from it.
        self.synced_pos: QPointF | None = None
        self.height = 0.0
        self.setFlags(
            QGraphicsItem.ItemIsMovable
            | QGraphicsItem.ItemIsSelectable
            | QGraphicsItem.ItemSendsGeometryChanges
        )
        self.setAcceptHoverEvents(True)
        # Cached as a pixmap in device pixels: dragging or panning a big graph then only
        # blits; the cache is redrawn on zoom or when update() is called.
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.setZValue(1)
        self._apply(face, first=True)

    # -- state ---------------------------------------------------------------------------
    @property
    def error(self) -> str | None:
        return self.face.error

    def set_face(self, face: NodeFace) -> bool:
        """Show a new face; returns False (and does nothing) if it is the same."""
        if face == self.face:
            return False
        self._apply(face)
        return True

    def _apply(self, face: NodeFace, first: bool = False) -> None:
        old, old_height = self.face, self.height
        height = self._height_for(face)
        if first or height != old_height:
            self.prepareGeometryChange()
            self.height = height
        self.face = face
        self._set_tooltip()
        if first or face.ports != old.ports or height != old_height:
            self._layout_ports()
        self.update()
        for edge in self.edges:
            edge.update_geometry()

    @staticmethod
    def _height_for(face: NodeFace) -> float:
        # Several inputs (Add, Concat): a row naming them under their ports, since error
        # sentences and the inspector speak of "in0" and "in1".
        lines = bool(face.key_line) + bool(face.option_line) + (len(face.ports) > 1)
        body = style.BODY_PAD * 2 + lines * style.LINE_HEIGHT if lines else 2.0
        if face.expanded:
            body += len(face.stages) * style.STAGE_ROW_HEIGHT + style.BODY_PAD
        return style.HEADER_HEIGHT + body + style.BAND_HEIGHT

    def _layout_ports(self) -> None:
        names = self.face.ports
        for name in list(self.in_ports):
            if name not in names:
                port = self.in_ports.pop(name)
                port.setParentItem(None)
                if port.scene() is not None:
                    port.scene().removeItem(port)
        for i, name in enumerate(names):
            port = self.in_ports.get(name)
            if port is None:
                port = self.in_ports[name] = PortItem(self, IN, name)
            port.setPos(self.port_x(i, len(names)), 0)
        self.out_port.setPos(0, self.height)

    @staticmethod
    def port_x(index: int, count: int) -> float:
        spacing = style.NODE_WIDTH / (count + 1)
        return -style.NODE_WIDTH / 2 + spacing * (index + 1)

    def set_health(self, health: Health | None) -> None:
        def drawn(h):  # what the mark shows; the tooltip's finer numbers need no repaint
            return None if h is None else (h.level, h.label)

        def told(h):  # (NaN numbers never compare equal: compare the text)
            return None if h is None else h.describe()

        before, self.health = self.health, health
        if told(health) != told(before):
            self._set_tooltip()
        # Only when the mark changes: the marks follow a live run at 2 Hz, and repainting
        # every node for a tooltip's digits repainted the whole canvas each time.
        if drawn(health) != drawn(before):
            self.update()

    def _set_tooltip(self) -> None:
        tip = self.face.tooltip
        health = self.health
        if health is not None and health.level:
            lines = html.escape(health.describe(), quote=False).replace("\n", "<br>")
            tip += f"<hr><b>In the latest run</b><br>{lines}"
        self.setToolTip(tip)

    def set_highlight(self, colour: QColor | None) -> None:
        if colour != self.highlight:
            self.highlight = colour
            self.update()

    def port_scene_pos(self, kind: str, name: str = "out") -> QPointF:
        """Where an edge attaches; an edge into a port the node no longer has (an Add whose
        inputs were reduced) ends at the top right corner, drawn as an error."""
        if kind == OUT:
            return self.out_port.scenePos()
        port = self.in_ports.get(name)
        if port is not None:
            return port.scenePos()
        return self.mapToScene(QPointF(style.NODE_WIDTH / 2 - 8, 0))

    def rect(self) -> QRectF:
        return QRectF(-style.NODE_WIDTH / 2, 0, style.NODE_WIDTH, self.height)

    def toggle_rect(self) -> QRectF | None:
        """The ▸/▾ button in the header that shows a backbone's stages (None: no stages)."""
        if not self.face.stages:
            return None
        right = self.rect().right() - (16 if self.face.error else 4)
        return QRectF(right - 18, 0, 18, style.HEADER_HEIGHT)

    def mousePressEvent(self, event) -> None:
        toggle = self.toggle_rect()
        if (
            toggle is not None
            and event.button() == Qt.LeftButton
            and toggle.contains(event.pos())
            and hasattr(self.scene(), "toggle_expanded")
        ):
            # View state only: the scene remembers which nodes are open, the model not.
            self.scene().toggle_expanded(self.node_id)
            event.accept()
            return
        super().mousePressEvent(event)

    # -- QGraphicsItem -------------------------------------------------------------------
    def type(self) -> int:
        return self.Type

    def boundingRect(self) -> QRectF:
        # Room for the selection/highlight rings (the overview's, a few screen pixels out,
        # is ~14 scene units out at the least zoom), the error badge and the shadow.
        return self.rect().adjusted(-15, -15, 15, 15)

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRoundedRect(self.rect(), style.CORNER, style.CORNER)
        return path

    def itemChange(self, change, value):
        if change == QGraphicsItem.ItemPositionHasChanged:
            for edge in self.edges:
                edge.update_geometry()
        elif change == QGraphicsItem.ItemSelectedHasChanged:
            # Selected nodes float above the others while they are dragged over them.
            self.setZValue(1.5 if value else 1)
        return super().itemChange(change, value)

    def paint(self, painter, option: QStyleOptionGraphicsItem, widget=None):
        s = style.current()
        face = self.face
        rect = self.rect()
        body = QPainterPath()
        body.addRoundedRect(rect, style.CORNER, style.CORNER)
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        selected = bool(option.state & QStyle.State_Selected)

        if self.highlight is not None:
            glow = QColor(self.highlight)
            glow.setAlpha(60)
            painter.setPen(Qt.NoPen)
            painter.setBrush(glow)
            painter.drawRoundedRect(rect.adjusted(-7, -7, 7, 7), style.CORNER + 5, style.CORNER + 5)
            painter.setPen(QPen(self.highlight, 2.2))
            painter.setBrush(Qt.NoBrush)
            painter.drawRoundedRect(rect.adjusted(-5, -5, 5, 5), style.CORNER + 3, style.CORNER + 3)

        if lod < style.READABLE_ZOOM:
            self._paint_overview(painter, s, rect, lod, selected)
            return
        # A soft shadow without QGraphicsDropShadowEffect, which would re-blur on every frame.
        painter.setPen(Qt.NoPen)
        for dy, grow in ((3.0, 1.5), (1.5, 0.5)):
            painter.setBrush(s.shadow)
            painter.drawRoundedRect(
                rect.adjusted(-grow, dy - grow, grow, dy + grow),
                style.CORNER + grow,
                style.CORNER + grow,
            )

        painter.setBrush(s.node_body)
        painter.drawPath(body)

        header_rect = QRectF(rect.left(), rect.top(), rect.width(), style.HEADER_HEIGHT)
        clip = QPainterPath()
        clip.addRect(header_rect)
        header_colour = QColor(style.FROZEN_HEADER) if face.frozen else s.group_colour(face.group)
        painter.setBrush(header_colour)
        painter.drawPath(body.intersected(clip))

        band_rect = QRectF(
            rect.left(), rect.bottom() - style.BAND_HEIGHT, rect.width(), style.BAND_HEIGHT
        )
        clip = QPainterPath()
        clip.addRect(band_rect)
        painter.setBrush(s.band)
        painter.drawPath(body.intersected(clip))

        if selected:
            border = QPen(s.accent, 2.0)
        elif face.error:
            border = QPen(s.error, 2.0)
        else:
            border = QPen(s.node_border, 1.0)
        painter.setPen(border)
        painter.setBrush(Qt.NoBrush)
        painter.drawPath(body)
        if selected and face.error:
            # Selected and broken: the red outline stays visible just inside the accent.
            painter.setPen(QPen(s.error, 1.5))
            painter.drawRoundedRect(
                rect.adjusted(2.5, 2.5, -2.5, -2.5), style.CORNER - 2, style.CORNER - 2
            )

        if self.health is not None and self.health.level:
            self._paint_health_strip(painter, rect)
        self._paint_text(painter, s, rect)
        if face.error:
            self._paint_badge(painter, s, rect.topRight() + QPointF(-1, 1))

    def _paint_overview(
        self, painter, s: style.CanvasStyle, rect: QRectF, lod: float, selected: bool
    ) -> None:
        """Zoomed out past reading the full face: the node filled in its group colour with
        its type and id in text of a fixed size on screen (see `overview_lines`); so a deep
        network fitted into a small canvas still reads, as in Blender's or Unreal's editors."""
        face = self.face
        px = 1.0 / lod  # one screen pixel, in scene units
        body = QPainterPath()
        body.addRoundedRect(rect, style.CORNER, style.CORNER)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor(style.FROZEN_HEADER) if face.frozen else s.group_colour(face.group))
        painter.drawPath(body)
        strip = 0.0
        if self.health is not None and self.health.level:
            strip = min(HEALTH_STRIP * px, rect.width() / 5)  # as wide on screen as in full
            self._paint_health_strip(painter, rect, strip)
        painter.setPen(QPen(s.error, 2.5 * px) if face.error else QPen(s.node_border, 1.0 * px))
        painter.setBrush(Qt.NoBrush)
        painter.drawPath(body)
        if selected:
            # A ring just outside the node: the accent would vanish on a blue (Conv2d) fill,
            # and a broken node keeps its red outline inside it.
            ring = min(3.0 * px, 9.0)  # within boundingRect down to the least zoom
            painter.setPen(QPen(s.accent, min(2.5 * px, 9.0)))
            painter.drawRoundedRect(
                rect.adjusted(-ring, -ring, ring, ring), style.CORNER + ring, style.CORNER + ring
            )
        # From here on one unit is one screen pixel, so the text keeps its size on screen.
        painter.save()
        painter.translate(rect.topLeft())
        painter.scale(px, px)
        width, height = rect.width() * lod, rect.height() * lod
        lines = overview_lines(face, self.health, width, height)
        pad = 3.0 + strip * lod
        top = (height - len(lines) * style.OVERVIEW_LINE_PX) / 2
        painter.setPen(s.header_text)
        fonts = {}
        for bold in (True, False):
            fonts[bold] = QFont(s.title_font)
            fonts[bold].setPixelSize(style.OVERVIEW_TEXT_PX)
            fonts[bold].setBold(bold)
        badge = 6.0
        for i, (text, bold) in enumerate(lines):
            font = fonts[bold]
            painter.setFont(font)
            y = top + i * style.OVERVIEW_LINE_PX
            # Room for the error badge in the top right corner, on the line beside it.
            right = 3.0 + (2 * badge + 1 if face.error and y < 2 * badge + 1 else 0.0)
            box = QRectF(pad, y, width - pad - right, style.OVERVIEW_LINE_PX)
            shown = QFontMetricsF(font).elidedText(text, Qt.ElideMiddle, box.width())
            painter.drawText(box, Qt.AlignHCenter | Qt.AlignVCenter, shown)
        if face.error:
            # Inside the corner: the item's cached pixmap ends a few scene units outside.
            self._paint_badge(painter, s, QPointF(width - 7, 7), radius=badge)
        painter.restore()

    def _paint_text(self, painter, s: style.CanvasStyle, rect: QRectF) -> None:
        face = self.face
        pad = 9.0
        painter.setFont(s.title_font)
        painter.setPen(s.header_text if not face.frozen else QColor("#f3f4f6"))
        title_metrics = QFontMetricsF(s.title_font)
        title_w = title_metrics.horizontalAdvance(face.type_name)
        header = QRectF(rect.left() + pad, rect.top(), rect.width() - 2 * pad, style.HEADER_HEIGHT)
        painter.drawText(header, Qt.AlignLeft | Qt.AlignVCenter, face.type_name)
        # The id, right-aligned and elided so it never runs into the type.
        badge = (12 if face.error else 0) + (18 if face.stages else 0)
        room = header.width() - title_w - 10 - badge
        if room > 20:
            painter.setFont(s.small_font)
            ident = QColor(s.header_text)
            ident.setAlpha(200)
            painter.setPen(ident)
            text = QFontMetricsF(s.small_font).elidedText(face.node_id, Qt.ElideMiddle, room)
            idrect = header.adjusted(0, 0, -badge, 0)
            painter.drawText(idrect, Qt.AlignRight | Qt.AlignVCenter, text)
        if face.stages:
            self._paint_toggle(painter, s)

        y = rect.top() + style.HEADER_HEIGHT + style.BODY_PAD
        width = rect.width() - 2 * pad
        if len(face.ports) > 1:
            painter.setFont(s.label_font)
            painter.setPen(s.text_dim)
            slot = style.NODE_WIDTH / (len(face.ports) + 1)
            for i, name in enumerate(face.ports):
                x = self.port_x(i, len(face.ports))
                painter.drawText(
                    QRectF(x - slot / 2, y - 3, slot, style.LINE_HEIGHT),
                    Qt.AlignHCenter | Qt.AlignTop,
                    name,
                )
            y += style.LINE_HEIGHT
        for line, font, pen in (
            (face.key_line, s.body_font, s.text if not face.frozen else s.text_dim),
            (face.option_line, s.small_font, s.text_dim),
        ):
            if not line:
                continue
            painter.setFont(font)
            painter.setPen(pen)
            text = QFontMetricsF(font).elidedText(line, Qt.ElideRight, width)
            painter.drawText(
                QRectF(rect.left() + pad, y, width, style.LINE_HEIGHT),
                Qt.AlignLeft | Qt.AlignVCenter,
                text,
            )
            y += style.LINE_HEIGHT
        if face.expanded:
            self._paint_stages(painter, s, QRectF(rect.left() + pad - 3, y + 2, width + 6, 0))

        band = QRectF(
            rect.left() + pad, rect.bottom() - style.BAND_HEIGHT, width, style.BAND_HEIGHT
        )
        painter.setFont(s.mono_font)
        if face.error:
            painter.setPen(s.error)
            shape = "shape ?"
        elif face.shape_text:
            painter.setPen(s.text)
            shape = face.shape_text
        else:  # an upstream layer has the error; nothing to say here
            painter.setPen(s.text_dim)
            shape = "?"
        shape_w = QFontMetricsF(s.mono_font).horizontalAdvance(shape)
        painter.drawText(band, Qt.AlignRight | Qt.AlignVCenter, shape)
        left = face.params_text if not face.error else "error"
        health = self.health
        if health is not None and health.level and not face.error:
            # The health dot, and what is wrong in a few characters (else the params).
            colour = QColor(HEALTH_COLOURS[health.level])
            dot = QPointF(band.left() + 4, band.center().y())
            painter.setPen(Qt.NoPen)
            painter.setBrush(colour)
            painter.drawEllipse(dot, 3.6, 3.6)
            band = band.adjusted(11, 0, 0, 0)
            width -= 11
            if health.label:
                left = health.label
                painter.setFont(s.small_font)
                painter.setPen(colour)
                painter.drawText(band, Qt.AlignLeft | Qt.AlignVCenter, left)
                return
        if left:
            painter.setFont(s.small_font)
            painter.setPen(s.error if face.error else s.text_dim)
            text = QFontMetricsF(s.small_font).elidedText(
                left, Qt.ElideRight, max(0.0, width - shape_w - 8)
            )
            painter.drawText(band, Qt.AlignLeft | Qt.AlignVCenter, text)

    def _paint_health_strip(self, painter, rect: QRectF, width: float = HEALTH_STRIP) -> None:
        """The left edge in the health colour: seen even zoomed out, where text is not."""
        clip = QPainterPath()
        clip.addRect(QRectF(rect.left(), rect.top(), width, rect.height()))
        body = QPainterPath()
        body.addRoundedRect(rect, style.CORNER, style.CORNER)
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor(HEALTH_COLOURS[self.health.level]))
        painter.drawPath(body.intersected(clip))

    def _paint_toggle(self, painter, s: style.CanvasStyle) -> None:
        """A small triangle: pointing right when the stages are hidden, down when shown."""
        box = self.toggle_rect()
        c = box.center()
        path = QPainterPath()
        if self.face.expanded:
            path.moveTo(c.x() - 4.5, c.y() - 2.5)
            path.lineTo(c.x() + 4.5, c.y() - 2.5)
            path.lineTo(c.x(), c.y() + 3.5)
        else:
            path.moveTo(c.x() - 2.5, c.y() - 4.5)
            path.lineTo(c.x() + 3.5, c.y())
            path.lineTo(c.x() - 2.5, c.y() + 4.5)
        path.closeSubpath()
        painter.setPen(Qt.NoPen)
        painter.setBrush(s.header_text)
        painter.drawPath(path)

    def _paint_stages(self, painter, s: style.CanvasStyle, area: QRectF) -> None:
        """One row per stage, input to output: frozen stages on a grey band in dim text,
        trainable ones with a dot in the group colour; a line marks the freeze point."""
        rows = self.face.stages
        h = style.STAGE_ROW_HEIGHT
        metrics = QFontMetricsF(s.small_font)
        painter.setFont(s.small_font)
        accent = s.group_colour(self.face.group)
        for i, row in enumerate(rows):
            box = QRectF(area.left(), area.top() + i * h, area.width(), h)
            painter.setPen(Qt.NoPen)
            if row.frozen:
                painter.setBrush(s.frozen_row)
                painter.drawRect(box)
                painter.setPen(QPen(s.text_dim, 1.0))
                painter.setBrush(Qt.NoBrush)
            else:
                painter.setBrush(accent)
            painter.drawEllipse(QPointF(box.left() + 6, box.center().y()), 2.6, 2.6)
            painter.setPen(s.text_dim if row.frozen else s.text)
            count = "?" if row.params is None else _count(row.params)
            label = f"{count} · frozen" if row.frozen else count
            count_w = metrics.horizontalAdvance(label)
            text_box = box.adjusted(13, 0, -3, 0)
            painter.drawText(text_box, Qt.AlignRight | Qt.AlignVCenter, label)
            name = metrics.elidedText(row.name, Qt.ElideRight, text_box.width() - count_w - 6)
            painter.drawText(text_box, Qt.AlignLeft | Qt.AlignVCenter, name)
        point = sum(1 for r in rows if r.frozen)
        if 0 < point < len(rows):
            y = area.top() + point * h
            pen = QPen(s.accent, 1.4, Qt.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))

    def _paint_badge(
        self, painter, s: style.CanvasStyle, centre: QPointF, radius: float = 8.0
    ) -> None:
        painter.setPen(QPen(s.node_body, 1.5))
        painter.setBrush(QBrush(s.error))
        painter.drawEllipse(centre, radius, radius)
        painter.setPen(QColor("#ffffff"))
        painter.setFont(s.title_font)
        box = QRectF(centre.x() - radius, centre.y() - radius, 2 * radius, 2 * radius)
        painter.drawText(box, Qt.AlignCenter, "!")
