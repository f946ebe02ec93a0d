"""Transfer learning in miniature (after Yosinski et al. 2014), offline on the digits.

    .venv/bin/python benchmarks/transfer_experiment.py [--seeds 3] [--out docs/transfer.md]

Upstream: the digits CNN example (stages conv1, conv2, conv3, dense, then its head) trains
on the digits 0-4. Downstream: a new 5-class head on the digits 5-9, built on the upstream
run with a RunBackbone node, exactly as a person would do it in the studio ("use this
trained model as a backbone"). For each freeze point k, from 0 (nothing frozen) to 4
(everything but the head), three ways to transfer:

  freeze point   stages 1..k copied and frozen, the rest copied and fine-tuned
                 (what the studio's freeze point does)
  AnB            stages 1..k copied and frozen, the rest trained from a fresh start
  AnB+           stages 1..k copied, the rest fresh, everything fine-tuned

plus the same network trained from scratch on the downstream data. Each is run with all
the downstream training data (~720 images) and with little of it (10 images per class),
on several seeds; the table gives the best validation accuracy (mean ± std over seeds) on
the same ~180 validation images. Takes about 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from studio.builder import build_model  # noqa: E402
from studio.data.prepare import PreparedData, Split, prepare_data  # noqa: E402
from studio.document import Edge, Network, Project, parse_node  # noqa: E402
from studio.projectfile import load_project  # noqa: E402
from studio.registry import catalog  # noqa: E402
from studio.training.engine import Trainer  # noqa: E402
from studio.training.session import train  # noqa: E402

UPSTREAM = [0, 1, 2, 3, 4]
DOWNSTREAM = [5, 6, 7, 8, 9]
QUIET = ["training.monitors.enabled=false"]


def upstream_run(runs: Path, epochs: int):
    project = load_project(
        ROOT / "resources/examples/digits_cnn.json",
        [
            f"data.classes={UPSTREAM}",
            "network.nodes.classes.params.units=5",
            f"training.epochs={epochs}",
        ]
        + QUIET,
    )
    project.name = "digits_0_4"
    outcome = train(project, runs_root=runs)
    return project, outcome


def downstream_project(run_folder: Path, freeze: int, epochs: int, seed: int) -> Project:
    cat = catalog()
    network = Network()
    for raw in (
        {"id": "image", "type": "Input", "params": {"shape": [1, 8, 8]}},
        {
            "id": "upstream",
            "type": "RunBackbone",
            "params": {"run": str(run_folder), "freeze_point": freeze},
        },
        {"id": "classes", "type": "Output", "params": {"units": 5}},
    ):
        network.add_node(parse_node(raw, cat, raw["id"]))
    network.add_edge(Edge("image", "upstream"))
    network.add_edge(Edge("upstream", "classes"))
    project = Project(name="digits_5_9", network=network)
    project.data["classes"] = DOWNSTREAM
    project.training.update(epochs=epochs, seed=seed, batch_size=16)
    project.training["monitors"]["enabled"] = False
    return project


def scratch_project(epochs: int, seed: int) -> Project:
    return load_project(
        ROOT / "resources/examples/digits_cnn.json",
        [
            f"data.classes={DOWNSTREAM}",
            "network.nodes.classes.params.units=5",
            f"training.epochs={epochs}",
            f"training.seed={seed}",
            "training.batch_size=16",
        ]
        + QUIET,
    )


def little(data: PreparedData, per_class: int) -> PreparedData:
    """The first `per_class` training images of each class; validation unchanged."""
    keep = torch.cat([torch.nonzero(data.train.y == c)[:per_class, 0] for c in range(5)])
    keep = keep.sort().values
    return PreparedData(
        Split(data.train.x[keep], data.train.y[keep]),
        data.validation,
        data.test,
        data.classes,
        data.sample_shape,
        data.description + f", {per_class} training images per class",
    )


def fresh_start(trainer: Trainer, upstream: Project, first_fresh: int, seed: int) -> None:
    """Give stages from `first_fresh` on the weights a new upstream network would start with."""
    backbone = trainer.model.layers["upstream"].layer
    new = build_model(upstream, seed=10_000 + seed)
    for name in backbone.stage_names[first_fresh:]:
        backbone.net.layers[name].load_state_dict(new.layers[name].state_dict())


def best_accuracy(trainer: Trainer) -> float:
    result = trainer.fit()
    return max(h["val_accuracy"] for h in result.history)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--upstream-epochs", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=15, help="downstream epochs (all data)")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--out", default="", help="write the markdown table here")
    args = parser.parse_args()
    started = time.perf_counter()
    runs = Path(tempfile.mkdtemp(prefix="studio-transfer-"))
    upstream, outcome = upstream_run(runs, args.upstream_epochs)
    up_acc = outcome.result.best.get("val_accuracy") or outcome.result.history[-1]["val_accuracy"]
    print(f"upstream (digits 0-4): best val accuracy {up_acc:.3f}, run {outcome.run.path}")

    base = prepare_data(scratch_project(1, 0).data, (1, 8, 8), seed=0)
    regimes = {"all": base, "little": little(base, args.per_class)}
    # Little data: as many steps as with all of it, so the comparison is per update.
    epochs = {
        "all": args.epochs,
        "little": args.epochs * len(base.train) // len(regimes["little"].train),
    }
    stages = build_model(downstream_project(outcome.run.path, 0, 1, 0)).layers["upstream"]
    names = stages.layer.stage_names
    rows: dict[str, dict[str, list[float]]] = {}

    def record(row: str, column: str, value: float) -> None:
        rows.setdefault(row, {}).setdefault(column, []).append(value)

    for regime, data in regimes.items():
        for seed in range(args.seeds):
            acc = best_accuracy(
                Trainer(scratch_project(epochs[regime], seed), data=data, base=ROOT)
            )
            record("from scratch", regime, acc)
            for k in range(len(names) + 1):
                row = f"{k}: " + ("nothing frozen" if k == 0 else f"{', '.join(names[:k])} frozen")
                for way in ("freeze point", "AnB", "AnB+"):
                    freeze = 0 if way == "AnB+" else k
                    project = downstream_project(outcome.run.path, freeze, epochs[regime], seed)
                    trainer = Trainer(project, data=data, base=ROOT)
                    if way != "freeze point":
                        fresh_start(trainer, upstream, k, seed)
                    record(row, f"{regime} {way}", best_accuracy(trainer))
            print(f"  {regime} data, seed {seed}: done ({time.perf_counter() - started:.0f} s)")

    columns = [f"{r} {w}" for r in regimes for w in ("freeze point", "AnB", "AnB+")]

    def cell(values: list[float] | None) -> str:
        if not values:
            return ""
        mean = statistics.mean(values)
        spread = statistics.pstdev(values) if len(values) > 1 else 0.0
        return f"{mean:.3f} ± {spread:.3f}"

    header = "| freeze point k | " + " | ".join(columns) + " |"
    lines = [header, "|" + " --- |" * (len(columns) + 1)]
    for row, values in rows.items():
        if row == "from scratch":
            cells = [cell(values.get("all")), "", "", cell(values.get("little")), "", ""]
        else:
            cells = [cell(values.get(c)) for c in columns]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    summary = (
        f"Upstream: digits CNN on 0-4, {args.upstream_epochs} epochs, best val accuracy "
        f"{up_acc:.3f}. Downstream: digits 5-9, all data = {len(base.train)} training images "
        f"({epochs['all']} epochs), little = {len(regimes['little'].train)} "
        f"({epochs['little']} epochs); {len(base.validation)} validation images; "
        f"{args.seeds} seeds; best validation accuracy, mean ± std. "
        f"{time.perf_counter() - started:.0f} s."
    )
    print(summary)
    print(table)
    if args.out:
        Path(args.out).write_text(f"{summary}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
