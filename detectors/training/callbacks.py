"""Lightning callbacks of the shared loop: checkpoints, time budget, loss curve, progress, quiet logs."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import signal
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ProgressBar, Timer
from tqdm import tqdm

from anomalygen.io import atomic_path
from anomalygen.detectors.training import losscurve

LAST_CHECKPOINT = "last.ckpt"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
IGNORED_WARNINGS = (
    r".*does not have many workers.*",  # the loader's worker count is the engine's setting
    # Lightning 2.6 on torch 2.13: an internal deprecation the user can do nothing about
    r".*isinstance\(treespec, LeafSpec\)",
)


class EpochCheckpoint(Callback):
    """Writes `directory/last.ckpt` (model, optimizer, schedule, loop state) after every complete epoch.

    Lightning's ModelCheckpoint would also write the partial epoch that a time budget or a
    NaN stop leaves, and a fit resumed from a partial epoch cannot repeat the uninterrupted
    one (its data order restarts); here only complete epochs are written, atomically."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not pl_module.epoch_complete():
            return
        path = self.directory / LAST_CHECKPOINT
        if trainer.is_global_zero:
            with atomic_path(path) as tmp:
                trainer.save_checkpoint(tmp)
        else:
            trainer.save_checkpoint(path)  # only rank 0 writes; the others join its barrier


class FitBudget(Timer):
    """Lightning's Timer (stops at a step boundary once `minutes` are spent), counting this fit only:
    a resumed fit gets its full budget, not what the interrupted one left."""

    def __init__(self, minutes: float):
        super().__init__(duration={"seconds": minutes * 60.0}, interval="step", verbose=False)

    def load_state_dict(self, state_dict: dict) -> None:
        pass


class LossLog(Callback):
    """Appends one row per optimizer step to `csv_path` (flushed each epoch) and draws `png_path` at the end.

    Rank 0 writes; the values are the mean over ranks. A resumed fit first drops the rows of
    epochs its checkpoint does not hold, so the CSV matches an uninterrupted fit's."""

    def __init__(self, csv_path: Path, png_path: Path, title: str):
        self.csv_path, self.png_path, self.title = Path(csv_path), Path(png_path), title
        self.rows: list[dict] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        done = trainer.fit_loop.epoch_progress.current.processed
        if done:
            losscurve.keep_epochs(self.csv_path, done)
        else:
            self.csv_path.unlink(missing_ok=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero and pl_module.stepped:
            self.rows.append({"epoch": trainer.current_epoch + 1, "step": trainer.global_step, **pl_module.last_parts})

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        self._flush()

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self._flush()
            losscurve.plot(self.csv_path, self.png_path, self.title)

    def _flush(self) -> None:
        losscurve.append_rows(self.csv_path, self.rows)
        self.rows = []


class RunProgressBar(ProgressBar):
    """One bar for the whole fit (all epochs), so its ETA is the run's; shows epoch and loss."""

    def __init__(self, desc: str):
        super().__init__()
        self.desc = desc
        self.enabled = True
        self.bar: tqdm | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        per_epoch = trainer.num_training_batches
        done = trainer.fit_loop.epoch_progress.current.processed
        total = trainer.max_epochs * per_epoch if math.isfinite(per_epoch) else None
        self.bar = tqdm(total=total, initial=done * per_epoch if total else 0, desc=self.desc, unit="step",
                        disable=not self.enabled, leave=False, dynamic_ncols=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        loss = pl_module.last_parts.get("loss")
        self.bar.set_postfix_str(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
                                 + (f" loss {loss:.4g}" if loss is not None else ""), refresh=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        self.teardown(trainer, pl_module, "fit")

    def teardown(self, trainer: pl.Trainer, pl_module, stage: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EndWithParent(Callback):
    """In each process that ddp_spawn starts: ask the kernel to kill it when the process that started
    the fit ends, so a killed run (SIGKILL cannot be handled) leaves no training processes behind,
    stuck in the rendezvous or a collective and holding memory. Done when the process unpickles the
    Trainer (its first act), as QuietLightning does: a Callback hook would come after the rendezvous,
    where a rank whose peer is gone waits for good."""

    def __init__(self):
        self.parent = os.getpid()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if os.getpid() == self.parent or not sys.platform.startswith("linux"):
            return
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != self.parent:  # the parent ended before the request was made
            os._exit(1)


class QuietLightning(Callback):
    """Keeps Lightning's info lines (accelerator banner, distributed setup, tips) and its warnings
    about things the user cannot change off the console.

    The main process quiets them around a fit (see loop.py); this callback does it
    when it is unpickled, which is how it reaches the processes that ddp_spawn starts (they
    unpickle the Trainer before their first message)."""

    def __init__(self):
        self.level = logging.WARNING  # pickle calls __setstate__ only for an object with state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(self.level)
        for message in IGNORED_WARNINGS:  # a spawned process is ours alone: its filters can change for good
            warnings.filterwarnings("ignore", message=message)
