"""A prompt sampler whose order depends only on (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Yields a fresh seeded permutation per epoch, starting ``skip_batches`` batches into the run.

    TRL's PPO loop re-creates its dataloader iterator once per epoch (and drops the last partial
    batch); this sampler counts those passes itself, so skipping the batches already trained on
    reproduces the uninterrupted order exactly.
    """

    def __init__(self, size: int, batch_size: int, seed: int, skip_batches: int = 0) -> None:
        batches_per_epoch = size // batch_size
        if batches_per_epoch == 0:
            raise ValueError(f"{size} prompts cannot fill one batch of {batch_size}")
        self.size = size
        self.seed = seed
        self.epoch, batch_offset = divmod(skip_batches, batches_per_epoch)
        self.offset = batch_offset * batch_size

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        start, self.offset = self.offset, 0
        self.epoch += 1
        yield from order[start:]
