"""A diagnosis's suggested changes, applied to a project and said in words.

`studio diagnose --fix` and the findings panel's tooltip both say what a fix changes
through `describe_fix`; `apply_findings` applies the changes of every finding of a run at
once (`combined_fix`: the first finding, in the diagnosis's order, to set a field wins).
"""

from __future__ import annotations

from studio.commands import apply_fix
from studio.document import Project
from studio.training.diagnosis import Finding, combined_fix


def _value(value) -> str:
    if isinstance(value, dict):
        if "name" in value:
            return str(value["name"])
        if "kind" in value:
            return str(value["kind"])
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _current(project: Project, node_id: str, key: str):
    node = project.network.nodes[node_id]
    return getattr(node, key, None)


def _setting(project: Project, path: str):
    value: object = project.training
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _span(names: list[str]) -> str:
    if len(names) <= 3:
        return ", ".join(names)
    return f"{names[0]}–{names[-1]} ({len(names)} layers)"


def describe_fix(project: Project, fix: dict) -> list[str]:
    """One line per group of nodes that change alike, and one per training setting:
    'dense1–dense20 (20 layers): activation sigmoid → relu; initializer normal → kaiming_normal'."""
    groups: dict[str, list[str]] = {}
    for node_id, changes in fix.get("nodes", {}).items():
        if node_id not in project.network.nodes:
            continue
        parts = []
        for key, value in changes.items():
            before = _value(_current(project, node_id, key))
            after = _value(value if not isinstance(value, dict) else {**value})
            if before != after:
                parts.append(f"{key} {before} → {after}")
        if parts:
            groups.setdefault("; ".join(parts), []).append(node_id)
    lines = [f"{_span(nodes)}: {text}" for text, nodes in groups.items()]
    for path, value in fix.get("training", {}).items():
        lines.append(f"training.{path}: {_value(_setting(project, path))} → {_value(value)}")
    return lines


def apply_findings(project: Project, findings: list[Finding]) -> list[str]:
    """Apply every finding's fix to `project` (in place); returns what changed, in words."""
    fix = combined_fix(findings)
    lines = describe_fix(project, fix)
    if fix["nodes"] or fix["training"]:
        apply_fix(project, fix, "diagnosis").redo()
    return lines
