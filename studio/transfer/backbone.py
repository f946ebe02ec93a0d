"""The module a backbone node builds: a feature extractor split into stages, and its
freeze point.

The freeze point has one meaning throughout the studio: how many stages, from the input
on, are frozen. 0 trains every stage; the number of stages freezes the whole base
(feature extraction). A node's `freeze_point` parameter sets it when the model is built;
a fine-tuning plan (studio/transfer/finetune.py) may raise it for a while (two phases,
gradual unfreezing) and lower it back, never below the node's.
"""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """A feature extractor split into stages, the first `freeze_point` of them frozen.

    Frozen stages get requires_grad=False; their BatchNorm layers also stay in eval mode
    under model.train() unless update_frozen_bn, so a frozen stage keeps the statistics it
    was pretrained with (a small fine-tuning set would otherwise drag them off).
    """

    def __init__(
        self,
        net: nn.Module,
        stages: list[tuple[str, list[str]]],
        freeze_point: int = 0,
        update_frozen_bn: bool = False,
        stage_activations: list[str] | None = None,
    ):
        super().__init__()
        self.net = net
        self.stage_names: list[str] = [name for name, _ in stages]
        # Per stage, the activation its output comes out of ("relu", or "" for none known).
        self.stage_activations = stage_activations or [""] * len(stages)
        # Paths only: registering the stage modules again would list them twice.
        self._stage_paths: list[list[str]] = [list(paths) for _, paths in stages]
        self.update_frozen_bn = update_frozen_bn
        self.weights_report = ""
        self.freeze_point = 0
        self.set_freeze_point(freeze_point)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def stage_modules(self) -> list[nn.Module]:
        """One module per stage (a ModuleList when the stage has several parts)."""
        out = []
        for paths in self._stage_paths:
            parts = [self.net.get_submodule(p) for p in paths]
            out.append(parts[0] if len(parts) == 1 else nn.ModuleList(parts))
        return out

    def set_freeze_point(self, k: int) -> None:
        """Freeze stages[:k]; stages from k on train."""
        if not 0 <= k <= len(self.stage_names):
            raise ValueError(f"freeze point {k} is outside 0..{len(self.stage_names)}")
        self.freeze_point = k
        for i, stage in enumerate(self.stage_modules()):
            stage.requires_grad_(i >= k)
        self.train(self.training)  # BatchNorm modes follow the new freeze point

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if mode and not self.update_frozen_bn:
            for stage in self.stage_modules()[: self.freeze_point]:
                for module in stage.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()
        return self


def stages_of(block: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """A built backbone block's stages as (name, module), input to output; None for other
    blocks (what a plan or a monitor asks of a model; a layer type says it is a backbone
    with LayerType.backbone)."""
    layer = getattr(block, "layer", block)
    if not isinstance(layer, Backbone):
        return None
    return list(zip(layer.stage_names, layer.stage_modules()))
