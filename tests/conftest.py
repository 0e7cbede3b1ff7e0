import os
import tempfile

# Nothing in the test suite may reach the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Latency tables measured by tests (tiny models, a loaded machine) must not land in the user's cache.
os.environ.setdefault("HF_SUPERNET_CACHE", tempfile.mkdtemp(prefix="hf_supernet_test_cache_"))

import socket  # noqa: E402
import textwrap  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC  # noqa: E402

# Test models are tiny: one intra-op thread is faster than two fighting over small matmuls (and over the CPU with
# whatever else runs on the machine), by 10x or more on 2 cores.
torch.set_num_threads(1)


def tiny_conformer_config(**overrides) -> SupernetConformerConfig:
    """A Conformer small enough for hundreds of forward passes per test."""
    values = dict(
        num_mel_bins=16,
        subsampling_conv_channels=8,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        conv_kernel_size=5,
        vocab_size=12,
    )
    values.update(overrides)
    return SupernetConformerConfig(**values)


# The first lines of a script run in a fresh Python where `import hf_supernet` fails, as on a machine that never
# installed it (tests of what loads without hf_supernet append their body).
BLOCK_HF_SUPERNET = textwrap.dedent(
    """
    import sys

    class BlockHfSupernet:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_supernet" or name.startswith("hf_supernet."):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, BlockHfSupernet())
    """
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test: everything must work offline (subprocesses, such as the
    2-process training test, are not affected)."""
    local_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address}")
        return local_connect(sock, address)  # unix sockets: datasets' worker processes talk over them

    def refuse(address, *args, **kwargs):
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def tiny_config():
    return tiny_conformer_config()


@pytest.fixture
def tiny_model(tiny_config):
    torch.manual_seed(0)
    return SupernetConformerForCTC(tiny_config).eval()


def padded_batch(lengths, num_mel_bins=16, seed=0):
    """Random features for utterances of ``lengths`` frames, zero-padded, with their attention mask."""
    gen = torch.Generator().manual_seed(seed)
    frames = max(lengths)
    features = torch.randn(len(lengths), frames, num_mel_bins, generator=gen)
    mask = (torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]).long()
    return features * mask[..., None], mask


def assert_extraction_matches(model, spec, features, attention_mask):
    """The core promise, checked: ``model.extract_subnet(spec)`` gives the logits of the supernet run as ``spec`` on
    every valid frame (<= 1e-4), with the same valid frames. Returns ``(dense, masked_outputs)`` for further checks."""
    with torch.no_grad(), model.use_subnet(spec):
        masked = model(features, attention_mask=attention_mask)
    dense = model.extract_subnet(spec)
    with torch.no_grad():
        extracted = dense(features, attention_mask=attention_mask)
    valid = masked.output_attention_mask
    assert torch.equal(valid, extracted.output_attention_mask)
    torch.testing.assert_close(extracted.logits[valid], masked.logits[valid], atol=1e-4, rtol=0)
    return dense, masked
