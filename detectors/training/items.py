"""Training data keyed by (epoch, index): every draw is a function of the seed, never of the run.

A detector's training set maps a key (epoch, index) to a dict of tensors (one item; the
DataLoader stacks items into a batch). `EpochItems` is the base to subclass: it reads the
index-th sample from its references on access and hands `item()` a numpy Generator seeded
by (seed, epoch, index), so augmentations repeat exactly after a resume, with any number of
loader workers, on any number of devices. `EpochSampler` yields those keys in an order
shuffled by (seed, epoch), sharded across DDP ranks.

Lightning's `use_distributed_sampler` would wrap a plain sampler in DistributedSampler,
whose items cannot see the epoch; this sampler shards itself instead.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

# Separate seed streams for the data order and for model-side randomness.
_ORDER, _MODEL = 1, 2
# The loop tags each item with the epoch its key was drawn for (see module.NetworkModule).
EPOCH_KEY = "_epoch"


def model_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed of torch's global RNG at the start of an epoch (dropout, noise in a forward pass)."""
    return int(np.random.SeedSequence([seed, _MODEL, epoch, rank]).generate_state(1, np.uint64)[0]) >> 1


class EpochItems(Dataset):
    """Base training set: `repeat` draws per training sample per epoch, read from `samples` on access.

    Subclasses implement `item(sample, rng) -> dict[str, Tensor]` and draw all randomness
    from `rng`: a fixed key gives the same item in any process."""

    def __init__(self, samples, seed: int, repeat: int = 1):
        self.samples = samples
        self.seed = int(seed)
        self.repeat = int(repeat)

    def __len__(self) -> int:
        return len(self.samples) * self.repeat

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        return self.item(self.samples[index % len(self.samples)], rng)

    def item(self, sample, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class EpochTagged(Dataset):
    """A training set whose items also carry the epoch their key was drawn for."""

    def __init__(self, items: Dataset):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        item = self.items[key]
        if not isinstance(item, dict):
            raise TypeError(f"a training item must be a dict of tensors, got {type(item).__name__}")
        return {**item, EPOCH_KEY: torch.tensor(key[0])}


class EpochSampler(Sampler):
    """Keys (epoch, index) of one epoch: a permutation drawn from (seed, epoch), this rank's share.

    Every rank gets ceil(size / world) keys (the permutation's head repeats to fill the last
    round, as DistributedSampler does), so DDP ranks run the same number of steps.
    The key list is fixed when iteration starts: `epoch` must be right by then."""

    def __init__(self, size: int, seed: int, epoch: int = 0, rank: int = 0, world: int = 1):
        self.size, self.seed, self.epoch, self.rank, self.world = size, int(seed), int(epoch), rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(self.size / self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.random.default_rng([self.seed, _ORDER, self.epoch]).permutation(self.size)
        total = len(self) * self.world
        order = np.resize(order, total)  # repeats the head when size is not a multiple of world
        return iter([(self.epoch, int(i)) for i in order[self.rank::self.world]])
