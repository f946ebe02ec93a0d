"""Export a built model: ONNX (verified by onnxruntime right after) and safetensors weights.

ONNX files are single files (weights inside, `external_data=False`) with a dynamic batch
dimension. The dynamo exporter writes opset 18 and newer; for an older opset the
TorchScript exporter is used, since the dynamo exporter's down-conversion can silently
leave the file at 18.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from studio.errors import ExportError

MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 13, 23, 18
TOLERANCE = 1e-4
# Batch sizes the check runs: none equals the exported sample's batch of 2, so a batch
# dimension baked in as a constant is caught.
CHECK_BATCHES = (1, 5)


@dataclass
class ExportReport:
    path: str
    opset: int
    exporter: str
    dynamic_batch: bool
    checked_batches: list[int]
    max_abs_diff: float
    tolerance: float
    size_bytes: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff < self.tolerance

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        verdict = "matches torch" if self.ok else "DOES NOT match torch"
        batches = ", ".join(str(b) for b in self.checked_batches)
        return (
            f"Wrote {self.path} ({self.size_bytes / 1e6:.2f} MB, opset {self.opset}). onnxruntime "
            f"{verdict} on batches of {batches}: max |difference| {self.max_abs_diff:.2e} "
            f"(tolerance {self.tolerance:.0e})."
        )


def export_onnx(
    model: nn.Module,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    tolerance: float = TOLERANCE,
    metadata: dict[str, str] | None = None,
) -> ExportReport:
    """Write model to path as ONNX and check it with onnxruntime against torch.
    `metadata`: written into the file's metadata_props (studio/training/model_card.py)."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"Opset {opset} is not supported; choose {MIN_OPSET} to {MAX_OPSET}.")
    path = Path(path)
    if not path.parent.exists():
        raise ExportError(f"Cannot write '{path}': the folder '{path.parent}' does not exist.")
    input_shape = tuple(model.input_shape)
    if any(t.device.type != "cpu" for t in (*model.parameters(), *model.buffers())):
        # A model trained on a GPU: export and verify a CPU copy (onnxruntime runs on the
        # CPU here), leaving the caller's model where it is.
        model = copy.deepcopy(model).cpu()
    was_training = model.training
    model.eval()
    try:
        sample = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
        exporter = _write(model, sample, path, opset, dynamic_batch)
        _check_opset(path, opset)
        if metadata:
            _write_metadata(path, metadata)
        batches = list(CHECK_BATCHES) if dynamic_batch else [2]
        diff = _verify(model, path, input_shape, batches)
    finally:
        model.train(was_training)
    report = ExportReport(
        str(path), opset, exporter, dynamic_batch, batches, diff, tolerance, path.stat().st_size
    )
    return report


def _write(
    model: nn.Module, sample: torch.Tensor, path: Path, opset: int, dynamic_batch: bool
) -> str:
    chatter = io.StringIO()
    names = {"input_names": ["input"], "output_names": ["output"]}
    try:
        with contextlib.redirect_stdout(chatter), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if opset >= 18:
                shapes = (
                    ({0: torch.export.Dim("batch", min=1, max=65536)},) if dynamic_batch else None
                )
                torch.onnx.export(
                    model,
                    (sample,),
                    str(path),
                    dynamo=True,
                    external_data=False,
                    opset_version=opset,
                    dynamic_shapes=shapes,
                    **names,
                )
                return "dynamo"
            axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
            torch.onnx.export(
                model,
                (sample,),
                str(path),
                dynamo=False,
                opset_version=opset,
                dynamic_axes=axes,
                **names,
            )
            return "torchscript"
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"The model could not be exported to ONNX (opset {opset}): {first}"
        ) from err


def _check_opset(path: Path, opset: int) -> None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise ExportError(
            f"Asked for opset {opset} but the exporter wrote opset {written}; choose opset {written}."
        )


def _write_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    try:
        onnx.save(model, str(path))
    except OSError as err:
        raise ExportError(f"Cannot write '{path}': {err.strerror or err}.") from err


def read_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX file's metadata_props, as onnxruntime reads them."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)


def _verify(model: nn.Module, path: Path, input_shape: tuple, batches: list[int]) -> float:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:
        raise ExportError(f"onnxruntime cannot load the exported file '{path}': {err}") from err
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for batch in batches:
        x = torch.randn(batch, *input_shape, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        try:
            (got,) = session.run(["output"], {"input": x.numpy()})
        except Exception as err:
            raise ExportError(
                f"onnxruntime failed to run the exported model on a batch of {batch}: {err}"
            ) from err
        if got.shape != expected.shape:
            raise ExportError(
                f"onnxruntime returned shape {got.shape} for a batch of {batch}; torch gives {expected.shape}."
            )
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst


def export_safetensors(
    model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None
) -> Path:
    """Weights (parameters and buffers, by their stable names) to a safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    if not path.parent.exists():
        raise ExportError(f"Cannot write '{path}': the folder '{path.parent}' does not exist.")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    return path
