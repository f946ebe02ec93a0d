"""The per-layer options every weighted layer carries, as schemas the inspector renders:
initializer, normalization, activation and dropout."""

from __future__ import annotations

from studio.blocks import ACTIVATIONS, NORM_POSITIONS, NORMALIZATIONS
from studio.errors import shown
from studio.initializers import INITIALIZERS
from studio.schema import Param, fill_params

INITIALIZER = Param(
    "name",
    "choice",
    "default",
    "How the weights start. He/Kaiming for ReLU layers, Glorot/Xavier for sigmoid/tanh and the "
    "output, orthogonal for recurrent layers.",
    choices=tuple(INITIALIZERS),
    label="Initializer",
)
NORMALIZATION = (
    Param(
        "kind",
        "choice",
        "none",
        "Normalization after this layer.",
        choices=NORMALIZATIONS,
        label="Normalization",
    ),
    Param("groups", "int", 8, "Channel groups (group normalization only).", 1, 1024),
    Param(
        "position",
        "choice",
        "before_activation",
        "Normalize before the activation (the usual order) or after it.",
        choices=NORM_POSITIONS,
    ),
)
ACTIVATION = Param(
    "activation", "choice", "none", "Activation after this layer.", choices=ACTIVATIONS
)
DROPOUT = Param("dropout", "float", 0.0, "Dropout rate after this layer (0 = off).", 0.0, 0.95)


def _object(given, where: str, field: str) -> dict:
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise ValueError(
            f'{where}, field \'{field}\': must be an object such as {{"name": "kaiming_normal"}}, got {shown(given)}.'
            if field == "initializer"
            else f'{where}, field \'{field}\': must be an object such as {{"kind": "batch"}}, got {shown(given)}.'
        )
    return dict(given)


def fill_initializer(given: dict | None, where: str) -> dict:
    given = _object(given, where, "initializer")
    try:
        name = INITIALIZER.coerce(given.pop("name", "default"))
    except ValueError as err:
        raise ValueError(f"{where}, field 'initializer': {err}.") from None
    return {
        "name": name,
        **fill_params(INITIALIZERS[name].params, given, f"{where}, initializer '{name}'"),
    }


def fill_normalization(given: dict | None, where: str) -> dict:
    return fill_params(
        NORMALIZATION, _object(given, where, "normalization"), f"{where}, normalization"
    )
