"""Automatic layout: places nodes top to bottom by their depth from the Input.

Qt-free so the CLI can lay out generated projects and the canvas's "auto-layout" command
uses the same rule. A network deeper than the view can show at a readable size wraps into
side-by-side columns, like a newspaper, so that it can be seen whole (issue 10).
"""

from __future__ import annotations

import math

from studio.document import Network

ROW_HEIGHT = 110.0
COLUMN_WIDTH = 230.0
COLUMN_GAP = 90.0  # between wrapped columns: room for the edge that climbs to the next one


def depth_rows(network: Network) -> list[list[str]]:
    """The nodes by their depth from the Input (longest path), in document order per row."""
    depth: dict[str, int] = {}
    incoming: dict[str, list[str]] = {nid: [] for nid in network.nodes}
    for edge in network.edges:
        incoming[edge.target].append(edge.source)

    def visit(nid: str, trail: frozenset) -> int:
        if nid in depth:
            return depth[nid]
        parents = [p for p in incoming[nid] if p not in trail]
        depth[nid] = 1 + max((visit(p, trail | {nid}) for p in parents), default=-1)
        return depth[nid]

    for nid in network.nodes:
        visit(nid, frozenset())
    rows: dict[int, list[str]] = {}
    for nid in network.nodes:
        rows.setdefault(depth[nid], []).append(nid)
    return [rows[d] for d in sorted(rows)]


def _rows_per_column(rows: list[list[str]], fit_rows: int | None, aspect: float) -> int:
    """One column while it fits `fit_rows`; else the wrap whose shape is nearest `aspect`
    (width / height of the view), so that the whole network fits as large as it can."""
    count = len(rows)
    if fit_rows is None or count <= max(1, fit_rows):
        return count
    widest = max(len(r) for r in rows) * COLUMN_WIDTH

    def mismatch(columns: int) -> float:
        per = math.ceil(count / columns)
        width = columns * widest + (columns - 1) * COLUMN_GAP
        return abs(math.log(width / (per * ROW_HEIGHT) / aspect))

    best = min(range(1, count + 1), key=mismatch)
    return math.ceil(count / best)


def auto_layout(
    network: Network, fit_rows: int | None = None, aspect: float = 1.6
) -> dict[str, list[float]]:
    """Positions for every node. `fit_rows`: how many rows the view shows at a readable
    size (None: never wrap, e.g. for placing one new node beside the others)."""
    rows = depth_rows(network)
    if not rows:
        return {}
    per = _rows_per_column(rows, fit_rows, aspect)
    widest = max(len(r) for r in rows) * COLUMN_WIDTH
    positions = {}
    for index, members in enumerate(rows):
        column, row = divmod(index, per)
        centre = column * (widest + COLUMN_GAP)
        start = centre - (len(members) - 1) * COLUMN_WIDTH / 2
        for i, nid in enumerate(members):
            positions[nid] = [start + i * COLUMN_WIDTH, row * ROW_HEIGHT]
    return positions
