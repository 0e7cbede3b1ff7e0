import pytest
import torch

from hf_supernet.masks import LayerWidthSpace
from hf_supernet.training.sandwich import batch_rows, sandwich_subnets, take_rows

from .conftest import tiny_conformer_config


def test_sandwich_roles_order_and_determinism():
    space = LayerWidthSpace(tiny_conformer_config())
    first = sandwich_subnets(space, 2, torch.Generator().manual_seed(0))
    assert [role for role, _ in first] == ["largest", "smallest", "random", "random"]
    assert first[0][1] == space.largest() and first[1][1] == space.smallest()
    assert first == sandwich_subnets(space, 2, torch.Generator().manual_seed(0))


def _rows(s):
    return list(range(s.start, s.stop))


def test_full_split_gives_everyone_everything():
    assert all(_rows(r) == list(range(8)) for r in batch_rows(8, 4, "full"))


def test_quarter_split_follows_todm():
    rows = batch_rows(8, 4, "quarter")
    assert _rows(rows[0]) == list(range(8))
    assert [_rows(r) for r in rows[1:]] == [[0, 1], [2, 3], [4, 5]]


def test_split_partitions_the_batch():
    rows = batch_rows(10, 4, "split")
    covered = [i for r in rows for i in _rows(r)]
    assert sorted(covered) == list(range(10)) and all(len(_rows(r)) >= 2 for r in rows)


@pytest.mark.parametrize("mode", ["quarter", "split"])
def test_tiny_batches_never_give_a_subnet_no_rows(mode):
    assert all(len(_rows(r)) >= 1 for r in batch_rows(2, 4, mode))


def test_unknown_mode():
    with pytest.raises(ValueError, match="sandwich_batch_split"):
        batch_rows(4, 4, "halves")


def test_take_rows_slices_tensors_only():
    inputs = {"input_features": torch.arange(12).view(4, 3), "labels": torch.arange(4).view(4, 1), "flag": True}
    part = take_rows(inputs, slice(1, 3))
    assert part["input_features"].tolist() == [[3, 4, 5], [6, 7, 8]] and part["flag"] is True
