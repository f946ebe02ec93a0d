"""A backbone node's stages as the views show them: each stage's parameter count, and
which stages its freeze point holds still.

The counts come from the shape analysis (`LayerInfo.stages`); while the node has an
error only the stage names are known.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.analysis import LayerInfo
from studio.document import Node
from studio.registry import LayerType


@dataclass(frozen=True)
class StageRow:
    name: str
    params: int | None  # None: unknown while the node has an error
    frozen: bool


def stage_rows(node: Node, layer: LayerType, info: LayerInfo | None) -> list[StageRow]:
    """One row per stage, input to output."""
    analysed = getattr(info, "stages", None) if info is not None else None
    if analysed is not None:
        return [StageRow(name, int(count), bool(frozen)) for name, count, frozen in analysed]
    try:
        names = list(layer.stages(node.params))
    except Exception:  # a RunBackbone whose run is gone: the analysis names the problem
        names = []
    point = freeze_point(node, len(names))
    return [StageRow(name, None, not node.trainable or i < point) for i, name in enumerate(names)]


def freeze_point(node: Node, n_stages: int) -> int:
    """The node's freeze point (studio/transfer/backbone.py), within its stages."""
    return max(0, min(int(node.params.get("freeze_point", 0)), n_stages))


def split_counts(rows: list[StageRow], total: int, point: int, trainable: bool = True):
    """(trainable, frozen) parameters of a backbone node if its freeze point were `point`:
    the stages below it are frozen, everything else trains."""
    if not trainable:
        return 0, total
    frozen = sum(r.params or 0 for r in rows[:point])
    return max(0, total - frozen), frozen
