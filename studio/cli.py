"""The `studio` command: check, export and inspect projects without a window.

Every error a user can cause (a bad path, bad JSON, an invalid project, an export that
fails) ends in one sentence on stderr and a non-zero exit, never a traceback. Set
STUDIO_DEBUG=1 to see tracebacks while developing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from studio import __version__
from studio.errors import StudioError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args(["launch", *(argv or [])])
    try:
        return args.run(args)
    except StudioError as err:
        return fail(str(err), getattr(args, "json", False))
    except KeyboardInterrupt:
        print("studio: stopped.", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("STUDIO_DEBUG"):
            raise
        return fail(
            f"unexpected {type(err).__name__}: {err} (set STUDIO_DEBUG=1 for details)",
            getattr(args, "json", False),
        )


def fail(message: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": False, "error": message}))
    print(f"studio: {message}", file=sys.stderr)
    return EXIT_INVALID


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studio",
        description="Build, check, train and export PyTorch networks from project files.",
    )
    parser.add_argument("--version", action="version", version=f"studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def project_command(name: str, help_text: str, run) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("project", help="the project file (.json)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="PATH=VALUE",
            help="override a project field without editing the file, e.g. "
            "--set training.epochs=5 or --set network.nodes.conv1.params.out_channels=8",
        )
        p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        p.set_defaults(run=run)
        return p

    project_command(
        "check",
        "Print the layer table and every problem; exit 1 if the project is invalid.",
        run_check,
    )

    export = project_command(
        "export",
        "Export the model to ONNX (verified by onnxruntime) and/or safetensors.",
        run_export,
    )
    export.add_argument("--onnx", metavar="OUT", help="ONNX file to write")
    export.add_argument("--safetensors", metavar="OUT", help="safetensors weights file to write")
    export.add_argument("--opset", type=int, default=None, help="ONNX opset (13 to 23; default 18)")
    export.add_argument(
        "--static-batch",
        action="store_true",
        help="fix the batch size instead of leaving it dynamic",
    )
    export.add_argument(
        "--weights", metavar="FILE", help="load these weights (.safetensors) before exporting"
    )

    layers = sub.add_parser(
        "layers", help="List the layer types the studio knows (built-in and plugins)."
    )
    layers.add_argument(
        "--json", action="store_true", help="machine-readable output (full parameter schemas)"
    )
    layers.set_defaults(run=run_layers)

    launch = sub.add_parser(
        "launch", help="Open the studio with a project (default: the digits sample)."
    )
    launch.add_argument("project", nargs="?", help="project file to open")
    launch.set_defaults(run=run_launch, json=False)
    return parser


def _load(args):
    from studio.projectfile import load_project

    return load_project(args.project, args.overrides)


def run_check(args) -> int:
    from studio.analysis import analyze
    from studio.report import layer_table

    project = _load(args)
    analysis = analyze(project.network)
    if args.json:
        print(
            json.dumps({"ok": analysis.ok, "project": project.name, **analysis.to_dict()}, indent=2)
        )
    else:
        print(f"{project.name}: {project.description}".rstrip(": "))
        print(layer_table(project.network, analysis))
        for problem in analysis.problems:
            print(f"  ✗ {problem.message}", file=sys.stderr)
    return EXIT_OK if analysis.ok else EXIT_INVALID


def run_export(args) -> int:
    from studio.builder import build_model
    from studio.export import DEFAULT_OPSET, export_onnx, export_safetensors
    from studio.weights import load_weights

    if not args.onnx and not args.safetensors:
        raise StudioError("Nothing to export: give --onnx OUT and/or --safetensors OUT.")
    project = _load(args)
    model = build_model(project)
    result: dict = {"ok": True, "project": project.name}
    if args.weights:
        load_weights(model, args.weights)
    if args.onnx:
        report = export_onnx(
            model, args.onnx, args.opset or DEFAULT_OPSET, dynamic_batch=not args.static_batch
        )
        result["onnx"] = report.to_dict()
        result["ok"] = report.ok
        if not args.json:
            print(report.summary())
    if args.safetensors:
        path = export_safetensors(model, args.safetensors, {"project": project.name})
        result["safetensors"] = str(path)
        if not args.json:
            print(f"Wrote {path} ({Path(path).stat().st_size / 1e6:.2f} MB of weights).")
    if args.json:
        print(json.dumps(result, indent=2))
    return EXIT_OK if result["ok"] else EXIT_INVALID


def run_layers(args) -> int:
    from studio.registry import catalog

    cat = catalog()
    if args.json:
        print(
            json.dumps(
                [
                    {**t.describe(), "source": cat.sources[t.name]}
                    for g in cat.by_group().values()
                    for t in g
                ],
                indent=2,
            )
        )
        return EXIT_OK
    for group, types in cat.by_group().items():
        print(group)
        for t in types:
            print(f"  {t.name:<14} {t.summary}")
    for source, error in cat.failed_plugins.items():
        print(f"  ! plugin {source} failed to load: {error}", file=sys.stderr)
    return EXIT_OK


def run_launch(args) -> int:
    from studio.demo import run_demo, sample_project

    project = args.project or str(sample_project())
    # The window is found through an entry point, so the core never imports the ui package.
    windows = entry_points(group="studio.gui")
    if not windows:
        # No window installed (or none yet): show what the studio does, headless.
        return run_demo(project)
    return next(iter(windows)).load()([project])
