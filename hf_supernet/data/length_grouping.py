"""Batches of similar length from a dataset whose item lengths are only known once the item is made.

A batch is padded to its longest utterance, so a batch of random lengths (spoken digits with random pauses and
silence around them) spends much of its compute on padding. transformers'
``group_by_length`` / ``LengthGroupedSampler`` removes most of it, but needs every item's length before training:
utterances drawn on the fly (:class:`~hf_supernet.data.ConnectedDigits`) have none until they are drawn.
:class:`LengthGroupedStream` draws them in index order, a group of ``group_batches`` batches at a time, sorts each group
by length, cuts it into batches and yields those batches in a random order: the same "megabatch" idea, applied after
drawing instead of before.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["LengthGroupedStream", "item_length"]


def item_length(item: dict) -> int:
    """Samples of an item's raw audio, else frames of its features, else its ``length`` column."""
    if "audio" in item:
        return len(item["audio"]["array"])
    if "input_features" in item:
        return len(item["input_features"])
    if "length" in item:
        return int(item["length"])
    raise KeyError(f"Cannot tell the length of an item with keys {sorted(item)}: give LengthGroupedStream a length_fn.")


class LengthGroupedStream(torch.utils.data.IterableDataset):
    """Reads a map-style dataset in index order and yields its items so that each run of ``batch_size`` consecutive
    items holds utterances of similar length (give the DataLoader / ``TrainingArguments`` the same batch size).

    Args:
        dataset: a map-style dataset (``len`` and ``[index]``), e.g. :class:`~hf_supernet.data.ConnectedDigits`.
        batch_size (`int`): utterances per batch (per device).
        group_batches (`int`, *optional*, defaults to 16): batches drawn, sorted and cut together. Larger groups pad
            less and hold more utterances in memory at once.
        seed (`int`, *optional*, defaults to 0): seed of the order in which each group's batches are yielded.
        length_fn (*optional*): an item's length (default :func:`item_length`).

    Every item is yielded exactly once per pass, and the same seed gives the same stream. Index order is kept between
    groups, so a curriculum whose stages follow the index (``load_connected_digits(train_on=
    "isolated_then_connected")``) keeps its stages, up to one group at the boundary. With a ``Trainer``, an iterable
    dataset needs ``max_steps``; ``set_epoch`` reaches the wrapped dataset.
    """

    def __init__(self, dataset, batch_size: int, group_batches: int = 16, seed: int = 0, length_fn=item_length):
        if batch_size < 1 or group_batches < 1:
            raise ValueError(f"batch_size and group_batches must be >= 1, got {batch_size} and {group_batches}.")
        self.dataset, self.batch_size, self.group_batches = dataset, int(batch_size), int(group_batches)
        self.seed, self.length_fn, self.epoch = int(seed), length_fn, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.num_workers > 1:
            raise RuntimeError("LengthGroupedStream draws its items in one process: use dataloader_num_workers <= 1.")
        group = self.batch_size * self.group_batches
        for number, start in enumerate(range(0, len(self.dataset), group)):
            items = [self.dataset[i] for i in range(start, min(start + group, len(self.dataset)))]
            order = np.argsort([self.length_fn(item) for item in items], kind="stable")
            batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            # A short last batch stays last, so every batch but the stream's final one is whole.
            whole = len(batches) - (len(batches[-1]) < self.batch_size)
            shuffled = np.random.default_rng([self.seed, self.epoch, number]).permutation(whole)
            for batch in [batches[i] for i in shuffled] + batches[whole:]:
                for index in batch:
                    yield items[index]
