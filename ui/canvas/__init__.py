"""The graph canvas: a node editor over the DocumentModel.

It draws the project's network and turns gestures into undoable commands; it holds no
model state of its own. Modules: `style` (colours and sizes), `port_item`, `node_item`,
`edge_item`, `scene` (mirrors the document), `clipboard` (copy/paste data) and `view`
(`GraphCanvas`, the gestures).
"""

from ui.canvas.view import LAYER_MIME, GraphCanvas

__all__ = ["LAYER_MIME", "GraphCanvas"]
