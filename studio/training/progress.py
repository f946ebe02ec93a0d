"""The terminal's view of training: a progress bar with ETA, epoch lines and findings."""

from __future__ import annotations

import sys

from tqdm import tqdm


class ProgressPrinter:
    """A listener that draws a tqdm bar from step events and prints epochs and findings.

    Quiet, it prints only what the person must not miss: the data report's notes and
    skipped files (every line of it after the first)."""

    def __init__(self, stream=None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bar: tqdm | None = None
        self.download_bar: tqdm | None = None
        self.fold = ""  # "fold 2 of 5" while an experiment's run trains

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        if kind == "fold":  # one run of a k-fold, bootstrap or leave-one-out experiment
            self.fold = event["label"]
            self.write(f"\n{event['title']}: {event['label']}")
        elif kind == "start":
            self.bar = tqdm(
                total=event["total_steps"],
                initial=event["first_step"],
                unit="step",
                file=self.stream,
                dynamic_ncols=True,
                disable=self.quiet,
                desc=f"{event['project']} ({self.fold})" if self.fold else event["project"],
            )
            self.write(
                f"{event['data']}\nTraining on {event['device']}: {event['trainable_params']:,} trainable "
                f"parameters, {event['epochs']} epochs of {event['batches_per_epoch']} steps, loss {event['loss']}."
            )
            if self.quiet:  # the data report's notes and skipped files are said regardless
                for line in event["data"].splitlines()[1:]:
                    print(line, file=self.stream)
        elif kind == "download":  # a backbone's weights, before training starts
            if self.download_bar is None:
                self.download_bar = tqdm(
                    total=event["total"] or None,
                    unit="B",
                    unit_scale=True,
                    file=self.stream,
                    disable=self.quiet,
                    desc=f"downloading {event['file']}",
                )
            self.download_bar.update(event["done"] - self.download_bar.n)
            if event["total"] and event["done"] >= event["total"]:
                self.download_bar.close()
                self.download_bar = None
        elif kind == "pretrained":
            self.write(("warning: " if event["mismatched"] else "") + event["report"])
        elif kind == "steps" and self.bar is not None:
            self.bar.update(len(event["step"]))
            post = {"epoch": event["epoch"] + 1, "loss": f"{event['loss'][-1]:.4f}"}
            if event.get("accuracy") is not None:
                post["acc"] = f"{event['accuracy'][-1]:.3f}"
            self.bar.set_postfix(post, refresh=False)
        elif kind == "epoch":
            parts = [f"epoch {event['epoch']}/{event['epochs']}", f"loss {event['train_loss']:.4f}"]
            if "train_accuracy" in event:
                parts.append(f"acc {event['train_accuracy']:.3f}")
            if "val_loss" in event:
                parts.append(f"val_loss {event['val_loss']:.4f}")
            if "val_accuracy" in event:
                parts.append(f"val_acc {event['val_accuracy']:.3f}")
            parts.append(f"lr {event['lr']:.3g}")
            self.write("  ".join(parts))
        elif kind == "finding":
            self.write(
                f"! {event['title']} (step {event['step'] + 1}): {event['message']}\n  → {event['remedy']}"
            )
        elif kind == "end" and self.bar is not None:
            self.bar.close()
            self.bar = None

    def write(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream)
