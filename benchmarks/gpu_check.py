"""The CUDA path, checked on a machine with a GPU (never part of the tests).

    python benchmarks/gpu_check.py [--out DIR]

What it runs, each in a few seconds:
1. device "auto" picks CUDA; the digits CNN trains in fp32, bf16 and fp16 (fp16 with a
   GradScaler), with accuracy and speed per precision;
2. a run made to diverge stops on the GPU too (the NaN check there is lag-free only up to
   the flush: it reports how many steps after the bad one training stopped);
3. monitors on and off give the same losses on the GPU with deterministic kernels;
4. a model trained on the GPU exports to ONNX and onnxruntime agrees with torch;
5. a ResNet-18 backbone (random weights) fine-tunes on generated 3x64x64 / 224x224 images
   in bf16, with the engine's speed against a hand-written loop on the same batches.
Prints one line per check and a JSON summary (written to DIR/gpu_check.json with --out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from studio.projectfile import load_project  # noqa: E402
from studio.training.engine import Trainer  # noqa: E402

RESULTS: dict = {}


def check(name):
    def wrap(fn):
        def run():
            started = time.perf_counter()
            try:
                RESULTS[name] = {"ok": True, **(fn() or {})}
            except Exception as err:  # keep going: one failure must not hide the others
                RESULTS[name] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
                traceback.print_exc()
            RESULTS[name]["seconds"] = round(time.perf_counter() - started, 2)
            print(
                f"[{'ok' if RESULTS[name]['ok'] else 'FAIL'}] {name}: {RESULTS[name]}", flush=True
            )

        run.__name__ = fn.__name__  # what --only matches
        return run

    return wrap


def example(name: str, *overrides: str):
    return load_project(ROOT / "resources" / "examples" / f"{name}.json", list(overrides))


@check("precisions")
def precisions():
    out = {}
    for precision in ("fp32", "bf16", "fp16"):
        project = example("digits_cnn", "training.epochs=5", f"training.precision={precision}")
        trainer = Trainer(project)
        assert trainer.device.type == "cuda", trainer.device
        result = trainer.fit()
        steps_per_s = result.steps / result.seconds
        out[precision] = {
            "status": result.status,
            "val_accuracy": round(result.history[-1]["val_accuracy"], 4),
            "steps_per_s": round(steps_per_s),
            "autocast": str(trainer.autocast_dtype),
            "grad_scaler": trainer.scaler is not None,
        }
    assert out["fp16"]["grad_scaler"] and not out["bf16"]["grad_scaler"]
    return out


@check("data_on_gpu")
def data_on_gpu():
    """Splits moved to the GPU once vs copied from host memory each step: speed, same losses."""
    import studio.training.engine as engine

    out, losses = {}, {}
    for where in ("host", "gpu"):
        keep = engine.on_device
        if where == "host":
            engine.on_device = lambda data, device: data
        try:
            project = example("digits_cnn", "training.epochs=6", "training.deterministic=true")
            seen, stamps = [], []

            def listen(e, seen=seen, stamps=stamps):
                if e["type"] == "steps":
                    seen.extend(e["loss"].tolist())
                    stamps.append((time.perf_counter(), int(e["step"][-1]), int(e["epoch"])))

            trainer = Trainer(project, listeners=[listen])
            trainer.fit()
        finally:
            engine.on_device = keep
        last = [(t, s) for t, s, e in stamps if e >= 3]
        out[f"{where}_steps_per_s"] = round((last[-1][1] - last[0][1]) / (last[-1][0] - last[0][0]))
        out[f"{where}_data_device"] = str(trainer.data.train.x.device)
        losses[where] = seen
    out["identical_losses"] = losses["host"] == losses["gpu"]
    return out


@check("divergence")
def divergence():
    project = example(
        "digits_cnn",
        "training.epochs=3",
        "training.optimizer.name=sgd",
        "training.optimizer.lr=100",
    )
    events = []
    trainer = Trainer(project, listeners=[events.append])
    result = trainer.fit()
    bad = [e for e in events if e["type"] == "diverged"]
    return {
        "status": result.status,
        "reason": result.reason,
        "steps_run": result.steps,
        "reported_step": bad[0]["step"] if bad else None,
    }


@check("monitors_do_not_change_losses")
def monitors_same():
    def losses(enabled: bool):
        seen = []
        project = example(
            "digits_cnn",
            "training.epochs=1",
            "training.deterministic=true",
            f"training.monitors.enabled={str(enabled).lower()}",
            "training.monitors.budget=0",
        )
        Trainer(
            project,
            listeners=[lambda e: seen.extend(e["loss"].tolist()) if e["type"] == "steps" else None],
        ).fit()
        return seen

    on, off = losses(True), losses(False)
    return {
        "steps": len(on),
        "identical": on == off,
        "max_diff": max(abs(a - b) for a, b in zip(on, off)),
    }


@check("onnx_after_gpu_training")
def onnx_export():
    from studio.export import export_onnx

    project = example("digits_cnn", "training.epochs=2", "training.precision=bf16")
    trainer = Trainer(project)
    trainer.fit()
    path = Path(tempfile.mkdtemp()) / "digits_cnn.onnx"
    report = export_onnx(trainer.model, path)
    return {"report": str(report)[:300], "bytes": path.stat().st_size}


def _backbone_project(size: int, freeze: int):
    from studio.document import Edge, Network, Project, parse_node
    from studio.registry import catalog

    cat = catalog()
    network = Network()
    for raw in (
        {"id": "image", "type": "Input", "params": {"shape": [3, size, size]}},
        {
            "id": "backbone",
            "type": "ResNet18",
            "params": {"weights": "none", "freeze_point": freeze},
        },
        {"id": "head", "type": "Output", "params": {"units": 10}},
    ):
        network.add_node(parse_node(raw, cat, raw["id"]))
    network.add_edge(Edge("image", "backbone"))
    network.add_edge(Edge("backbone", "head"))
    project = Project(name=f"resnet18_{size}", network=network)
    project.training["precision"] = "bf16"
    project.training["batch_size"] = 64
    return project


def _generated(size: int, n: int):
    from studio.data.prepare import PreparedData, Split

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.rand(n, 3, size, size, generator=g) * 0.2
    x[torch.arange(n), y % 3, : size // 2] += 0.5 + y.view(-1, 1, 1).float() / 20
    cut = n * 4 // 5
    return PreparedData(
        Split(x[:cut], y[:cut]),
        Split(x[cut:], y[cut:]),
        Split(x[:0], y[:0]),
        [str(i) for i in range(10)],
        (3, size, size),
        "generated",
    )


@check("resnet18_backbone")
def resnet18():
    from studio.registry import catalog

    if "ResNet18" not in catalog():
        raise RuntimeError("no ResNet18 layer type in this checkout")
    out = {}
    for size, n in ((64, 2560), (224, 1280)):
        data = _generated(size, n)
        for freeze in (0, 5):
            project = _backbone_project(size, freeze)
            project.training["epochs"] = 3
            seen = []  # (time, last step) of each flush; the last epoch gives the steady speed

            def steps(event, seen=seen):
                if event["type"] == "steps":
                    seen.append((time.perf_counter(), int(event["step"][-1]), int(event["epoch"])))

            trainer = Trainer(project, data=data, listeners=[steps])
            result = trainer.fit()
            trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
            last = [(t, s) for t, s, e in seen if e == 2]
            images_s = (last[-1][1] - last[0][1]) * 64 / (last[-1][0] - last[0][0])
            out[f"{size}px_freeze{freeze}"] = {
                "status": result.status,
                "val_accuracy": round(result.history[-1]["val_accuracy"], 3),
                "trainable": trainable,
                "images_per_s": round(images_s),
            }
        # Two phases with gradual unfreezing and discriminative rates, mixup on top.
        project = _backbone_project(size, 2)
        project.training["epochs"] = 4
        project.training["fine_tuning"].update(
            two_phase=True, head_epochs=1, unfreeze_every=1, stage_lr_decay=0.5
        )
        project.data["augmentation"]["mixup"]["enabled"] = True
        project.data["augmentation"]["horizontal_flip"]["enabled"] = True
        phases = []
        trainer = Trainer(
            project,
            data=data,
            listeners=[lambda e, phases=phases: e["type"] == "phase" and phases.append(e)],
        )
        result = trainer.fit()
        out[f"{size}px_two_phase_gradual_mixup"] = {
            "status": result.status,
            "val_accuracy": round(result.history[-1]["val_accuracy"], 3),
            "phases": [(e["epoch"], e["label"]) for e in phases],
            "final_lrs": [round(g["lr"], 7) for g in trainer.optimizer.param_groups],
        }
        # A hand-written bf16 loop over the same batches, for the engine's overhead.
        project = _backbone_project(size, 0)
        trainer = Trainer(project, data=data)
        model, opt = trainer.model, trainer.optimizer
        loss_fn = torch.nn.CrossEntropyLoss()
        for _round in range(2):  # the first round warms up
            torch.cuda.synchronize()
            started, steps = time.perf_counter(), 0
            for x, y in trainer.batches.epoch():
                x, y = x.cuda(non_blocking=True), y.cuda(non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = loss_fn(model(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
            torch.cuda.synchronize()
        out[f"{size}px_raw_loop_images_per_s"] = round(steps * 64 / (time.perf_counter() - started))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="")
    parser.add_argument("--only", default="", help="comma-separated check names")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    RESULTS["device"] = torch.cuda.get_device_name()
    checks = [data_on_gpu, precisions, divergence, monitors_same, onnx_export, resnet18]
    only = set(filter(None, args.only.split(",")))
    for run in checks:
        if not only or run.__name__ in only:
            run()
    text = json.dumps(RESULTS, indent=1, default=str)
    print(text)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.json").write_text(text)
    return 0 if all(r.get("ok", True) for r in RESULTS.values() if isinstance(r, dict)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
