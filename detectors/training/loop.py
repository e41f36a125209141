"""The shared training loop: one call trains any detector's network with Lightning's Trainer.

    result = fit_network(network, items, loss, config, options, device, stage="pretrain")

Why the Trainer and not Fabric: everything this loop promises is a Trainer feature that
Fabric would leave to hand-written code: full-state checkpoints and `ckpt_path` resume
(model, optimizer, LR schedule, loop counters), the step-boundary time budget (Timer),
precision plugins (bf16 autocast: FitOptions.precision), DDP strategies with their launchers and the
return of rank 0's weights to the caller's process, gradient clipping and deterministic
mode. With Fabric the epoch loop, its restart bookkeeping and the budget check would be
ours to write and to get right; here the only loop-shaped code is Lightning's.

What the loop adds: data keyed by (epoch, index) (items.py), per-epoch reseeding, a
checkpoint after every complete epoch only, one progress bar for the whole run, the loss
curve (loss.csv / loss.png) and one clear error when the loss stops being finite.

Files, under FitOptions.workdir (a temporary folder when none is given):
    checkpoints[/<stage>]/last.ckpt   the latest complete epoch; FitOptions.resume continues from it
    loss[-<stage>].csv, loss[-<stage>].png
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerStatus
from torch import nn
from torch.utils.data import Dataset

from anomalygen.errors import AnomalygenError, Terminated
from anomalygen.detectors.base import FitOptions, mixed_precision
from anomalygen.detectors.stored import load_torch, reading
from anomalygen.detectors.training.callbacks import (IGNORED_WARNINGS, LAST_CHECKPOINT, LIGHTNING_LOGGERS, EndWithParent,
                                                     EpochCheckpoint, FitBudget, LossLog, QuietLightning, RunProgressBar)
from anomalygen.detectors.training.config import TrainConfig
from anomalygen.detectors.training.module import BAD_EPOCH, BAD_LOSS, BAD_STEP, EPOCHS, STEPS, NetworkModule

MAX_MINUTES = "max_minutes"


@dataclass
class TrainingResult:
    """How a fit ended. epochs: complete epochs (including those before a resume); steps: optimizer
    steps; stopped: None when every epoch ran, "max_minutes" when the time budget ended it;
    resumed_from: the complete epochs the fit started from (0 = from scratch)."""

    epochs: int
    steps: int
    stopped: str | None = None
    resumed_from: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def fit_network(network: nn.Module, items: Dataset, loss: Callable[[nn.Module, dict], dict], config: TrainConfig,
                options: FitOptions, device: torch.device, stage: str = "", identity: dict | None = None,
                settings_key: str = "train") -> TrainingResult:
    """Train `network` in place on `items` (keys (epoch, index) -> dict of tensors) minimizing
    `loss(network, batch)["loss"]`.

    stage         names this training stage: its checkpoints go to checkpoints/<stage>/ and its
                  curve to loss-<stage>.csv/png, so a detector can pretrain and then fine-tune
    identity      plain data naming what is trained (detector, settings); a checkpoint written
                  for another identity or TrainConfig is refused on resume
    settings_key  where `config` lives in the recipe, for messages ("patchae.train")
    Under ddp_spawn (devices > 1) the network, loss and items are pickled into the workers
    and rank 0's weights come back into `network`; keep `loss` a module-level function."""
    identity = identity or {}
    task = options.task or "training"
    where = f"{task} {stage}".strip()
    if options.devices < 1:
        raise AnomalygenError(f"devices must be at least 1, got {options.devices}")
    with _workdir(options.workdir) as workdir:
        suffix = f"-{stage}" if stage else ""
        ckpt_dir = workdir / "checkpoints" / stage if stage else workdir / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        resume_from, resumed_epochs = _resume_checkpoint(ckpt_dir / LAST_CHECKPOINT, options.resume, config,
                                                         identity, len(items))
        accelerator, devices = _placement(device, options.devices)
        module = NetworkModule(network, loss, items, config, options.loader_workers, identity)
        callbacks: list[pl.Callback] = [
            QuietLightning(),
            LossLog(workdir / f"loss{suffix}.csv", workdir / f"loss{suffix}.png", f"{where}: training loss"),
            EpochCheckpoint(ckpt_dir),  # after LossLog: a checkpoint never holds epochs the CSV lacks
        ]
        if options.devices > 1:
            callbacks.append(EndWithParent())
        if options.max_minutes is not None:
            callbacks.append(FitBudget(options.max_minutes))
        if options.progress:
            callbacks.append(RunProgressBar(f"train {where}"))
        cuda = accelerator == "cuda"
        with _quiet_lightning(), _restore_torch_flags(), torch.random.fork_rng(devices=devices if cuda else []):
            trainer = pl.Trainer(
                accelerator=accelerator, devices=devices,
                strategy="ddp_spawn" if options.devices > 1 else "auto",
                precision="bf16-mixed" if mixed_precision(options.precision, torch.device(accelerator)) else "32-true",
                max_epochs=config.epochs, gradient_clip_val=config.grad_clip,
                # bit-identical weights for a seed on CPU; CUDA keeps its fast (nondeterministic) kernels
                deterministic=True if not cuda else None,
                use_distributed_sampler=False,  # EpochSampler shards by rank itself
                callbacks=callbacks, enable_progress_bar=options.progress, enable_checkpointing=False,
                logger=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                default_root_dir=workdir)
            _fit(trainer, module, resume_from)
    metrics = trainer.callback_metrics
    if BAD_LOSS in metrics:
        raise AnomalygenError(
            f"{where}: the training loss became {float(metrics[BAD_LOSS])} at epoch {int(metrics[BAD_EPOCH])}, "
            f"step {int(metrics[BAD_STEP])}; try a lower learning rate ({settings_key}.lr = {config.lr:g}) "
            f"or gradient clipping ({settings_key}.grad_clip)")
    epochs = int(metrics[EPOCHS])
    return TrainingResult(epochs=epochs, steps=int(metrics[STEPS]),
                          stopped=MAX_MINUTES if epochs < config.epochs else None,
                          resumed_from=resumed_epochs)


def _terminate(signum, frame) -> None:
    raise Terminated(f"terminated by signal {signum}")


def _fit(trainer: pl.Trainer, module: NetworkModule, ckpt_path: str | None) -> None:
    """trainer.fit, except for Ctrl+C and SIGTERM: Lightning answers Ctrl+C by ignoring SIGINT from then
    on and exiting the process (sys.exit(1)), and SIGTERM by stopping at the end of the running step,
    which can take minutes for a large network on a CPU. A fit is a library call: Ctrl+C raises
    KeyboardInterrupt and SIGTERM `Terminated` (a KeyboardInterrupt) at once, mid-step, and both
    handlers are left as they were (the complete epochs stay resumable)."""
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    terminated = []
    if main_thread:  # Lightning calls the handler it finds after its own (it kills DDP workers first)
        signal.signal(signal.SIGTERM, lambda signum, frame: (terminated.append(signum), _terminate(signum, frame)))
    try:
        trainer.fit(module, ckpt_path=ckpt_path)
    except SystemExit:
        if trainer.state.status == TrainerStatus.INTERRUPTED:
            raise (Terminated(f"terminated by signal {terminated[0]}") if terminated else KeyboardInterrupt()) from None
        raise
    finally:
        for s, handler in handlers.items():
            if handler is not None:
                signal.signal(s, handler)


@contextlib.contextmanager
def _workdir(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        yield Path(workdir)
        return
    with tempfile.TemporaryDirectory(prefix="anomalygen-fit-") as tmp:
        yield Path(tmp)


def _placement(device: torch.device, n: int) -> tuple[str, int | list[int]]:
    """Lightning's accelerator and devices for the detector's device and FitOptions.devices."""
    if device.type == "cuda":
        first = device.index or 0
        available = torch.cuda.device_count()
        if first + n > available:
            raise AnomalygenError(f"devices={n} from {device} needs {first + n} CUDA GPUs, {available} available")
        return "cuda", list(range(first, first + n))
    if device.type != "cpu":
        raise AnomalygenError(f"training on {device.type} is not supported; use cpu or cuda")
    return "cpu", n  # n > 1: that many CPU processes, gloo backend


def _resume_checkpoint(path: Path, resume: bool, config: TrainConfig, identity: dict,
                       n_items: int) -> tuple[str | None, int]:
    """(the checkpoint to resume from, its complete epochs); (None, 0) to start over (resume off, or
    nothing saved yet)."""
    if not resume or not path.is_file():
        return None, 0
    checkpoint = load_torch(path, "checkpoint", mmap=True)
    with reading(path, "checkpoint"):  # a torch file of another kind
        saved = checkpoint.get("anomalygen", {})
        epochs = int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    now = {"train": dataclasses.asdict(config), "identity": identity, "items": n_items}
    changed = sorted(k for k in now if saved.get(k) != now[k])
    if changed:
        raise AnomalygenError(f"{path}: written by a fit with other {' and '.join(changed)} than this one; "
                              "resume with the same settings and training data, or train without resume to start over")
    return str(path), epochs


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's info lines and IGNORED_WARNINGS stay off the console during a fit (restored after)."""
    loggers = [logging.getLogger(n) for n in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in IGNORED_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _restore_torch_flags():
    """The Trainer sets process-wide determinism flags; scoring after a fit gets the caller's back."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark = before[2]
        if before[3] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = before[3]
