"""Training samplers the recipes use (``Trainer._get_train_sampler`` returns one)."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class SortaGradSampler(Sampler):
    """Epoch 0: indices by increasing length (SortaGrad, Amodei et al. 2016); later epochs: a seeded shuffle in
    which every mega-batch of ``50 x batch_size`` is sorted by length (less padding, random batches)."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        n, epoch = len(self.lengths), self.epoch
        self.epoch += 1  # counted here: robust whether or not the loop calls set_epoch
        if epoch == 0:
            return iter(sorted(range(n), key=self.lengths.__getitem__))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch)).tolist()
        mega = 50 * self.batch_size
        chunks = [sorted(order[i : i + mega], key=self.lengths.__getitem__, reverse=True) for i in range(0, n, mega)]
        return iter([i for chunk in chunks for i in chunk])
