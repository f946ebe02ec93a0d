"""Weight initializers a person can pick per layer.

Each entry wraps one `torch.nn.init` function with a parameter schema, so the inspector
can render it and a project file can name it. Biases are set to zero whenever an
initializer other than "default" is chosen, as Keras does; "default" keeps PyTorch's own
layer initialization.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from studio.errors import ShapeError
from studio.schema import Param


@dataclass(frozen=True)
class Initializer:
    name: str
    title: str
    help: str
    params: tuple[Param, ...]
    apply: Callable[[torch.Tensor, dict], None]
    # Weight ranks the initializer accepts, or None for any.
    ranks: tuple[int, ...] | None = None


_NONLINEARITIES = ("relu", "leaky_relu", "tanh", "sigmoid", "linear", "selu")
_GAIN = Param("gain", "float", 1.0, "Scale applied on top of the rule's own variance.", 0.0, 100.0)
_MODE = Param(
    "mode",
    "choice",
    "fan_in",
    "fan_in keeps the forward signal's variance; fan_out keeps the backward gradient's.",
    choices=("fan_in", "fan_out"),
)
_NONLIN = Param(
    "nonlinearity",
    "choice",
    "relu",
    "The activation that follows this layer; it sets the gain.",
    choices=_NONLINEARITIES,
)
_SLOPE = Param("a", "float", 0.0, "Negative slope, used only with leaky_relu.", 0.0, 1.0)

INITIALIZERS: dict[str, Initializer] = {}


def _add(init: Initializer) -> None:
    INITIALIZERS[init.name] = init


_add(
    Initializer(
        "default", "PyTorch default", "Keep the layer's own initialization.", (), lambda w, a: None
    )
)
_add(
    Initializer(
        "zeros",
        "Zeros",
        "All weights 0: every unit stays identical (breaks symmetry badly).",
        (),
        lambda w, a: nn.init.zeros_(w),
    )
)
_add(
    Initializer(
        "ones",
        "Ones",
        "All weights 1: every unit stays identical (breaks symmetry badly).",
        (),
        lambda w, a: nn.init.ones_(w),
    )
)
_add(
    Initializer(
        "constant",
        "Constant",
        "All weights one value.",
        (Param("value", "float", 0.01, "The value every weight gets.", -1e3, 1e3),),
        lambda w, a: nn.init.constant_(w, a["value"]),
    )
)
_add(
    Initializer(
        "eye",
        "Identity (eye)",
        "Identity matrix: passes the input through unchanged.",
        (),
        lambda w, a: nn.init.eye_(w),
        ranks=(2,),
    )
)
_add(
    Initializer(
        "dirac",
        "Dirac",
        "Identity for convolutions: each channel passes through.",
        (),
        lambda w, a: nn.init.dirac_(w),
        ranks=(3, 4, 5),
    )
)
_add(
    Initializer(
        "uniform",
        "Random uniform",
        "Weights drawn evenly from [low, high].",
        (
            Param("low", "float", -0.05, "Lower bound.", -1e3, 1e3),
            Param("high", "float", 0.05, "Upper bound.", -1e3, 1e3),
        ),
        lambda w, a: nn.init.uniform_(w, a["low"], a["high"]),
    )
)
_add(
    Initializer(
        "normal",
        "Random normal",
        "Weights drawn from a normal distribution.",
        (
            Param("mean", "float", 0.0, "Mean.", -1e3, 1e3),
            Param("std", "float", 0.05, "Standard deviation.", 0.0, 1e3),
        ),
        lambda w, a: nn.init.normal_(w, a["mean"], a["std"]),
    )
)
_add(
    Initializer(
        "truncated_normal",
        "Truncated normal",
        "Normal, redrawn when further than two standard deviations from the mean.",
        (
            Param("mean", "float", 0.0, "Mean.", -1e3, 1e3),
            # Above zero: the truncation bounds are ±2 std, which collapse at 0.
            Param("std", "float", 0.05, "Standard deviation (above 0).", 1e-8, 1e3),
        ),
        lambda w, a: nn.init.trunc_normal_(
            w, a["mean"], a["std"], a["mean"] - 2 * a["std"], a["mean"] + 2 * a["std"]
        ),
    )
)
_add(
    Initializer(
        "sparse",
        "Sparse normal",
        "Most weights zero; the rest normal (Martens 2010).",
        (
            Param("sparsity", "float", 0.9, "Fraction of each column set to zero.", 0.0, 1.0),
            Param("std", "float", 0.01, "Standard deviation of the non-zero weights.", 0.0, 1e3),
        ),
        lambda w, a: nn.init.sparse_(w, a["sparsity"], a["std"]),
        ranks=(2,),
    )
)
_add(
    Initializer(
        "xavier_uniform",
        "Xavier/Glorot uniform",
        "Keeps variance through sigmoid/tanh layers; good for the output layer.",
        (_GAIN,),
        lambda w, a: nn.init.xavier_uniform_(w, a["gain"]),
    )
)
_add(
    Initializer(
        "xavier_normal",
        "Xavier/Glorot normal",
        "Keeps variance through sigmoid/tanh layers; good for the output layer.",
        (_GAIN,),
        lambda w, a: nn.init.xavier_normal_(w, a["gain"]),
    )
)
_add(
    Initializer(
        "kaiming_uniform",
        "Kaiming/He uniform",
        "Keeps variance through ReLU layers.",
        (_MODE, _NONLIN, _SLOPE),
        lambda w, a: nn.init.kaiming_uniform_(w, a["a"], a["mode"], a["nonlinearity"]),
    )
)
_add(
    Initializer(
        "kaiming_normal",
        "Kaiming/He normal",
        "Keeps variance through ReLU layers.",
        (_MODE, _NONLIN, _SLOPE),
        lambda w, a: nn.init.kaiming_normal_(w, a["a"], a["mode"], a["nonlinearity"]),
    )
)
_add(
    Initializer(
        "orthogonal",
        "Orthogonal",
        "A (semi-)orthogonal matrix: keeps norms; the notes' choice for recurrent layers.",
        (_GAIN,),
        lambda w, a: nn.init.orthogonal_(w, a["gain"]),
    )
)


def check_initializer(name: str, args: dict, weight_ranks: list[int]) -> None:
    """Raise ShapeError if this initializer cannot fill weights of these ranks."""
    init = INITIALIZERS[name]
    if name in ("uniform",) and args["low"] >= args["high"]:
        raise ShapeError("the uniform initializer needs low < high")
    if init.ranks is None:
        return
    for rank in weight_ranks:
        if rank not in init.ranks:
            hint = (
                "use dirac for convolutions" if name == "eye" else "use eye or another initializer"
            )
            kind = "2-D (Linear/recurrent)" if init.ranks == (2,) else "convolution"
            raise ShapeError(
                f"the {init.title} initializer needs {kind} weights but this layer's weight has "
                f"{rank} dimensions; {hint}"
            )


def initialize(module: nn.Module, name: str, args: dict) -> None:
    """Fill every weight of module with the chosen initializer and zero its biases."""
    if name == "default":
        return
    init = INITIALIZERS[name]
    with torch.no_grad():
        for pname, param in module.named_parameters():
            if pname.rsplit(".", 1)[-1].startswith("weight"):
                init.apply(param, args)
            elif pname.rsplit(".", 1)[-1].startswith("bias"):
                nn.init.zeros_(param)


def weight_ranks(module: nn.Module) -> list[int]:
    return [
        p.dim() for n, p in module.named_parameters() if n.rsplit(".", 1)[-1].startswith("weight")
    ]
