import os
import subprocess
import sys
import tempfile
import textwrap

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


def old_style_subnet(dense):
    """``dense`` (a ``ConformerForCTC`` from ``extract_subnet``) as the ``SupernetConformerForCTC`` of one architecture
    that ``extract_subnet`` returned before subnets extracted to the plain dense model: same weights and module
    names, the supernet config with a space of one subnet (what older subnet checkpoints on disk hold)."""
    values = {k: v for k, v in dense.config.to_dict().items() if k in SupernetConformerConfig.__annotations__}
    values.update(mask_type="layer_width", layer_drop_choices=[0], ffn_width_choices=[1.0])
    old = SupernetConformerForCTC(SupernetConformerConfig(**values))
    old.load_state_dict(dense.state_dict(), strict=True)
    return old.train(dense.training)


# Prepended to a script run in a fresh Python: ``import hf_supernet`` fails there, as on a machine that never installed
# it (hf_supernet may be installed in this environment; the blocker hides it).
BLOCK_HF_SUPERNET = textwrap.dedent(
    """
    import sys

    class BlockHfSupernet:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_supernet" or name.startswith("hf_supernet."):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, BlockHfSupernet())
    try:
        import hf_supernet  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("hf_supernet was importable")
    """
)


def run_without_hf_supernet(script: str, args, tmp_path, cwd=None) -> subprocess.CompletedProcess:
    """Run ``script`` (Python source) with ``args`` in a fresh Python where hf_supernet cannot be imported: offline,
    with its own transformers remote-code cache under ``tmp_path`` (never the user's)."""
    path = tmp_path / "without_hf_supernet.py"
    path.write_text(BLOCK_HF_SUPERNET + textwrap.dedent(script))
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONPATH="")
    return subprocess.run(
        [sys.executable, str(path), *map(str, args)],
        cwd=cwd or tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )


def flip_a_weight_bit(path) -> None:
    """Flip one bit of a tensor byte (past the safetensors header), as a bad disk or copy would."""
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header + (len(data) - header) // 2] ^= 0x10
    path.write_bytes(bytes(data))
