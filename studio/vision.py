"""The one place that imports torchvision.

PyPI's torchvision wheels are built against CUDA torch. Beside a CPU-only torch their
import fails with "operator torchvision::nms does not exist": torchvision registers
fake (meta) kernels for its C++ ops at import time, and on CPU torch those ops were
never defined because the compiled extension did not load. Defining the two op schemas
first lets the import finish; every model, weight and transform API works, and only the
detection ops (nms) would fail if ever called, which the studio does not do.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

import torch

_lock = threading.Lock()
_library: torch.library.Library | None = None

_MISSING_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor",
}


def _define_missing_ops() -> None:
    global _library
    missing = [schema for name, schema in _MISSING_OPS.items() if not _op_exists(name)]
    if not missing:
        return
    _library = torch.library.Library("torchvision", "DEF")
    for schema in missing:
        _library.define(schema)


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def torchvision() -> ModuleType:
    """Import and return torchvision, working around a CPU/CUDA build mismatch."""
    with _lock:
        try:
            return importlib.import_module("torchvision")
        except RuntimeError as err:
            if "torchvision::nms does not exist" not in str(err):
                raise
        _define_missing_ops()
        # A failed import leaves half-initialised submodules behind; drop them first.
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return importlib.import_module("torchvision")
