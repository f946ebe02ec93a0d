"""The `studio` command: check, export and inspect projects without a window.

Every error a user can cause (a bad path, bad JSON, an invalid project, an export that
fails) ends in one sentence on stderr and a non-zero exit, never a traceback. Set
STUDIO_DEBUG=1 to see tracebacks while developing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from studio import __version__
from studio.errors import StudioError, clip

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # for `train --nproc`
    if not getattr(args, "command", None):
        args = parser.parse_args(["launch", *(argv or [])])
    _show_notices()
    try:
        return args.run(args)
    except StudioError as err:
        if os.environ.get("RANK", "0") != "0":  # a data-parallel process: rank 0 says it
            return EXIT_INVALID
        return fail(str(err), getattr(args, "json", False))
    except KeyboardInterrupt:
        print("studio: stopped.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`studio check --json | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INVALID
    except Exception as err:
        if os.environ.get("STUDIO_DEBUG"):
            raise
        # The last resort: every error a person can cause is a StudioError with its own
        # sentence; this is for the ones nobody foresaw (tests/test_fuzz_project.py hunts them).
        return fail(
            f"unexpected {type(err).__name__}: {clip(str(err), 200)} "
            "(set STUDIO_DEBUG=1 for details)",
            getattr(args, "json", False),
        )


def _show_notices() -> None:
    """What the core handled but the person should know (an index rebuilt, an older
    checkpoint resumed): one line each on stderr, like the errors."""
    import logging

    from studio.errors import NOTICES

    notices = logging.getLogger(NOTICES)
    if not notices.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("studio: %(message)s"))
        notices.addHandler(handler)
        notices.propagate = False


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
        "Export the model (a project's, or a trained run's) to ONNX (verified by "
        "onnxruntime), safetensors, and/or plain PyTorch code.",
        run_export,
    )
    export._actions[
        [a.dest for a in export._actions].index("project")
    ].help = "the project file (.json), or a run (its folder, or its id in --runs)"
    export.add_argument(
        "--runs", default="runs", metavar="DIR", help="where runs are kept (default: ./runs)"
    )
    export.add_argument("--onnx", metavar="OUT", help="ONNX file to write")
    export.add_argument(
        "--pytorch",
        metavar="DIR",
        help="write model.py, train.py, weights.safetensors and a README into DIR",
    )
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

    train = project_command(
        "train", "Train a project: progress bar, findings, a run folder you can resume.", run_train
    )
    # With --resume the project comes from the run folder.
    train._actions[[a.dest for a in train._actions].index("project")].nargs = "?"
    train.add_argument(
        "--out", default="runs", metavar="DIR", help="where run folders are kept (default: ./runs)"
    )
    train.add_argument(
        "--device", choices=("auto", "cpu", "cuda", "mps"), help="override training.device"
    )
    train.add_argument(
        "--export-onnx", metavar="OUT", help="after training, export the best weights to ONNX"
    )
    train.add_argument(
        "--resume", metavar="RUN", help="continue a stopped run (its id, folder, or 'last')"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard logs into the run folder (training.tensorboard)",
    )
    # Where the project's relative data paths start (default: the project file's folder).
    train.add_argument("--base", metavar="DIR", help=argparse.SUPPRESS)
    parallel = train.add_argument_group(
        "data-parallel training (torchrun; see docs/scaling.md)",
        "training.batch_size is the batch of all processes together.",
    )
    parallel.add_argument(
        "--nproc", type=int, metavar="N", help="train in N processes on this machine (one per GPU)"
    )
    parallel.add_argument("--nnodes", metavar="N", help="machines taking part (torchrun's)")
    parallel.add_argument("--node-rank", default="0", metavar="I", help="this machine's number")
    parallel.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="torchrun's rendezvous")
    parallel.add_argument("--rdzv-id", default="studio", metavar="ID", help="the job's id")
    parallel.add_argument("--rdzv-backend", default="c10d", metavar="NAME")
    train.add_argument(
        "--force",
        action="store_true",
        help="train even when the memory estimate says a step will not fit",
    )

    diagnose = project_command(
        "diagnose",
        "Probe a project for a few steps and report per-layer gradient health and findings.",
        run_diagnose,
    )
    diagnose.add_argument(
        "--steps", type=int, default=50, help="training steps after the first probe (default 50)"
    )
    diagnose.add_argument(
        "--device", choices=("auto", "cpu", "cuda", "mps"), help="override training.device"
    )
    diagnose.add_argument(
        "--fix",
        metavar="OUT",
        help="write the project with every finding's suggested fix applied to OUT (.json)",
    )

    lr_find = project_command(
        "lr-find",
        "Find a learning rate: a short sweep from tiny to huge rates on a copy of the model "
        "(Smith's range test, as fastai's lr_find); suggests a rate and a range.",
        run_lr_find,
    )
    lr_find.add_argument("--steps", type=int, default=200, help="steps of the sweep (default 200)")
    lr_find.add_argument(
        "--start-lr", type=float, default=1e-7, help="first learning rate (default 1e-7)"
    )
    lr_find.add_argument(
        "--end-lr", type=float, default=10.0, help="last learning rate (default 10)"
    )
    lr_find.add_argument(
        "--device", choices=("auto", "cpu", "cuda", "mps"), help="override training.device"
    )
    lr_find.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = sub.add_parser(
        "evaluate",
        help="What a trained run gets wrong: confusion matrix, per-class scores, calibration, "
        "the most confidently wrong samples.",
    )
    evaluate.add_argument(
        "target",
        metavar="RUN|PROJECT",
        help="a run (id, folder or 'last') or a project file (its newest run)",
    )
    evaluate.add_argument("--split", choices=("val", "test"), default="val")
    evaluate.add_argument("--checkpoint", choices=("best", "last"), default="best")
    evaluate.add_argument(
        "--out", default="runs", metavar="DIR", help="where run folders are kept (default: ./runs)"
    )
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    evaluate.add_argument(
        "--saliency",
        type=int,
        metavar="SAMPLE",
        help="also picture what the model looked at for this sample of the split (its number "
        "in the report)",
    )
    evaluate.add_argument("--json", action="store_true", help="machine-readable output")
    evaluate.set_defaults(run=run_evaluate)

    runs = sub.add_parser("runs", help="List training runs and their headline numbers.")
    runs.add_argument(
        "--out", default="runs", metavar="DIR", help="where run folders are kept (default: ./runs)"
    )
    runs.add_argument("--project", help="only runs of this project name")
    runs.add_argument("--json", action="store_true", help="machine-readable output")
    runs.set_defaults(run=run_runs)

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

    desktop = sub.add_parser(
        "install-desktop",
        help="Add the studio to the desktop's application menu (this user; --remove undoes it).",
    )
    desktop.add_argument("--remove", action="store_true", help="take the menu entry away again")
    desktop.set_defaults(run=run_install_desktop, json=False)
    return parser


def run_install_desktop(args) -> int:
    from studio import desktop

    if args.remove:
        gone = desktop.remove()
        print(
            "Removed " + " and ".join(str(p) for p in gone) + "."
            if gone
            else "Nothing to remove: no menu entry was installed."
        )
        return EXIT_OK
    written = desktop.install()
    print(f"Wrote {written[0]} and {written[1]}; Studio is in the application menu.")
    return EXIT_OK


# What a resumed run may change with --set: how its data is read, not what it learns from
# (the batches are the same with any number of workers, from memory, a cache or the files).
RESUME_MAY_SET = ("data.workers", "data.storage")


def _resumed_project(run, args):
    """The run's own project, with the --set overrides a resumed run may take."""
    from studio.projectfile import load_project

    for item in args.overrides:
        field = item.split("=", 1)[0].strip()
        if field not in RESUME_MAY_SET:
            raise StudioError(
                f"--set {field} cannot change a run being resumed (it goes on with the "
                f"project it started with); only {' and '.join(RESUME_MAY_SET)} can. "
                "Train the project anew to change it."
            )
    return load_project(run.path / "project.json", list(args.overrides))


def _load(args):
    from studio.projectfile import load_project

    overrides = list(args.overrides)
    if getattr(args, "tensorboard", False):
        overrides.append("training.tensorboard=true")
    return load_project(args.project, overrides)


def run_check(args) -> int:
    from studio.analysis import analyze
    from studio.data.balance import read_labels
    from studio.pretrained import project_folder
    from studio.report import layer_table

    project = _load(args)
    with project_folder(Path(args.project).parent):  # relative weight files and runs
        analysis = analyze(project.network)
    memory = None
    if analysis.ok:  # limits known before training: does one step fit this machine?
        from studio.memory import estimate
        from studio.training.setup import pick_device

        memory = estimate(
            project,
            analysis,
            str(pick_device(project.training["device"])),
            Path(args.project).resolve().parent,
        )
    fits = memory is None or memory.fits
    balance = read_labels(project.data, Path(args.project).resolve().parent)
    suggestion = balance.suggestion(project.training) if balance is not None else None
    plan = cost = None
    validation = project.training["validation"]
    if validation["method"] != "holdout" and balance is not None:
        from studio.data.resampling import cost_warning, outside_test, plan_sentence

        samples = sum(balance.counts)
        plan = plan_sentence(validation, samples, project.data["test"])
        cost = cost_warning(
            validation, outside_test(samples, project.data["test"]), project.training["epochs"]
        )
    if args.json:
        extra = {}
        if balance is not None:
            extra["classes"] = {
                "names": list(balance.names),
                "counts": list(balance.counts),
                "imbalance_ratio": balance.ratio if balance.ratio != float("inf") else None,
                "suggestion": suggestion,
            }
        if plan is not None:
            extra["validation"] = {"plan": plan, "cost": cost}
        if memory is not None:
            extra["memory"] = {
                "step_bytes": memory.total,
                "available_bytes": memory.available,
                "fits": memory.fits,
                "biggest_layer": memory.biggest,
                "message": memory.sentence(),
            }
        print(
            json.dumps(
                {
                    "ok": analysis.ok and fits,
                    "project": project.name,
                    **analysis.to_dict(),
                    **extra,
                },
                indent=2,
            )
        )
    else:
        print(f"{project.name}: {project.description}".rstrip(": "))
        print(layer_table(project.network, analysis))
        for problem in analysis.problems:
            print(f"  ✗ {problem.message}", file=sys.stderr)
        if memory is not None:
            print(
                f"  {'✓' if fits else '✗'} {memory.sentence()}",
                file=sys.stdout if fits else sys.stderr,
            )
        if balance is not None:
            print(f"  {balance.summary()}")
        if suggestion:
            print(f"  ⚠ {suggestion}")
        if plan is not None:
            print(f"  {plan}")
        if cost is not None:
            print(f"  ⚠ {cost}")
    return EXIT_OK if analysis.ok and fits else EXIT_INVALID


def run_export(args) -> int:
    from studio.builder import build_model
    from studio.export import DEFAULT_OPSET, export_onnx, export_safetensors
    from studio.pretrained import without_weights
    from studio.training.model_card import card_for
    from studio.weights import load_weights

    if not args.onnx and not args.safetensors and not args.pytorch:
        raise StudioError(
            "Nothing to export: give --onnx OUT, --safetensors OUT and/or --pytorch DIR."
        )
    target = Path(args.project)
    run = None
    is_run = (target / "project.json").is_file() or (
        not target.exists() and target.suffix != ".json"  # a run's id
    )
    if target.is_dir() and not is_run:
        raise StudioError(
            f"'{target}' is a folder but neither a project file nor a run folder (it has no "
            "project.json); give a project's .json file or a run."
        )
    if is_run:  # its best weights
        from studio.evaluation import project_base
        from studio.training.runs import Run, export_checkpoint

        run = Run.open(args.runs, args.project)
        project, base = run.project(), project_base(run)
        args.weights = args.weights or str(export_checkpoint(run.path))
    else:
        project, base = _load(args), target.parent
    # Given trained weights, pretrained backbones need not be loaded first.
    with contextlib.nullcontext() if not args.weights else without_weights():
        model = build_model(project, base=base)
    result: dict = {"ok": True, "project": project.name}
    if args.weights:
        load_weights(model, args.weights)
    card = None
    if args.onnx or args.pytorch:
        card = card_for(project, model.input_shape, base, run.path if run else None)
    if args.pytorch:
        from studio.export_code import export_pytorch

        source = (
            f"run {run.id}, {Path(args.weights).stem} checkpoint"
            if run
            else (f"from {args.weights}" if args.weights else "the project's initial weights")
        )
        code = export_pytorch(project, model, args.pytorch, card, source, base)
        result["pytorch"] = code.to_dict()
        result["ok"] = result["ok"] and code.ok
        if not args.json:
            print(code.summary())
    unread = (card or {}).get("input.preprocessing", "")
    if unread.startswith("not recorded: ") and not args.json:
        # Written anyway (the network does not need the data); said, not left in the file.
        print(
            f"Note: the data could not be read, so the input's scaling and the classes are "
            f"left out{' and train.py will not run as it is' if args.pytorch else ''}: "
            f"{unread.removeprefix('not recorded: ')}"
        )
    if args.onnx:
        report = export_onnx(
            model,
            args.onnx,
            args.opset or DEFAULT_OPSET,
            dynamic_batch=not args.static_batch,
            metadata=card,
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


def _fewer_threads_beside_busy_processes(project, args) -> None:
    """A CPU run takes a thread fewer for each CPU other processes keep busy, and says so."""
    from studio.cpus import threads_for_a_run
    from studio.training.setup import trains_on_cpu

    on_cpu = trains_on_cpu(args.device or project.training["device"])
    chosen = threads_for_a_run(project.training["deterministic"], on_cpu=on_cpu)
    if chosen.said and not (args.quiet or args.json):
        print(
            f"studio: {chosen.said} {chosen.why} (OMP_NUM_THREADS sets the count.)",
            file=sys.stderr,
        )


def run_train(args) -> int:
    import signal
    import threading

    from studio.training import distributed
    from studio.training.experiment import run_experiment
    from studio.training.progress import ProgressPrinter
    from studio.training.runs import Run
    from studio.training.session import train

    world = distributed.current()
    if args.nproc is not None and args.nproc < 1:
        raise StudioError(f"--nproc must be 1 or more, not {args.nproc}.")
    if not args.resume and not args.project:
        raise StudioError("Give a project file to train, or --resume RUN to continue one.")
    # Opened once: what decides whether to launch processes is what then trains.
    resume = Run.open(args.out, args.resume) if args.resume else None
    project = _resumed_project(resume, args) if resume else _load(args)
    if not world.active:  # --nproc, or training.processes: start the processes
        settings = project.training
        args.nproc = args.nproc or distributed.processes_for(
            settings["processes"], args.device or settings["device"]
        )
        if args.nproc > 1 and resume is not None:  # refused here, once, not by every process
            distributed.check_resume(resume.load_state("last"), distributed.World(0, args.nproc))
        if args.nproc > settings["batch_size"]:
            raise StudioError(
                f"Field 'training.batch_size' is {settings['batch_size']} but {args.nproc} "
                "processes share each batch, so some would have no sample; raise it to "
                f"{args.nproc} or more, or use fewer processes."
            )
        if args.nproc > 1:  # each process runs this command
            from studio.training.launch import launch

            return launch(args, args.argv)
    if not world.main:  # rank 0 speaks for the job
        args.quiet, args.json, args.export_onnx = True, False, None

    base = Path(args.project).resolve().parent if args.project else Path(".")
    if args.base:  # the window trains a copy of an unsaved project kept elsewhere
        base = Path(args.base).resolve()
    stop = threading.Event()

    def on_interrupt(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstudio: stopping after this step (Ctrl-C again to abort)…", file=sys.stderr)

    import torch

    threads_before = torch.get_num_threads()  # given back after (main() called in-process)
    previous = signal.signal(signal.SIGINT, on_interrupt)
    options = dict(
        runs_root=Path(args.out),
        base=base,
        device=args.device,
        listeners=[ProgressPrinter(quiet=args.quiet or args.json)],
        stop=stop,
        force=args.force,
    )
    try:
        if not world.active:  # torchrun's processes have their share (OMP_NUM_THREADS)
            _fewer_threads_beside_busy_processes(project, args)
        if resume is None:  # holdout: one run; k-fold, bootstrap, leave-one-out: several
            experiment = run_experiment(project, **options)
            outcome = experiment.last
        else:  # a run (one fold of an experiment, too) goes on where it stopped
            outcome = train(project, resume=resume, **options)
            experiment = None
    except Exception as err:
        if distributed.peer_lost(err):  # the launcher says which process died
            return EXIT_INVALID
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        distributed.leave()
        torch.set_num_threads(threads_before)
    if not world.main:
        return EXIT_OK
    grouped = experiment is not None and len(experiment.folds) > 0
    if grouped:
        return _experiment_done(args, experiment, base)
    summary = outcome.summary
    if args.export_onnx:
        summary["onnx"] = _export_trained(outcome.run, args.export_onnx, base)
        outcome.run.write_json("summary.json", summary)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(_train_summary(summary))
    return (
        EXIT_OK
        if outcome.result.status in ("completed", "early_stopped", "stopped")
        else EXIT_INVALID
    )


def _experiment_done(args, experiment, base: Path) -> int:
    """The end of a k-fold, bootstrap or leave-one-out experiment: each run in a line,
    then mean ± std and the confidence interval of each validation metric."""
    from studio.training.experiment import experiment_lines

    summary = experiment.summary
    if args.export_onnx:
        # The run that validated best stands for the experiment (each run is one model).
        scored = [r for r in summary["runs"] if "val_loss" in r]
        best = min(scored, key=lambda r: r["val_loss"]) if scored else summary["runs"][-1]
        run = next(o.run for o in experiment.outcomes if o.run and o.run.id == best["run"])
        summary["onnx"] = {**_export_trained(run, args.export_onnx, base), "run": best["run"]}
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print()
        for row, fold in zip(summary["runs"], experiment.folds):
            acc = (
                f", validation accuracy {row['val_accuracy']:.2%}" if "val_accuracy" in row else ""
            )
            loss = f"validation loss {row['val_loss']:.4g}" if "val_loss" in row else ""
            print(
                f"{fold.label}: {row['status'].replace('_', ' ')}, {loss}{acc} (run {row['run']})."
            )
        print("\n".join(experiment_lines(summary)))
        findings = summary["findings"]
        if findings:
            titles = sorted({f["title"] for f in findings})
            print(f"Findings over the runs: {len(findings)} ({'; '.join(titles)}).")
        if summary.get("onnx"):
            o = summary["onnx"]
            print(
                f"ONNX: {o['path']} from run {o['run']}, the best by validation loss "
                f"(onnxruntime max |difference| {o['max_abs_diff']:.2e})."
            )
    return EXIT_OK if summary["status"] in ("completed", "stopped") else EXIT_INVALID


def _export_trained(run, path: str, base: Path) -> dict:
    from studio.builder import build_model
    from studio.export import export_onnx
    from studio.pretrained import without_weights
    from studio.training.model_card import card_for
    from studio.training.runs import export_checkpoint
    from studio.weights import load_weights

    with without_weights():  # the run's checkpoint holds every weight
        model = build_model(run.project(), base=base)
    load_weights(model, export_checkpoint(run.path))
    card = card_for(run.project(), model.input_shape, base, run_folder=run.path)
    report = export_onnx(model, path, metadata=card)
    return report.to_dict()


def _train_summary(s: dict) -> str:
    lines = [
        f"\n{s['project']}: {s['status'].replace('_', ' ')} ({s['reason']}) in {s['seconds']:.1f} s, "
        f"{s['epochs']} epochs, {s['steps']:,} steps on {s['device']}."
    ]
    if s.get("processes", 1) > 1:
        b = s["batch_size"]
        lines.append(
            f"Data-parallel over {s['processes']} processes: batch {b['global']} per step, "
            f"about {b['per_process']} per process."
        )
    best = s.get("best") or {}
    if best:
        metrics = best.get("metrics", {})
        acc = (
            f", validation accuracy {metrics['val_accuracy']:.2%}"
            if "val_accuracy" in metrics
            else ""
        )
        lines.append(f"Best {best['monitor']} {best['value']:.4g} at epoch {best['epoch']}{acc}.")
    if s.get("test"):
        acc = f", accuracy {s['test']['accuracy']:.2%}" if "accuracy" in s["test"] else ""
        lines.append(f"Test loss {s['test']['loss']:.4g}{acc}.")
    findings = s.get("findings", [])
    lines.append(
        f"Findings: {len(findings)}" + ("" if findings else " (none: training looked healthy).")
    )
    for f in findings:
        lines.append(f"  ! {f['title']}: {f['message']}\n    → {f['remedy']}")
    if s.get("run_folder"):
        lines.append(
            f"Run folder: {s['run_folder']} (summary.json; resume with --resume {s['run']})."
        )
    if s.get("onnx"):
        o = s["onnx"]
        lines.append(f"ONNX: {o['path']} (onnxruntime max |difference| {o['max_abs_diff']:.2e}).")
    return "\n".join(lines)


def run_diagnose(args) -> int:
    from studio.training.probe import probe, probe_table

    project = _load(args)
    if args.steps < 0:
        raise StudioError("--steps must be 0 or more.")
    if args.fix and Path(args.fix).resolve() == Path(args.project).resolve():
        raise StudioError(
            f"--fix would overwrite the project '{args.project}'; give another file to write."
        )
    report = probe(project, args.steps, Path(args.project).resolve().parent, args.device)
    fixed = _write_fixed(project, report.findings, args.fix) if args.fix else None
    if args.json:
        out = report.to_dict()
        if fixed is not None:
            out["fix"] = {"path": args.fix, "changes": fixed}
        print(json.dumps(out, indent=2, default=str))
        return EXIT_OK
    print(
        f"{project.name}: {args.steps} steps probed; loss {report.loss_first:.4g} → {report.loss_last:.4g}\n"
    )
    print(probe_table(report))
    print(
        f"\nFindings: {len(report.findings)}"
        + ("" if report.findings else " (none: gradients look healthy).")
    )
    for f in report.findings:
        print(f"  ! {f.title} (step {f.step + 1}): {f.message}\n    → {f.remedy}")
    if fixed is not None:
        if fixed:
            print(f"\nWrote {args.fix} with the suggested fixes:")
            for line in fixed:
                print(f"  {line}")
        else:
            print(f"\nWrote {args.fix} unchanged: no finding suggests a change.")
    return EXIT_OK


def _write_fixed(project, findings, path: str) -> list[str]:
    from studio.fixes import apply_findings
    from studio.projectfile import save_project

    fixed = project.copy()
    changes = apply_findings(fixed, findings)
    fixed.name = Path(path).stem
    try:
        save_project(fixed, path)
    except OSError as err:
        raise StudioError(f"Cannot write '{path}': {err.strerror or err}.") from None
    return changes


def run_lr_find(args) -> int:
    from tqdm import tqdm

    from studio.training.lr_find import find_lr

    project = _load(args)
    bars: list[tqdm] = []  # made at the first step, so building the model is not in its ETA

    def progress(step, steps, lr, loss):
        if not bars:
            bars.append(
                tqdm(
                    total=steps,
                    unit="step",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    disable=args.quiet or args.json,
                    desc=f"{project.name}: learning-rate sweep",
                )
            )
        bars[0].update(step - bars[0].n)
        bars[0].set_postfix({"lr": f"{lr:.2g}", "loss": f"{loss:.4f}"}, refresh=False)

    try:
        result = find_lr(
            project,
            base=Path(args.project).resolve().parent,
            device=args.device,
            start_lr=args.start_lr,
            end_lr=args.end_lr,
            steps=args.steps,
            progress=progress,
        )
    finally:
        for bar in bars:
            bar.close()
    if args.json:
        print(json.dumps({"ok": True, **result.to_dict()}, indent=2))
        return EXIT_OK
    current = project.training["optimizer"]["lr"]
    print(
        f"{project.name}: {len(result.losses)} steps from {result.lrs[0]:.2g} to "
        f"{result.lrs[-1]:.2g} in {result.seconds:.1f} s ({result.stopped})."
    )
    print(result.summary())
    print(
        f"Steepest descent at {result.steepest:.2g}; lowest loss's rate / 10: "
        f"{result.minimum_tenth:.2g}. The project uses {current:g}; to try the suggestion: "
        f"--set training.optimizer.lr={result.suggestion:.2g}"
    )
    return EXIT_OK


def run_evaluate(args) -> int:
    from studio.evaluation import evaluate_run
    from studio.training.runs import Run, RunError, list_runs
    from studio.training.setup import pick_device

    target = Path(args.target)
    if (
        target.suffix == ".json"
        and target.is_file()
        and not (target.parent / "checkpoints").is_dir()
    ):
        name = _load(argparse.Namespace(project=args.target, overrides=[])).name
        rows = [r for r in list_runs(args.out, name) if r["status"] != "running"]
        if not rows:
            raise RunError(
                f"Project '{name}' has no runs in '{args.out}' to evaluate; train it first."
            )
        run = Run.open(args.out, rows[-1]["path"])
    else:
        run = Run.open(args.out, args.target)
    from studio.evaluation import load_for_evaluation, saliency_picture

    loaded = load_for_evaluation(run, args.split, args.checkpoint)  # once, for both
    device = str(pick_device(args.device))
    report = evaluate_run(run, args.split, args.checkpoint, device, loaded)
    if args.saliency is not None:
        path, method, label, origin = saliency_picture(
            run, args.saliency, args.split, args.checkpoint, loaded
        )
        report["saliency"] = {
            "sample": args.saliency,
            "origin": origin,
            "method": method,
            "explains": label,
            "picture": str(path),
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(_evaluation_text(report, run))
    if "saliency" in report:
        sal = report["saliency"]
        name = "Grad-CAM" if sal["method"] == "grad_cam" else "integrated gradients"
        print(
            f"Saliency of sample {sal['sample']} ({sal['origin']}) for class {sal['explains']}"
            f" by {name}: {sal['picture']}"
        )
    return EXIT_OK


def _evaluation_text(report: dict, run) -> str:
    from studio.data.decode import named

    lines = [
        f"{report['project']}, run {report['run']}: {report['samples']:,} {report['split']} "
        f"samples, {report['checkpoint']} weights."
    ]
    if report.get("unreadable"):
        bad = report["unreadable"]
        names = "; ".join(f"{named(u['file'])} ({u['why']})" for u in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        lines.append(f"Left out {len(bad)} file(s) that could not be decoded: {names}{more}.")
    if report["task"] == "regression":
        r = report["residuals"]
        lines.append(
            f"Residuals: mean {r['mean']:.4g}, std {r['std']:.4g}, MAE {r['mae']:.4g}, "
            f"RMSE {r['rmse']:.4g}, max {r['max_abs']:.4g}"
            + (f", R² {r['r2']:.4f}." if r["r2"] is not None else ".")
        )
        return "\n".join(lines)
    top = f", top-5 {report['top5_accuracy']:.2%}" if "top5_accuracy" in report else ""
    lines.append(
        f"Accuracy {report['accuracy']:.2%}{top}; macro F1 {report['macro']['f1']:.3f}, "
        f"weighted F1 {report['weighted']['f1']:.3f}; calibration error (ECE) "
        f"{report['calibration']['ece']:.3f}."
    )
    lines.append(f"{'class':<14} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}")
    for c in report["per_class"]:
        lines.append(
            f"{c['class'][:14]:<14} {c['precision']:>9.3f} {c['recall']:>7.3f} {c['f1']:>6.3f} "
            f"{c['support']:>8}"
        )
    matrix = report["confusion_matrix"]
    width = max(4, *(len(str(v)) + 1 for row in matrix for v in row))
    lines.append("Confusion matrix (rows: true class, columns: predicted):")
    lines.append(" " * 14 + "".join(f"{c[: width - 1]:>{width}}" for c in report["classes"]))
    for name, row in zip(report["classes"], matrix):
        lines.append(f"{name[:13]:<14}" + "".join(f"{v:>{width}}" for v in row))
    wrong = report["confidently_wrong"][:5]
    if wrong:
        lines.append("Most confidently wrong:")
        for w in wrong:
            lines.append(
                f"  {w['origin']}: {w['true']} taken for {w['predicted']} "
                f"({w['confidence']:.0%} sure, loss {w['loss']:.2f})"
            )
    lines.append(f"Saved in {run.path} (evaluation-{report['split']}.json and PNG pictures).")
    return "\n".join(lines)


def run_runs(args) -> int:
    from studio.training.runs import list_runs

    rows = list_runs(args.out, args.project)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"No runs in '{args.out}' yet; `studio train PROJECT` makes one.")
        return EXIT_OK
    from studio.evaluation import headline, load
    from studio.training.experiment import group_rows
    from studio.training.experiment import headline as spread

    print(
        f"{'run':<24} {'project':<22} {'status':<13} {'epochs':>6} {'val acc':>8} {'val loss':>9} {'time':>8} findings  evaluation"
    )

    def line(r: dict, indent: str = "") -> None:
        evaluated = load(Path(r["path"]))
        r["evaluation"] = headline(evaluated) if evaluated else ""
        if r["status"] == "interrupted" and r["resumable"]:
            r["status"] = "interrupted*"
        acc = f"{r['best_val_accuracy']:.2%}" if r["best_val_accuracy"] is not None else ""
        loss = f"{r['best_val_loss']:.4f}" if r["best_val_loss"] is not None else ""
        secs = f"{r['seconds']:.0f}s" if r["seconds"] is not None else ""
        name = indent + r["id"]
        print(
            f"{name:<24} {r['project'][:22]:<22} {r['status']:<13} {r['epochs']:>6} {acc:>8} {loss:>9} {secs:>8} {r['findings']:<9} {r['evaluation']}".rstrip()
        )

    for item in group_rows(rows):
        if item["kind"] == "run":
            line(item)
            continue
        s = item["summary"]
        at = f", scored at each run's best {s['scored_at']}" if s.get("scored_at") else ""
        print(
            f"experiment {item['experiment']}: {s['title']}, {s['runs_done']} of "
            f"{s['runs_planned']} runs finished{at}"
        )
        for metric, words in (
            ("val_accuracy", "validation accuracy"),
            ("val_loss", "validation loss"),
        ):
            if metric in s["metrics"]:
                print(f"  {words} {spread(s['metrics'], metric)}")
        for r in item["runs"]:
            line(r, "  ")
    if any(r["status"] == "interrupted*" for r in rows):
        print("* its process died; `studio train --resume RUN` continues it.")
    return EXIT_OK


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
    report_failed_plugins()
    return EXIT_OK


def report_failed_plugins() -> None:
    """One line on stderr for each plugin that failed to load, of every kind: it was
    skipped, and the studio works without it."""
    from studio.data.augmentations import augmentation_catalog
    from studio.data.datasets import dataset_catalog
    from studio.registry import catalog

    for cat in (catalog(), augmentation_catalog(), dataset_catalog()):
        for source, error in cat.failed_plugins.items():
            print(f"  ! {cat.what} plugin {source} failed to load: {error}", file=sys.stderr)


def run_launch(args) -> int:
    from studio.demo import run_demo, sample_project

    project = args.project or str(sample_project())
    # The window is found through an entry point, so the core never imports the ui package.
    windows = list(entry_points(group="studio.gui"))
    if not windows:
        print(
            "studio: the window is not installed (pip install -e '.[gui]'); running the headless demo."
        )
        return run_demo(project)
    if not _display_available():
        print(
            "studio: no display found (DISPLAY is not set); running the headless demo instead. "
            "Use `xvfb-run -a studio launch` or a desktop session to see the window."
        )
        return run_demo(project)
    try:
        open_window = windows[0].load()
    except ImportError as err:
        print(f"studio: the window cannot start ({err}); running the headless demo.")
        return run_demo(project)
    return open_window([project])


def _display_available() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
