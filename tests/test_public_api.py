"""The top-level API: registered on import, the rest imported on first use (as transformers does)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return the JSON it prints last."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_registers_the_auto_classes_without_peft_or_the_trainer(record_property):
    found = run_python(
        "import json, sys, time\n"
        "start = time.perf_counter()\n"
        "import hf_supernet\n"
        "seconds = time.perf_counter() - start\n"
        "from transformers import AutoConfig\n"
        "loaded = [m for m in ('peft', 'transformers.trainer', 'datasets', 'evaluate') if m in sys.modules]\n"
        "types = [type(AutoConfig.for_model(t)).__name__ for t in ('supernet_conformer', 'foldable_wav2vec2')]\n"
        "print(json.dumps({'loaded': loaded, 'configs': types, 'seconds': seconds}))\n"
    )
    # The time depends on the machine and its load (transformers' modeling_utils dominates): a note, not a limit.
    record_property("import_hf_supernet_seconds", round(found["seconds"], 2))
    assert found["loaded"] == []
    assert found["configs"] == ["SupernetConformerConfig", "FoldableWav2Vec2Config"]


def test_public_names_resolve_on_first_use():
    import hf_supernet

    from hf_supernet import SupernetTrainer, SupernetTrainingArguments
    from hf_supernet.training import SupernetTrainer as trainer_class

    assert SupernetTrainer is trainer_class and SupernetTrainingArguments.__name__ == "SupernetTrainingArguments"
    for name in hf_supernet.__all__:
        assert getattr(hf_supernet, name) is not None, name
    assert hf_supernet.data.load_speech_dataset is hf_supernet.load_speech_dataset  # submodules too
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        hf_supernet.not_a_name


def test_default_lora_targets_are_registered_when_peft_is_imported_after_hf_supernet():
    found = run_python(
        "import json, sys\n"
        "import hf_supernet\n"
        "before = 'peft' in sys.modules\n"
        "from peft import LoraConfig, get_peft_model\n"
        "config = hf_supernet.SupernetConformerConfig(num_mel_bins=16, subsampling_conv_channels=8, hidden_size=32,\n"
        "    num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, conv_kernel_size=5, vocab_size=12)\n"
        "model = get_peft_model(hf_supernet.SupernetConformerForCTC(config), LoraConfig(r=2))\n"
        "adapted = sorted({n.rsplit('.', 1)[-1] for n, m in model.named_modules() if hasattr(m, 'lora_A')})\n"
        "print(json.dumps({'peft_before': before, 'adapted': adapted}))\n"
    )
    assert not found["peft_before"]
    assert found["adapted"] == sorted(["q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"])


def test_every_supernet_family_returns_the_one_ctc_output_type():
    """One role, one type: the Conformer supernet and the foldable models return SupernetCTCOutput."""
    import torch

    import hf_supernet
    from hf_supernet.models.foldable import FoldableCTCOutput
    from hf_supernet.models.supernet_conformer import SupernetConformerCTCOutput

    assert SupernetConformerCTCOutput is FoldableCTCOutput is hf_supernet.SupernetCTCOutput
    config = hf_supernet.SupernetConformerConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                                 intermediate_size=32, subsampling_conv_channels=8, vocab_size=6)
    model = hf_supernet.SupernetConformerForCTC(config).eval()
    out = model(torch.randn(1, 40, config.num_mel_bins))
    assert type(out) is hf_supernet.SupernetCTCOutput and out.output_attention_mask.dtype == torch.bool
