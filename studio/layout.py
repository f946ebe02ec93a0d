"""Automatic layout: places nodes top to bottom by their depth from the Input.

Qt-free so the CLI can lay out generated projects and the canvas's "auto-layout" command
uses the same rule.
"""

from __future__ import annotations

from studio.document import Network

ROW_HEIGHT = 110.0
COLUMN_WIDTH = 230.0


def auto_layout(network: Network) -> dict[str, list[float]]:
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
    positions = {}
    for row, members in rows.items():
        start = -(len(members) - 1) * COLUMN_WIDTH / 2
        for i, nid in enumerate(members):
            positions[nid] = [start + i * COLUMN_WIDTH, row * ROW_HEIGHT]
    return positions
