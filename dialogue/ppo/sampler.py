"""A prompt sampler whose order depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Yields a fresh seeded permutation per epoch, starting ``skip_batches`` global batches into the run.

    TRL's PPO loop re-creates its dataloader iterator once per epoch (and drops the last partial
    batch); this sampler counts those passes itself, so skipping the batches already trained on
    reproduces the uninterrupted order exactly.

    With ``num_replicas`` ranks a global batch is ``batch_size * num_replicas`` consecutive prompts of the
    permutation and rank ``rank`` takes its own ``batch_size`` slice of each, so one PPO update consumes one
    global batch on every rank at once (every rank draws the same permutation: no sampler state to share).
    """

    def __init__(self, size: int, batch_size: int, seed: int, skip_batches: int = 0, num_replicas: int = 1,
                 rank: int = 0) -> None:
        global_batch = batch_size * num_replicas
        batches_per_epoch = size // global_batch
        if batches_per_epoch == 0:
            raise ValueError(f"{size} prompts cannot fill one batch of {batch_size} x {num_replicas} processes")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.size = size
        self.seed = seed
        self.batch_size = batch_size
        self.rank = rank
        self.global_batch = global_batch
        self.batches_per_epoch = batches_per_epoch
        self.epoch, self.offset = divmod(skip_batches, batches_per_epoch)

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        start, self.offset = self.offset, 0
        self.epoch += 1
        for batch in range(start, self.batches_per_epoch):
            first = batch * self.global_batch + self.rank * self.batch_size
            yield from order[first:first + self.batch_size]
