"""Pretrained weights for backbones: ImageNet from torch hub's cache, a local file, a run.

Files are read safely (safetensors, or torch.load with weights_only=True, which refuses a
pickle that would run code). Keys that do not fit are reported in a sentence, never
silently ignored: the replaced classifier's keys are expected to drop; anything else
missing, unexpected or of another shape goes into the report, and if nothing fits at all
the build stops with an error naming the node and the file.

Layer types only receive (params, input shapes), so what they also need while building
(the project folder for relative paths, which node is being built, whether to load at
all) travels in context variables that build_model sets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import torch
from torch import nn

from studio.download import download
from studio.weights import WeightsError, read_state_dict

_folder: ContextVar[Path | None] = ContextVar("studio_project_folder", default=None)
_node: ContextVar[str] = ContextVar("studio_building_node", default="")
_load: ContextVar[bool] = ContextVar("studio_load_weights", default=True)


class PretrainedError(WeightsError):
    """Weights that cannot be found, read or fitted to a backbone."""


# -- build context ---------------------------------------------------------------------


@contextmanager
def project_folder(base: str | Path | None) -> Iterator[None]:
    """Resolve relative weight and run paths against `base` (the project file's folder)."""
    token = _folder.set(Path(base) if base is not None else None)
    try:
        yield
    finally:
        _folder.reset(token)


def folder() -> Path:
    return _folder.get() or Path.cwd()


def resolve(path: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else folder() / path


@contextmanager
def building(node_id: str, type_name: str) -> Iterator[None]:
    """Name the node being built, for error messages and reports."""
    token = _node.set(f"Node '{node_id}' ({type_name})")
    try:
        yield
    finally:
        _node.reset(token)


def who(fallback: str) -> str:
    return _node.get() or fallback


@contextmanager
def without_weights() -> Iterator[None]:
    """Build backbones with random weights (a run's own checkpoint replaces them anyway)."""
    token = _load.set(False)
    try:
        yield
    finally:
        _load.reset(token)


def loading_enabled() -> bool:
    return _load.get()


# -- reading files ----------------------------------------------------------------------


_download_progress: ContextVar = ContextVar("download_progress", default=None)


@contextmanager
def reporting_downloads(progress) -> Iterator[None]:
    """Send weight downloads' progress to `progress(file, done, total)` (the trainer's events)."""
    token = _download_progress.set(progress)
    try:
        yield
    finally:
        _download_progress.reset(token)


def _terminal_bar(name: str):
    """Without a listener (a script, the CLI before training starts): a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=name)
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()

    return update


def hub_file(weights) -> Path:
    """Where torch hub keeps a torchvision weights file (honours TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def imagenet_state(weights, label: str) -> tuple[dict[str, torch.Tensor], str]:
    """The ImageNet state dict from the hub cache, downloading it there once if missing."""
    path = hub_file(weights)
    if not path.is_file():
        try:
            report = _download_progress.get()
            progress = (
                (lambda done, total: report(path.name, done, total))
                if report
                else _terminal_bar(path.name)
            )
            download(weights.url, path, progress)
        except Exception as err:
            path.unlink(missing_ok=True)
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise PretrainedError(
                f"{who(label)}: the ImageNet weights file {path.name} is not in {path.parent} "
                f"and could not be downloaded ({reason}); download it from {weights.url} and "
                "place it in that folder, or set weights to 'none'."
            ) from None
    return read_state(path, label), f"{path.name} (ImageNet)"


def read_state(path: Path, label: str) -> dict[str, torch.Tensor]:
    """A node's weights file (studio/weights.py reads it), its refusals named by the node."""
    return read_state_dict(path, f"{who(label)}: weights file")


# -- fitting a state dict to a module ---------------------------------------------------


def _strip_prefix(state: dict, own: dict) -> dict:
    """Drop the wrapper prefix ('module.', 'model.', 'backbone.', 'net.', ...) that most
    keys share, so files saved around another wrapper still fit."""
    direct = sum(k in own for k in state)
    prefixes: Counter = Counter()
    for key in state:
        parts = key.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in own:
                prefixes[".".join(parts[:i]) + "."] += 1
                break
    if not prefixes:
        return state
    prefix, count = prefixes.most_common(1)[0]
    if count <= direct:
        return state
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_into(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    *,
    source: str,
    label: str,
    dropped: tuple[str, ...] = (),
    replaced: str = "classifier replaced",
) -> str:
    """Load what fits and return the report; raise if nothing fits.

    `dropped` are key prefixes that are expected to be absent from the module (the
    replaced classifier and similar); they are named once, not reported as unexpected.
    """
    name = who(label)
    own = module.state_dict()
    state = _strip_prefix(state, own)
    expected = sorted(k for k in state if k not in own and k.startswith(dropped))
    unexpected = [k for k in state if k not in own and k not in expected]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    # Old checkpoints predate BatchNorm's step counter; its absence changes nothing.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    fits = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not fits:
        example = next(iter(state))
        raise PretrainedError(
            f"{name}: none of the {len(state)} tensors in {source} fit this network (the file "
            f"has e.g. '{example}', the network expects e.g. '{next(iter(own))}'); pick a "
            "weights file saved from this architecture."
        )
    module.load_state_dict(fits, strict=False)
    counted = [k for k in own if not k.endswith("num_batches_tracked")]
    loaded = sum(k in fits for k in counted)
    parts = [f"loaded {loaded} of {len(counted)} tensors from {source}"]
    if expected:
        parts.append(
            f"{replaced} ({', '.join(expected[:4])}{', …' if len(expected) > 4 else ''} not used)"
        )
    if missing:
        parts.append(
            f"{len(missing)} missing from the file, left at random values (e.g. {missing[0]})"
        )
    if unexpected:
        parts.append(f"{len(unexpected)} in the file that the network lacks (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(
            f"{len(wrong)} of another shape, not loaded (e.g. {k}: file "
            f"{tuple(state[k].shape)}, network {tuple(own[k].shape)})"
        )
    text = "; ".join(parts)
    sentence = f"{name}: {text}." if _node.get() else text[0].upper() + text[1:] + "."
    return WeightsReport(sentence, mismatched=bool(missing or unexpected or wrong))


class WeightsReport(str):
    """The sentence a load produced; `mismatched` when some keys did not fit (the trainer
    then shows it as a finding, so a half-loaded backbone is never silent)."""

    mismatched: bool

    def __new__(cls, text: str, mismatched: bool = False):
        self = super().__new__(cls, text)
        self.mismatched = mismatched
        return self
