"""An earlier run as a backbone (the RunBackbone layer): its network minus its head, read
from the run folder's project.json, and which of its checkpoints to load.

Here, not in the weights loader (studio/pretrained.py), because reading a run means
reading and analysing a whole project.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from studio.analysis import analyze
from studio.checkpoint_files import CHECKPOINTS, weights_file
from studio.pretrained import PretrainedError, resolve, who
from studio.projectfile import load_project


@dataclass(frozen=True)
class RunSource:
    """What a RunBackbone needs to know about an earlier run, read from its project.json."""

    path: Path
    project: object  # studio.document.Project as trained
    input_shape: tuple[int, ...]
    feature_node: str  # the node whose output fed the head
    head: str
    features: tuple[int, ...]
    stages: tuple[str, ...]  # upstream nodes with weights, topological order
    macs: int


_runs: dict[tuple[Path, int], RunSource] = {}
_runs_lock = threading.Lock()


def run_source(path_text: str, label: str = "RunBackbone") -> RunSource:
    """Read (and cache) a run folder; raise PretrainedError saying what to fix."""
    name = who(label)
    if not path_text:
        raise PretrainedError(
            f"{name}: field 'run' is empty; set it to the folder of an earlier run "
            "(runs/<project>/<run id>)."
        )
    path = resolve(path_text)
    project_file = path / "project.json"
    if not project_file.is_file():
        raise PretrainedError(
            f"{name}: '{path}' is not a run folder (it has no project.json); set field 'run' "
            "to a folder under runs/<project>/."
        )
    key = (project_file.resolve(), project_file.stat().st_mtime_ns)
    with _runs_lock:
        if key in _runs:
            return _runs[key]
    project = load_project(project_file)
    analysis = analyze(project.network)
    if not analysis.ok:
        raise PretrainedError(
            f"{name}: the network of run '{path.name}' no longer builds "
            f"({analysis.problems[0].message})"
        )
    head = analysis.output_id
    sources = analysis.sources.get(head, [])
    if len(sources) != 1 or sources[0] == analysis.input_id:
        raise PretrainedError(
            f"{name}: run '{path.name}' has no single layer feeding its head '{head}', so there "
            "are no features to reuse."
        )
    feature = sources[0]
    stages = tuple(
        nid
        for nid in analysis.order
        if nid not in (head, analysis.input_id) and analysis.layers[nid].params > 0
    )
    source = RunSource(
        path=path,
        project=project,
        input_shape=tuple(analysis.layers[analysis.input_id].output_shape),
        feature_node=feature,
        head=head,
        features=tuple(analysis.layers[feature].output_shape),
        stages=stages,
        macs=analysis.macs - analysis.layers[head].macs,
    )
    with _runs_lock:
        _runs[key] = source
    return source


def run_checkpoint(source: RunSource, which: str, label: str) -> tuple[Path, str]:
    """The run's weights file: `which` ('best' or 'last'), falling back to the other, and
    how the weights report names it."""
    path = weights_file(source.path, which)
    if path is None:
        raise PretrainedError(
            f"{who(label)}: run '{source.path.name}' has no saved weights "
            f"({source.path / CHECKPOINTS} holds no best.safetensors or last.safetensors); "
            "pick a run that finished at least one epoch."
        )
    note = "" if path.stem == which else f" (it has no {which} checkpoint)"
    return path, f"run '{source.path.name}' {path.name}{note}"
