"""Loading weight files safely: safetensors, or torch files with weights_only=True."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.errors import StudioError, clip


class WeightsError(StudioError):
    pass


def load_torch_file(path: str | Path, what: str = "Weights file") -> Any:
    """What a torch file holds (tensors, dicts, lists, numbers), read with weights_only=True.

    Every refusal is one WeightsError sentence that starts with `what` and the path: a
    pickle that would run code is refused as such (never with torch's advice to load it
    unsafely), a truncated or damaged file is called that.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # A plain pickle (not torch.save's zip) first draws torch's multi-line warning
            # about its protocol; the refusal below says all a person needs.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            # weights_only: a weights file is data; a pickle that would run code is refused.
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"{what} '{path}' does not exist.") from None
    except IsADirectoryError:
        raise WeightsError(f"{what} '{path}' is a folder, not a file.") from None
    except OSError as err:
        raise WeightsError(f"{what} '{path}' cannot be read: {err.strerror or err}.") from None
    except pickle.UnpicklingError as err:
        named = re.search(r"GLOBAL (\S+)", str(err))
        holds = f"Python objects ({clip(named.group(1))})" if named else "Python objects"
        raise WeightsError(
            f"{what} '{path}' was refused: it holds {holds}, not only tensors, and loading it "
            "could run code; save only the weights (torch.save(model.state_dict(), path)) or "
            "use .safetensors."
        ) from None
    except MemoryError:
        raise
    except Exception:
        # Torch reports a cut-off or overwritten file in many ways (RuntimeError from the
        # zip reader, EOFError, zipfile.BadZipFile, KeyError on a bad magic number…); all
        # mean the same to a person.
        raise WeightsError(
            f"{what} '{path}' is damaged or truncated (not a complete torch file); save or "
            "copy it again."
        ) from None


# Wrappers that training scripts commonly put around a state dict.
WRAPPERS = ("state_dict", "model_state_dict", "model", "net")


def read_state_dict(path: str | Path, what: str = "Weights file") -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file (unwrapped from a training script's
    checkpoint dict), refusing pickles that run code: every weights file the studio reads
    (a backbone's own, a run's, one to export) is read here. A refusal is one
    WeightsError sentence that starts with `what` and the path."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} '{path}' does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:
            raise WeightsError(
                f"{what} '{path}' is not a readable safetensors file ({err})."
            ) from None
    state = load_torch_file(path, what)
    for key in WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    tensors = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    if not tensors or not state:
        raise WeightsError(
            f"{what} '{path}' does not hold a state dict of tensors; save "
            "model.state_dict() rather than the model or a training checkpoint."
        )
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
