"""`studio export PROJECT|RUN --pytorch DIR`: the model as code a person can read and retrain.

Writes `model.py` (studio/code_model.py), `train.py` (studio/code_train.py),
`weights.safetensors` (the trained or initial weights under model.py's names) and a short
README.md, then checks the result the way a user would use it: model.py is imported on its
own, `Model()` loads the weights strictly, and its output matches the studio's model.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from studio.analysis import analyze
from studio.code_model import ModelCode
from studio.code_train import train_code
from studio.document import Project
from studio.errors import ExportError

TOLERANCE = 1e-6


@dataclass
class CodeReport:
    folder: str
    files: list[str]
    max_abs_diff: float
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        return {**self.__dict__, "ok": self.ok}

    def summary(self) -> str:
        verdict = "matches" if self.ok else "DOES NOT match"
        return (
            f"Wrote {', '.join(self.files)} to {self.folder}. model.py with the weights "
            f"{verdict} the studio's model: max |difference| {self.max_abs_diff:.1e} "
            f"(tolerance {self.tolerance:.0e}). Train it again with: python train.py"
        )


def export_pytorch(
    project: Project,
    model: nn.Module,
    folder: str | Path,
    card: dict[str, str] | None = None,
    source: str = "",
    base: Path = Path("."),
) -> CodeReport:
    """Write the files into `folder` (made if missing) and check them. `source`: where the
    weights came from, for the README ("run 20261206-…", "the project's initial weights")."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"'{folder}' is a file; --pytorch needs a folder to write into.")
    analysis = analyze(project.network)
    code = ModelCode(project, model, analysis)
    model_text = code.text(card)
    outputs = model.output_shape[0] if len(model.output_shape) == 1 else 0
    train_text = train_code(project, outputs, tuple(model.input_shape), base)
    names = code.key_map()
    weights = {names[k]: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.py").write_text(model_text, encoding="utf-8")
        (folder / "train.py").write_text(train_text, encoding="utf-8")
        from safetensors.torch import save_file

        save_file(weights, str(folder / "weights.safetensors"), metadata={"project": project.name})
        (folder / "README.md").write_text(_readme(project, source), encoding="utf-8")
    except OSError as err:
        raise ExportError(
            f"Cannot write the code into '{folder}': {err.strerror or err}."
        ) from None
    diff = _check(folder, model, weights)
    files = ["model.py", "train.py", "weights.safetensors", "README.md"]
    return CodeReport(str(folder), files, diff)


def _check(folder: Path, model: nn.Module, weights: dict) -> float:
    """model.py imported on its own (a name of its own, nothing of the studio's): its
    Model with the weights against the studio's model, on a random batch of 3."""
    name = f"_studio_export_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        written = module.Model()
        written.load_state_dict(weights, strict=True)
    except Exception as err:  # the generator's fault, said plainly rather than hidden
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"The written model.py does not load its weights: {first}") from err
    finally:
        sys.modules.pop(name, None)
    was_training = model.training
    model.eval()
    written.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = torch.randn(3, *model.input_shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = model(x.to(device)).cpu()
            got = written.to(device)(x.to(device)).cpu()
    finally:
        model.train(was_training)
    if got.shape != expected.shape:
        raise ExportError(
            f"The written model.py gives shape {tuple(got.shape)}; the studio's model "
            f"{tuple(expected.shape)}."
        )
    return float((got - expected).abs().max())


def _readme(project: Project, source: str) -> str:
    weights = f" ({source})" if source else ""
    return f"""# {project.name}

Written out by Studio as plain PyTorch: nothing here imports the studio.

- `model.py`: the network, `Model()`; one attribute per node of the project, named after it.
- `weights.safetensors`: its weights{weights}.
- `train.py`: the project's training — data, optimizer, schedule, regularization, clipping,
  early stopping and augmentation — as a plain loop. `python train.py --epochs 5` trains
  from the project's initial weights; `--weights weights.safetensors` starts from these.

```python
import safetensors.torch
from model import Model

model = Model()
model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))
model.eval()
```

Needs torch and safetensors (torchvision for a pretrained backbone), and for train.py's
data scikit-learn (digits), torchvision (image folders) or numpy (CSV files).
"""
