"""The terminal's view of training: a progress bar with ETA, epoch lines and findings."""

from __future__ import annotations

import sys

from tqdm import tqdm

from studio.training import events


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

    def __call__(self, event: events.Event) -> None:
        event = events.typed(event)
        if isinstance(event, events.Fold):  # one run of a k-fold, bootstrap or LOO experiment
            self.fold = event.label
            self.write(f"\n{event.title}: {event.label}")
        elif isinstance(event, events.Start):
            self._start(event)
        elif isinstance(event, events.Download):  # a backbone's weights, before training
            self._download(event)
        elif isinstance(event, events.Pretrained):
            self.write(("warning: " if event.mismatched else "") + event.report)
        elif isinstance(event, events.Steps) and self.bar is not None:
            self.bar.update(len(event.step))
            post = {"epoch": event.epoch + 1, "loss": f"{event.loss[-1]:.4f}"}
            if event.accuracy is not None:
                post["acc"] = f"{event.accuracy[-1]:.3f}"
            self.bar.set_postfix(post, refresh=False)
        elif isinstance(event, events.Epoch):
            self.write(epoch_line(event))
        elif isinstance(event, events.Finding):
            self.write(
                f"! {event.title} (step {event.step + 1}): {event.message}\n  → {event.remedy}"
            )
        elif isinstance(event, events.End) and self.bar is not None:
            self.bar.close()
            self.bar = None

    def _start(self, event: events.Start) -> None:
        self.bar = tqdm(
            total=event.total_steps,
            initial=event.first_step,
            unit="step",
            file=self.stream,
            dynamic_ncols=True,
            disable=self.quiet,
            desc=f"{event.project} ({self.fold})" if self.fold else event.project,
        )
        self.write(
            f"{event.data}\nTraining on {event.device}: {event.trainable_params:,} trainable "
            f"parameters, {event.epochs} epochs of {event.batches_per_epoch} steps, "
            f"loss {event.loss}."
        )
        if self.quiet:  # the data report's notes and skipped files are said regardless
            for line in event.data.splitlines()[1:]:
                print(line, file=self.stream)

    def _download(self, event: events.Download) -> None:
        if self.download_bar is None:
            self.download_bar = tqdm(
                total=event.total or None,
                unit="B",
                unit_scale=True,
                file=self.stream,
                disable=self.quiet,
                desc=f"downloading {event.file}",
            )
        self.download_bar.update(event.done - self.download_bar.n)
        if event.total and event.done >= event.total:
            self.download_bar.close()
            self.download_bar = None

    def write(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream)


def epoch_line(event: events.Epoch) -> str:
    """ "epoch 3/20  loss 0.4123  acc 0.871  val_loss 0.3990  val_acc 0.880  lr 0.001"."""
    m = event.metrics
    parts = [f"epoch {event.epoch}/{event.epochs}", f"loss {m['train_loss']:.4f}"]
    for key, label in (
        ("train_accuracy", "acc"),
        ("val_loss", "val_loss"),
        ("val_accuracy", "val_acc"),
    ):
        if key in m:
            parts.append(f"{label} {m[key]:.{3 if 'acc' in key else 4}f}")
    parts.append(f"lr {m['lr']:.3g}")
    return "  ".join(parts)
