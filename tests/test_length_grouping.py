import numpy as np
import pytest

from hf_supernet.data import LengthGroupedStream


class RandomLengths:
    """A map-style dataset of items whose lengths are random (as strings drawn on the fly)."""

    def __init__(self, n, seed=0):
        self.lengths = np.random.default_rng(seed).integers(1, 1000, size=n)

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, index):
        return {"id": index, "length": int(self.lengths[index])}


def batches_of(stream, batch_size):
    items = list(stream)
    return [items[i:i + batch_size] for i in range(0, len(items), batch_size)]


def test_every_item_once_in_groups_of_sorted_batches_in_index_order():
    data, batch_size, group_batches = RandomLengths(100), 4, 5
    batches = batches_of(LengthGroupedStream(data, batch_size, group_batches=group_batches, seed=1), batch_size)
    ids = [item["id"] for batch in batches for item in batch]
    assert sorted(ids) == list(range(100))
    group = batch_size * group_batches
    for number in range(5):
        members = batches[number * group_batches:(number + 1) * group_batches]
        # Each group holds the next `group` indices (a curriculum's stages survive) ...
        assert sorted(item["id"] for batch in members for item in batch) == list(range(number * group, (number + 1) * group))
        # ... cut into batches of neighbouring lengths: each batch is a run of the group's sorted lengths.
        sorted_lengths = sorted(int(data.lengths[i]) for i in range(number * group, (number + 1) * group))
        for batch in members:
            lengths = sorted(item["length"] for item in batch)
            start = sorted_lengths.index(lengths[0])
            assert lengths == sorted_lengths[start:start + batch_size]
    # Padding to the longest of each batch wastes much less than batches in index order.
    def padded(batches):
        return sum(max(item["length"] for item in batch) * len(batch) for batch in batches)
    in_order = [[data[i] for i in range(j, j + batch_size)] for j in range(0, 100, batch_size)]
    assert padded(batches) < 0.8 * padded(in_order)


def test_same_seed_same_stream_other_seed_or_epoch_other_order():
    data = RandomLengths(64)
    ids = lambda stream: [item["id"] for item in stream]  # noqa: E731
    first = LengthGroupedStream(data, 4, group_batches=8, seed=0)
    assert ids(first) == ids(LengthGroupedStream(data, 4, group_batches=8, seed=0))
    assert ids(first) != ids(LengthGroupedStream(data, 4, group_batches=8, seed=1))
    again = LengthGroupedStream(data, 4, group_batches=8, seed=0)
    epochs = []
    data.set_epoch = epochs.append  # the wrapped dataset draws other utterances too
    again.set_epoch(1)
    assert epochs == [1]
    assert ids(again) != ids(first) and sorted(ids(again)) == sorted(ids(first))


def test_a_short_last_batch_stays_last_and_bad_arguments_are_refused():
    batches = batches_of(LengthGroupedStream(RandomLengths(10), 4, group_batches=8), 4)
    assert [len(batch) for batch in batches] == [4, 4, 2]
    assert max(b["length"] for b in batches[-1]) >= max(b["length"] for b in batches[0] + batches[1])
    with pytest.raises(ValueError, match="batch_size and group_batches"):
        LengthGroupedStream(RandomLengths(4), 0)
    with pytest.raises(KeyError, match="length_fn"):
        list(LengthGroupedStream([{"text": "one"}], 1))
