"""Block-sparse storage: smaller files where blocks are zero, identical models after loading, no growth otherwise."""

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_supernet import ConformerForCTC, OmniSparsitySpec, SupernetConformerForCTC, load_sparse, save_sparse, storage_report
from hf_supernet.sparse_storage import SPARSE_WEIGHTS_NAME, from_block_sparse, to_block_sparse

from .conftest import padded_batch, tiny_conformer_config

torch.manual_seed(0)
SUPERNET = SupernetConformerForCTC(tiny_conformer_config(mask_type="omni_sparsity", intermediate_size=128)).eval()


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 20),
    cols=st.integers(1, 20),
    block=st.sampled_from([(8, 1), (1, 8), (4, 4), (1, 1)]),
    keep=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_block_sparse_round_trip_is_exact(rows, cols, block, keep, seed):
    gen = torch.Generator().manual_seed(seed)
    dense = torch.randn(rows, cols, generator=gen) * (torch.rand(rows, cols, generator=gen) < keep)
    parts = to_block_sparse(dense, block)
    assert torch.equal(from_block_sparse(parts, (rows, cols), block), dense)
    assert parts["crow_indices"][-1] == parts["values"].shape[0] == parts["col_indices"].numel()


@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_sparse_file_is_smaller_and_loads_to_identical_logits(tmp_path, sparsity):
    spec = OmniSparsitySpec((sparsity,) * 4)
    dense = SUPERNET.extract_subnet(spec)
    dense.save_pretrained(tmp_path / "dense")
    report = save_sparse(dense, tmp_path / "sparse")
    dense_bytes = os.path.getsize(tmp_path / "dense" / "model.safetensors")
    sparse_bytes = os.path.getsize(tmp_path / "sparse" / SPARSE_WEIGHTS_NAME)
    assert sparse_bytes < (0.75 if sparsity == 0.8 else 0.9) * dense_bytes
    assert report.sparse_bytes < report.dense_bytes
    # Every prunable matrix (10 per layer) and only those go sparse.
    assert len(report.sparse_tensors) == 40 and all(".layers." in n for n in report.sparse_tensors)
    # True nonzero parameters are what the costs say; int8 with indices is between nonzero and dense.
    assert report.nonzero_params == SUPERNET.subnet_costs(spec).params < report.params
    assert report.nonzero_params < report.int8_sparse_bytes < report.int8_dense_bytes == report.params

    loaded = load_sparse(tmp_path / "sparse")
    assert type(loaded) is ConformerForCTC and not loaded.training
    assert report.block_shape == (8, 1) and loaded.config.sparsity_block_shape == [8, 1]
    features, mask = padded_batch([30, 17])
    with torch.no_grad():
        torch.testing.assert_close(loaded(features, mask).logits, dense(features, mask).logits, rtol=0, atol=0)


def test_dense_subnet_is_stored_dense(tmp_path):
    dense = SUPERNET.extract_subnet(SUPERNET.subnet_space.largest())
    report = save_sparse(dense, tmp_path)
    assert report.sparse_tensors == () and report.sparse_bytes == report.dense_bytes
    assert report.int8_sparse_bytes == report.int8_dense_bytes
    features, mask = padded_batch([25])
    loaded = load_sparse(tmp_path)
    torch.testing.assert_close(loaded(features, mask).logits, dense(features, mask).logits, rtol=0, atol=0)


def test_load_sparse_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_sparse"):
        load_sparse(tmp_path)
    with pytest.raises(ValueError, match="block_shape"):
        storage_report(SUPERNET, block_shape=(8,))


def test_an_interrupted_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import hf_supernet.sparse_storage as storage

    small = SUPERNET.extract_subnet(OmniSparsitySpec((0.8,) * 4))
    save_sparse(small, tmp_path)
    before = (tmp_path / SPARSE_WEIGHTS_NAME).read_bytes()

    def crash(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(storage, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_sparse(SUPERNET.extract_subnet(OmniSparsitySpec((0.5,) * 4)), tmp_path)
    assert (tmp_path / SPARSE_WEIGHTS_NAME).read_bytes() == before
    # The dense config travels with its own code (remote code), as save_pretrained writes it.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.json", "configuration_conformer.py", SPARSE_WEIGHTS_NAME])


def test_the_block_shape_recorded_at_extraction_is_the_one_stored_by(tmp_path):
    """An extracted subnet no longer has the supernet's omni_sparsity config: its config records the block shape
    the pruning used, and block-sparse storage stores by it (a 1x8 block is not an 8x1 one)."""
    torch.manual_seed(0)
    supernet = SupernetConformerForCTC(
        tiny_conformer_config(mask_type="omni_sparsity", intermediate_size=128, omni_sparsity_block_shape=[1, 8])
    ).eval()
    dense = supernet.extract_subnet(OmniSparsitySpec((0.8,) * 4))
    assert dense.config.sparsity_block_shape == [1, 8]
    assert SUPERNET.extract_subnet(SUPERNET.subnet_space.largest()).config.sparsity_block_shape is None  # no zeros
    report = save_sparse(dense, tmp_path)
    assert report.block_shape == (1, 8) and len(report.sparse_tensors) == 40
    assert storage_report(dense, block_shape=(8, 1)).sparse_bytes > report.sparse_bytes  # the wrong shape stores worse
    features, mask = padded_batch([22, 31])
    with torch.no_grad():
        torch.testing.assert_close(load_sparse(tmp_path)(features, mask).logits, dense(features, mask).logits, rtol=0, atol=0)
