"""The one LightningModule: any detector's network and loss function, trained the same way.

Detectors never subclass LightningModule (anomalib's torch_model / lightning_model split,
with the Lightning half written once here): they hand over an nn.Module, a loss callable
`loss(network, batch) -> {"loss": scalar, other named parts...}`, a training set of
(epoch, index) keys and a TrainConfig.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from anomalygen.detectors.training.config import TrainConfig
from anomalygen.detectors.training.items import EPOCH_KEY, EpochSampler, EpochTagged, model_seed

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}

# Outcome of a fit, written into trainer.callback_metrics: under ddp_spawn Lightning sends
# that dict (tensors only) from rank 0 back to the main process, which reads it after fit.
EPOCHS, STEPS, BAD_LOSS, BAD_EPOCH, BAD_STEP = "fit/epochs", "fit/steps", "fit/bad_loss", "fit/bad_epoch", "fit/bad_step"


class NetworkModule(pl.LightningModule):
    """Wraps `network` (an nn.Module) and `loss`; owns optimizer, schedule, data loading and seeding."""

    def __init__(self, network: nn.Module, loss: Callable[[nn.Module, dict], dict], items: Dataset,
                 config: TrainConfig, loader_workers: int = 0, identity: dict | None = None):
        super().__init__()
        self.network = network
        self.loss = loss
        self.items = items
        self.config = config
        self.loader_workers = loader_workers
        self.identity = identity or {}
        self.last_parts: dict[str, float] = {}  # the latest step's loss parts (mean over ranks)
        self.stepped = False  # whether the current batch takes an optimizer step
        self.complete_epochs: int | None = None  # known once the restored loop starts
        self._steps_in_epoch = 0

    # -- data -------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        # Lightning creates this loader's iterator (workers prefetch at once) before it calls
        # set_epoch for the first epoch of a fit, and a resumed fit does not create it again:
        # the sampler starts at the epoch the restored loop will run, or that first epoch of a
        # resumed fit would replay epoch 0's keys. training_step checks every batch's epoch.
        epoch = self.trainer.fit_loop.epoch_progress.current.processed
        sampler = EpochSampler(len(self.items), self.config.seed, epoch, self.global_rank, self.trainer.world_size)
        workers = self.loader_workers
        return DataLoader(EpochTagged(self.items), batch_size=self.config.batch_size, sampler=sampler,
                          num_workers=workers, persistent_workers=workers > 0,
                          pin_memory=self.device.type == "cuda",
                          # its own generator: creating an iterator draws a worker base seed, which
                          # must not come from (and shift) the global RNG that model_seed sets
                          generator=torch.Generator().manual_seed(self.config.seed))

    # -- optimization -----------------------------------------------------------------
    def configure_optimizers(self):
        cfg = self.config
        kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
        if cfg.optimizer == "sgd":
            kwargs["momentum"] = cfg.momentum
        optimizer = OPTIMIZERS[cfg.optimizer](self.network.parameters(), **kwargs)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.milestone_epochs(), cfg.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

    # -- the step ---------------------------------------------------------------------
    def on_train_start(self) -> None:
        self.complete_epochs = self.trainer.fit_loop.epoch_progress.current.processed

    def on_train_epoch_start(self) -> None:
        # Model-side randomness is a function of (seed, epoch, rank), not of how many epochs
        # this process has already run: a resumed run draws what an uninterrupted one did.
        torch.manual_seed(model_seed(self.config.seed, self.current_epoch, self.global_rank))
        self._steps_in_epoch = 0

    def training_step(self, batch: dict, batch_idx: int):
        batch = dict(batch)
        drawn_for = batch.pop(EPOCH_KEY)
        if bool((drawn_for != self.current_epoch).any()):
            raise RuntimeError(f"training loop bug: a batch drawn for epoch {int(drawn_for[0])} "
                               f"arrived in epoch {self.current_epoch}")
        self.stepped = False
        parts = self.loss(self.network, batch)
        names = ["loss"] + sorted(k for k in parts if k != "loss")
        values = torch.stack([parts[k].detach().float().reshape(()) for k in names])
        if self.trainer.world_size > 1:  # one collective: every rank sees the same mean and the same NaN
            values = self.trainer.strategy.reduce(values, reduce_op="mean")
        if not bool(torch.isfinite(values).all()):
            self._fail(float(values[0]))
            return self._inert_loss()
        self.last_parts = dict(zip(names, values.tolist()))
        self.stepped = True
        self._steps_in_epoch += 1
        return parts["loss"]

    def _inert_loss(self) -> torch.Tensor:
        """A loss whose gradient is zero for every trainable parameter: this batch still runs the
        backward pass (Lightning refuses to skip a step under DDP, where every rank must join the
        gradient all-reduce), and the fit stops after it. The optimizer's step on zero gradients
        may still move the weights; they are thrown away with the failed fit."""
        return sum(p.sum() for p in self.network.parameters() if p.requires_grad) * 0.0

    def _fail(self, loss: float) -> None:
        m = self.trainer.callback_metrics
        m[BAD_LOSS] = torch.tensor(loss)
        m[BAD_EPOCH] = torch.tensor(self.current_epoch + 1)
        m[BAD_STEP] = torch.tensor(self.global_step + 1)
        self.trainer.should_stop = True

    def epoch_complete(self) -> bool:
        """Whether every batch of the current epoch took its optimizer step (not stopped mid-epoch)."""
        return self._steps_in_epoch == self.trainer.num_training_batches

    def on_train_epoch_end(self) -> None:
        if self.epoch_complete():
            self.complete_epochs += 1

    def on_fit_end(self) -> None:
        if self.complete_epochs is None:  # resumed from a checkpoint that holds every epoch: nothing ran
            self.complete_epochs = self.trainer.fit_loop.epoch_progress.current.processed
        self.trainer.callback_metrics[EPOCHS] = torch.tensor(self.complete_epochs)
        self.trainer.callback_metrics[STEPS] = torch.tensor(self.global_step)

    # -- checkpoints ------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["anomalygen"] = {"train": dataclasses.asdict(self.config), "identity": self.identity,
                                    "items": len(self.items)}
