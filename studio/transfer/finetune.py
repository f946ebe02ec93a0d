"""The fine-tuning plan: which backbone stages train in each epoch, and at what rate.

A pretrained backbone node freezes its stages below its freeze point for the whole run.
On top of that, `training.fine_tuning` can
- train in two phases: first only the head (every stage frozen), then the stages down to
  the freeze point with every learning rate multiplied by `phase2_lr_factor`;
- unfreeze gradually: one more stage every `unfreeze_every` epochs, from the top down,
  never below the freeze point (ULMFiT's gradual unfreezing, Howard & Ruder 2018);
- use discriminative learning rates: stage i of n learns at `stage_lr_decay ** (n - i)`
  times the head's rate.

The plan is a pure function of the epoch, so a resumed run re-enters the same phase. The
optimizer is built once with every parameter that may ever train, one group per stage,
so its state (Adam's moments) survives a phase change; a frozen parameter has
`requires_grad` off and no gradient, which every torch optimizer skips. Each group keeps
the factor it is scaled by (`lr_scale`) in the optimizer's own state, so a checkpoint
carries it and a phase change rescales the schedule's numbers by the ratio only.
The plan starts from each Backbone's freeze point as the node set it (its one meaning:
stages frozen from the input on, studio/transfer/backbone.py) and moves it with
`set_freeze_point`; it never goes below the node's.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from studio.errors import TrainingError
from studio.transfer.backbone import Backbone, stages_of

# Learning-rate numbers a scheduler keeps per group (OneCycleLR computes lr from the last three).
LR_KEYS = ("lr", "initial_lr", "max_lr", "min_lr")


@dataclass
class BackboneNode:
    """One backbone node of the model, as the plan sees it at build time."""

    node: str
    module: Backbone  # block.layer
    stage_names: list[str]
    # Per stage: its parameters.
    stage_params: list[list[nn.Parameter]]
    # Stages that may train in this run, input to output: those from the node's freeze
    # point on that have weights (none when the node is not trainable).
    order: list[int]


@dataclass(frozen=True)
class Phase:
    """What trains in one epoch: per backbone the first training stage, and an lr factor."""

    number: int  # 1 or 2 with two phases, else 0
    first_training: tuple[int, ...]  # per backbone; len(stages) = none trains
    lr_factor: float


class FineTuningPlan:
    def __init__(self, model: nn.Module, settings: dict):
        self.two_phase = bool(settings["two_phase"])
        self.head_epochs = int(settings["head_epochs"])
        self.phase2_lr_factor = float(settings["phase2_lr_factor"])
        self.stage_lr_decay = float(settings["stage_lr_decay"])
        self.unfreeze_every = int(settings["unfreeze_every"])
        self.backbones = _find_backbones(model)
        staged = {id(p) for b in self.backbones for ps in b.stage_params for p in ps}
        self.head = [p for p in model.parameters() if p.requires_grad and id(p) not in staged]
        gradual = self.unfreeze_every > 0
        discriminative = self.stage_lr_decay != 1.0
        # Some stage of some backbone never trains in this run.
        frozen = any(not b.order or b.order[0] > 0 for b in self.backbones)
        has_backbone = bool(self.backbones)
        # Param groups only when the rates or the training stages change during the run:
        # otherwise the optimizer is built exactly as without a backbone.
        self.grouped = has_backbone and (self.two_phase or gradual or discriminative)
        self.active = has_backbone and (self.grouped or frozen)
        if self.grouped and not self.head and (self.two_phase or gradual):
            raise TrainingError(
                "Field 'training.fine_tuning': training starts with only the head, but no layer "
                "outside the backbone has trainable weights; add an Output layer after the "
                "backbone, or turn off two phases and gradual unfreezing."
            )
        self.optimizer = None
        self.scheduler = None
        self.current: Phase | None = None

    # -- the schedule -------------------------------------------------------------------
    def phase_at(self, epoch: int) -> Phase:
        """The phase of an epoch (0-based): a pure function, so resuming finds the same one."""
        if self.two_phase and epoch < self.head_epochs:
            return Phase(1, tuple(len(b.stage_names) for b in self.backbones), 1.0)
        number = 2 if self.two_phase else 0
        factor = self.phase2_lr_factor if self.two_phase else 1.0
        if self.unfreeze_every > 0:
            # Phase 1 already trained the head alone, so phase 2 opens with the top stage;
            # without two phases the first `unfreeze_every` epochs train the head alone.
            if self.two_phase:
                unfrozen = 1 + (epoch - self.head_epochs) // self.unfreeze_every
            else:
                unfrozen = epoch // self.unfreeze_every
        else:
            unfrozen = None
        first = []
        for b in self.backbones:
            # Never below the freeze point: at most every stage that may train.
            count = len(b.order) if unfrozen is None else min(unfrozen, len(b.order))
            first.append(b.order[-count] if count else len(b.stage_names))
        return Phase(number, tuple(first), factor)

    def stage_scale(self, backbone: BackboneNode, index: int) -> float:
        """Discriminative rate of a stage: the top stage × decay, each one below × decay more."""
        return self.stage_lr_decay ** (len(backbone.stage_names) - index)

    # -- the optimizer ------------------------------------------------------------------
    def optimizer_params(self, trainable: list[nn.Parameter]) -> list:
        """What to build the optimizer from: the plain list, or one group per stage."""
        if not self.grouped:
            return trainable
        groups = []
        if self.head:
            groups.append({"params": self.head, "stage": "head", "stage_scale": 1.0})
        for b in self.backbones:
            for i in b.order:
                groups.append(
                    {
                        "params": b.stage_params[i],
                        "stage": f"{b.node}.{b.stage_names[i]}",
                        "stage_scale": self.stage_scale(b, i),
                    }
                )
        for group in groups:
            group["lr_scale"] = 1.0  # the factor the group's numbers carry now
        return groups

    def bind(self, optimizer, scheduler=None) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler

    # -- entering an epoch --------------------------------------------------------------
    def enter(self, epoch: int) -> Phase | None:
        """Apply the epoch's phase; returns it when it should be announced (it changed)."""
        if not self.active:
            return None
        phase = self.phase_at(epoch)
        if phase == self.current:
            return None
        self._freeze(phase)
        if self.grouped:
            self._rescale(phase.lr_factor)
        self.current = phase
        return phase

    def _freeze(self, phase: Phase) -> None:
        for b, first in zip(self.backbones, phase.first_training):
            # requires_grad per stage, and BatchNorm of frozen stages kept in eval mode.
            b.module.set_freeze_point(first)
            for params in b.stage_params[:first]:
                for p in params:
                    p.grad = None  # optimizers skip parameters without a gradient

    def _rescale(self, lr_factor: float) -> None:
        """Bring each group to stage scale × phase factor, scaling the schedule's numbers too."""
        base_lrs = getattr(self.scheduler, "base_lrs", None)
        for i, group in enumerate(self.optimizer.param_groups):
            target = group["stage_scale"] * lr_factor
            ratio = target / group["lr_scale"]
            if ratio != 1.0:
                for key in LR_KEYS:
                    if key in group:
                        group[key] = group[key] * ratio
                if base_lrs is not None:
                    base_lrs[i] = base_lrs[i] * ratio
            group["lr_scale"] = target

    # -- words --------------------------------------------------------------------------
    def training_stages(self, phase: Phase) -> list[str]:
        many = len(self.backbones) > 1
        names = []
        for b, first in zip(self.backbones, phase.first_training):
            for i in b.order:
                if i >= first:
                    names.append(f"{b.node}.{b.stage_names[i]}" if many else b.stage_names[i])
        return names

    def label(self, phase: Phase, previous: Phase | None = None) -> str:
        """A plain sentence for the plots: 'Phase 2: layer3, layer4 and the head train at lr × 0.1'."""
        titles = [f"Phase {phase.number}"] if phase.number else []
        training = self.training_stages(phase)
        if previous is not None and previous.number == phase.number:
            before = set(self.training_stages(previous))
            new = [n for n in training if n not in before]
            if new:
                titles.append(f"unfroze {_join(new)}")
        title = ", ".join(titles) if titles else "Fine-tuning"
        if not training:
            text = "only the head trains" if self.head else "nothing trains"
        else:
            parts = [*_short(training), *(["the head"] if self.head else [])]
            text = f"{_join(parts)} train" if len(parts) > 1 else f"{parts[0]} trains"
        if phase.lr_factor != 1.0:
            text += f" at lr × {phase.lr_factor:g}"
        if self.stage_lr_decay != 1.0 and training:
            text += f", each earlier stage × {self.stage_lr_decay:g}"
        return f"{title[0].upper()}{title[1:]}: {text}"


def _find_backbones(model: nn.Module) -> list[BackboneNode]:
    found = []
    layers = getattr(model, "layers", None)
    for node, block in layers.items() if layers is not None else []:
        stages = stages_of(block)
        if stages is None:
            continue
        module = block.layer
        params = [list(stage.parameters()) for _, stage in stages]
        # The builder turns a node that is not trainable off whole (requires_grad).
        trains = any(p.requires_grad for ps in params for p in ps)
        start = module.freeze_point
        order = [i for i in range(start, len(stages)) if params[i]] if trains else []
        found.append(BackboneNode(node, module, [n for n, _ in stages], params, order))
    return found


def _short(names: list[str]) -> list[str]:
    """Long runs of stages (EfficientNet has nine) as one 'first–last (n stages)'."""
    if len(names) <= 4:
        return names
    return [f"{names[0]}–{names[-1]} ({len(names)} stages)"]


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
