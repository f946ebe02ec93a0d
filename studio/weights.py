"""Loading weight files safely: safetensors, or torch files with weights_only=True."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from studio.errors import StudioError


class WeightsError(StudioError):
    pass


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Weights file '{path}' does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:
            raise WeightsError(
                f"Weights file '{path}' is not a readable safetensors file: {err}"
            ) from None
    try:
        # weights_only refuses pickles that would run code on load.
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"Weights file '{path}' was refused or is unreadable: {first}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"Weights file '{path}' does not hold a state dict of tensors.")
    return state


def fits(model: nn.Module, path: str | Path) -> bool:
    """Whether a safetensors file holds exactly the model's tensors, by name and shape.

    Reads only the file's header (no tensor data), so checking every saved run is cheap.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception:  # not there, truncated, not safetensors: it does not fit
        return False
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return shapes == own


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a weights file into model; mismatched names or shapes are reported, not ignored."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} of another shape (e.g. {k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
            )
        raise WeightsError(f"Weights file '{path}' does not fit this network: {'; '.join(parts)}.")
    model.load_state_dict(state)
