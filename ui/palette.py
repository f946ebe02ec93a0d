"""The layer palette: every registered layer type (built-in and plugin), grouped and
searchable; drag one onto the canvas, or double-click to append it after the selection."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDrag
from PySide6.QtWidgets import QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from studio.registry import catalog
from ui.theme import icon

MIME_TYPE = "application/x-studio-layer"


class _Tree(QTreeWidget):
    def startDrag(self, actions):
        item = self.currentItem()
        type_name = item.data(0, Qt.UserRole) if item else None
        if not type_name:
            return
        mime = QMimeData()
        mime.setData(MIME_TYPE, type_name.encode())
        mime.setText(type_name)
        drag = QDrag(self)
        drag.setMimeData(mime)
        drag.exec(Qt.CopyAction)


class LayerPalette(QWidget):
    layer_requested = Signal(str)  # double-click: append this type after the selection

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search layers…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.filter)
        self.tree = _Tree()
        self.tree.setHeaderHidden(True)
        self.tree.setDragEnabled(True)
        self.tree.setIndentation(12)
        self.tree.itemDoubleClicked.connect(self._activated)
        layout.addWidget(self.search)
        layout.addWidget(self.tree)
        self.populate()

    def populate(self) -> None:
        self.tree.clear()
        cat = catalog()
        for group, types in cat.by_group().items():
            parent = QTreeWidgetItem(self.tree, [group])
            parent.setFlags(Qt.ItemIsEnabled)
            font = parent.font(0)
            font.setBold(True)
            parent.setFont(0, font)
            for layer in types:
                item = QTreeWidgetItem(parent, [layer.name])
                item.setData(0, Qt.UserRole, layer.name)
                source = cat.sources.get(layer.name, "")
                plugin = "" if source.startswith("studio:") else f"\n(plugin {source})"
                item.setToolTip(0, f"{layer.summary}{plugin}")
                item.setStatusTip(0, layer.summary)
                item.setIcon(0, icon("layer"))
            parent.setExpanded(True)

    def filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            shown = 0
            for j in range(group.childCount()):
                item = group.child(j)
                match = (
                    not needle
                    or needle in item.text(0).lower()
                    or needle in item.toolTip(0).lower()
                )
                item.setHidden(not match)
                shown += match
            group.setHidden(shown == 0)

    def _activated(self, item: QTreeWidgetItem, column: int) -> None:
        type_name = item.data(0, Qt.UserRole)
        if type_name:
            self.layer_requested.emit(type_name)
