"""The core runs without Qt: importing every studio module loads no Qt binding."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_importing_the_whole_core_loads_no_qt():
    code = (
        "import pkgutil, importlib, sys, studio\n"
        "for m in pkgutil.walk_packages(studio.__path__, 'studio.'):\n"
        "    if m.name != 'studio.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'ui')]\n"
        "print(len([m for m in sys.modules if m.startswith('studio')]), bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout.split()[0]) > 15, "the walk really imported the core"


def test_torchvision_imports_through_the_guarded_module():
    from studio.vision import torchvision

    tv = torchvision()
    model = tv.models.resnet18(weights=None, num_classes=3)
    assert model.fc.out_features == 3
    assert torchvision() is tv
