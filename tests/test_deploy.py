"""Deploying a subnet: remote code that loads without hf_supernet, torch.export / ONNX round trips, int8."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCTC, AutoProcessor

from hf_supernet.data import build_processor, train_tokenizer
from hf_supernet.models.conformer import ConformerForCTC, dense_conformer_from_subnet
from hf_supernet.publishing.export import load_deployable, save_deployable

from .conftest import tiny_conformer_config
from .test_dense_conformer import MODELS

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh"]


# Run in a fresh Python where `import hf_supernet` fails, as on a machine that never installed it.
BLOCKED_LOADER = textwrap.dedent(
    """
    import sys

    class BlockHfSupernet:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_supernet" or name.startswith("hf_supernet."):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, BlockHfSupernet())
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCTC, AutoProcessor

    folder, out = sys.argv[1], sys.argv[2]
    try:
        import hf_supernet  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("hf_supernet was importable")
    model = AutoModelForCTC.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    rng = np.random.default_rng(0)
    batch = processor(audio=[rng.normal(0, 0.1, 16000).astype(np.float32), rng.normal(0, 0.1, 9000).astype(np.float32)],
                      sampling_rate=16000)
    with torch.no_grad():
        logits = model(**batch).logits
    text = processor.batch_decode(logits.argmax(-1))
    assert all(isinstance(t, str) for t in text)
    assert not any(m.startswith("hf_supernet") for m in sys.modules)
    tensors = {"logits": logits, "features": batch["input_features"], "mask": batch["attention_mask"]}
    save_file({k: v.contiguous() for k, v in tensors.items()}, out)
    print(type(model).__module__, type(model).__name__, type(processor).__name__)
    """
)


def test_saved_subnet_and_processor_load_as_remote_code_without_hf_supernet(tmp_path):
    model = MODELS["orthosoftmax"]
    from .test_masks_orthosoftmax import set_scores

    set_scores(model.mask, seed=1, frozen=True)
    subnet = model.extract_subnet(model.subnet_space.smallest())  # a SupernetConformerForCTC subnet
    processor = build_processor(train_tokenizer(DIGITS, model_type="char"), feature_size=16)
    folder = tmp_path / "subnet"
    dense = save_deployable(subnet, folder, processor)
    assert type(dense) is ConformerForCTC
    names = {p.name for p in folder.iterdir()}
    assert {"modeling_conformer.py", "configuration_conformer.py", "processing.py", "text.py"} <= names
    script = tmp_path / "load.py"
    script.write_text(BLOCKED_LOADER)
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, str(script), str(folder), str(tmp_path / "out.safetensors")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The classes came from the folder's own files (transformers' dynamic modules), not from hf_supernet.
    assert "transformers_modules" in result.stdout and "ConformerForCTC SupernetSpeechProcessor" in result.stdout
    remote = load_file(tmp_path / "out.safetensors")
    rng = np.random.default_rng(0)  # the loader's audio
    batch = processor(audio=[rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 9000)], sampling_rate=16000)
    torch.testing.assert_close(remote["features"], batch["input_features"], atol=1e-6, rtol=0)
    assert torch.equal(remote["mask"], batch["attention_mask"])
    with torch.no_grad():
        expected = dense(**batch).logits
    torch.testing.assert_close(remote["logits"], expected, atol=1e-5, rtol=0)
    # In this process (hf_supernet imported) the folder loads without trust_remote_code, as the registered classes.
    assert type(AutoModelForCTC.from_pretrained(folder)) is ConformerForCTC
    assert type(AutoProcessor.from_pretrained(folder)) is type(processor)


def test_load_deployable_converts_an_old_subnet_folder(tmp_path):
    model = MODELS["layer_width"]
    spec = model.subnet_space.smallest()
    model.extract_subnet(spec).save_pretrained(tmp_path)
    dense = load_deployable(tmp_path)
    assert type(dense) is ConformerForCTC and not dense.training
    features = torch.randn(1, 40, 16)
    with torch.no_grad(), model.use_subnet(spec):
        torch.testing.assert_close(dense(features).logits, model(features).logits, atol=1e-4, rtol=0)
