"""The headless demo: what `studio launch` shows when no window can open.

Checks the sample project (layer table), then exports it to ONNX and verifies the file
with onnxruntime, so a fresh machine proves the whole pipeline end to end.
"""

from __future__ import annotations

from pathlib import Path

from studio.analysis import analyze
from studio.builder import build_model
from studio.bundled import EXAMPLES
from studio.export import export_onnx
from studio.projectfile import load_project
from studio.report import layer_table

OUTPUT = Path("studio-output")


def sample_project() -> Path:
    return EXAMPLES / "digits_cnn.json"


def run_demo(path: str) -> int:
    project = load_project(path)
    print(
        f"Studio (headless demo; the window is not available here)\n\n{project.name}: {project.description}\n"
    )
    analysis = analyze(project.network)
    print(layer_table(project.network, analysis))
    if not analysis.ok:
        for problem in analysis.problems:
            print(f"  ✗ {problem.message}")
        return 1
    OUTPUT.mkdir(exist_ok=True)
    model = build_model(project)
    report = export_onnx(model, OUTPUT / f"{project.name}.onnx")
    print("\n" + report.summary())
    return 0 if report.ok else 1
