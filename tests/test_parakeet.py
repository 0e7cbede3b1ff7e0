"""Parakeet in, stock Parakeet out: a transformers ParakeetForCTC made elastic (``from_parakeet``) computes the source's
logits, and its subnets extract to stock ParakeetForCTC models equal to the masked supernet that load without
hf_supernet."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import (
    AutoModelForCTC,
    AutoProcessor,
    ParakeetCTCConfig,
    ParakeetEncoder,
    ParakeetEncoderConfig,
    ParakeetForCTC,
    ParakeetProcessor,
)

from hf_supernet import LayerWidthSpec, OmniSparsitySpec, SupernetConformerConfig, SupernetConformerForCTC
from hf_supernet.data import build_parakeet_processor
from hf_supernet.masks.base import BlockPlan
from hf_supernet.models.supernet_conformer import SupernetConformerModel
from hf_supernet.models.supernet_conformer.parakeet import NotStockParakeetError

from hf_supernet.models.supernet_conformer.costs import conformer_flops

from .conftest import BLOCK_HF_SUPERNET, padded_batch

VOCAB = 11  # 10 tokens + the blank (Parakeet's pad_token_id = vocab_size - 1)


def tiny_parakeet(seed=0, *, num_hidden_layers=3, subsampling_factor=4, attention_bias=True, convolution_bias=True,
                  scale_input=True, attn_implementation="sdpa", vocab_size=VOCAB) -> ParakeetForCTC:
    """A random ParakeetForCTC whose every parameter and BatchNorm statistic is nonzero and away from its init (so a
    weight copied to the wrong place, or a bias left out, changes the logits)."""
    torch.manual_seed(seed)
    encoder = ParakeetEncoderConfig(
        hidden_size=32, num_hidden_layers=num_hidden_layers, num_attention_heads=4, intermediate_size=64,
        conv_kernel_size=5, subsampling_conv_channels=8, num_mel_bins=16, subsampling_factor=subsampling_factor,
        attention_bias=attention_bias, convolution_bias=convolution_bias, scale_input=scale_input,
    )
    config = ParakeetCTCConfig(vocab_size=vocab_size, pad_token_id=vocab_size - 1, encoder_config=encoder.to_dict())
    config._attn_implementation = attn_implementation
    model = ParakeetForCTC(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def tiny_parakeet_processor(characters="abcdefgh", num_mel_bins=16) -> ParakeetProcessor:
    """Parakeet's own processor: its feature extractor and a character tokenizer whose pad token (the last id) is the
    blank."""
    return build_parakeet_processor([characters], feature_size=num_mel_bins)


def masked_logits(model, spec, features, mask):
    with torch.no_grad(), model.use_subnet(spec):
        return model(features, attention_mask=mask).logits


SOURCE = tiny_parakeet()
SUPERNET = SupernetConformerForCTC.from_parakeet(SOURCE, layer_drop_choices=[0, 1, 2])
OMNI = SupernetConformerForCTC.from_parakeet(
    tiny_parakeet(1, subsampling_factor=8), "omni_sparsity", omni_sparsity_block_shape=[4, 1]
)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"subsampling_factor": 8, "scale_input": False},
        {"attention_bias": False, "convolution_bias": False},
        {"attn_implementation": "eager"},
    ],
    ids=["default", "subsampling8", "no_biases", "eager_source"],
)
def test_largest_subnet_equals_the_source_parakeet_on_a_padded_batch(options):
    source = tiny_parakeet(3, **options)
    supernet = SupernetConformerForCTC.from_parakeet(source)
    assert supernet.config.architecture == "parakeet" and not supernet.training
    assert supernet.num_parameters() == source.num_parameters() == supernet.subnet_costs().params
    features, mask = padded_batch([61, 40, 17], seed=4)
    with torch.no_grad():
        expected = source(features, attention_mask=mask).logits
        out = supernet(features, attention_mask=mask)
        largest = masked_logits(supernet, supernet.subnet_space.largest(), features, mask)
        unpadded = supernet(features[:1]).logits
        unpadded_source = source(features[:1]).logits
    # Every frame, padding included: the supernet runs Parakeet's exact computation.
    torch.testing.assert_close(out.logits, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(largest, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(unpadded, unpadded_source, atol=1e-4, rtol=0)
    # The output frames it calls real are Parakeet's.
    assert torch.equal(out.output_attention_mask, source._get_output_attention_mask(mask, target_length=expected.shape[1]))


@st.composite
def subnet_and_batch(draw):
    if draw(st.booleans()):
        model = SUPERNET
        space = model.subnet_space
        spec = LayerWidthSpec((draw(st.sampled_from(space.widths)),) * draw(st.sampled_from(space.depths)))
    else:
        model = OMNI
        levels = model.config.omni_sparsity_levels
        spec = OmniSparsitySpec(tuple(draw(st.sampled_from(levels)) for _ in range(model.config.num_hidden_layers)))
    # 1-3 utterances of 9-64 feature frames, zero-padded.
    batch = padded_batch(draw(st.lists(st.integers(9, 64), min_size=1, max_size=3)), seed=draw(st.integers(0, 2**16)))
    return model, spec, batch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subnet_and_batch())
def test_subnets_extract_to_stock_parakeet_equal_to_the_masked_supernet(case):
    model, spec, (features, mask) = case
    assert spec in model.subnet_space
    stock = model.extract_subnet(spec)
    assert type(stock) is ParakeetForCTC and not stock.training
    assert stock.config.encoder_config.num_hidden_layers == len(model.mask.block_plans(spec))
    with torch.no_grad():
        got = stock(features, attention_mask=mask).logits
    torch.testing.assert_close(got, masked_logits(model, spec, features, mask), atol=1e-4, rtol=0)
    if model is SUPERNET:  # (omni_sparsity's costs count nonzero weights, the stock model stores its zeros)
        assert stock.num_parameters() == model.subnet_costs(spec).params
    assert model.subnet_config(spec).to_dict()["encoder_config"] == stock.config.to_dict()["encoder_config"]


@pytest.mark.parametrize("which", ["largest", "smallest"])
def test_analytic_flops_of_parakeet_blocks_match_torch_flop_counter(which):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    spec = getattr(SUPERNET.subnet_space, which)()
    frames = 123
    # The math SDPA backend runs attention as counted matmuls; the relative keys and their scores are counted too.
    with torch.no_grad(), SUPERNET.use_subnet(spec), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as c:
        SUPERNET(torch.randn(1, frames, 16))
    assert c.get_total_flops() == conformer_flops(SUPERNET.config, SUPERNET.mask.block_plans(spec), frames)


def test_dropped_heads_export_with_their_head_size():
    """A subnet that keeps 2 of 4 heads in every layer: the stock config keeps head_dim (Parakeet would otherwise
    derive hidden_size // heads), and q/k/v/relative_k rows, u/v biases and o_proj columns are cut together."""
    model = SupernetConformerForCTC.from_parakeet(tiny_parakeet(5), "layer_width")
    spec = model.subnet_space.largest()
    heads = (1, 3)
    plans = [dataclasses.replace(p, attention_heads=heads, ffn_dim=16) for p in model.mask.block_plans(spec)]
    model.conformer.mask.block_plans = lambda _spec: plans  # the instance's mask runs these plans for any spec
    try:
        stock = model.extract_subnet(spec)
        features, mask = padded_batch([50, 23], seed=1)
        expected = masked_logits(model, spec, features, mask)
    finally:
        del model.conformer.mask.block_plans
    assert stock.config.encoder_config.num_attention_heads == 2 and stock.config.encoder_config.head_dim == 8
    assert stock.encoder.layers[0].self_attn.bias_u.shape == (2, 8)
    with torch.no_grad():
        torch.testing.assert_close(stock(features, attention_mask=mask).logits, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"ffn_dim": None}, "feed-forward widths differ"),
        ({"attention_heads": (0,)}, "different numbers of attention heads"),
        ({"conv": False}, "drops the convolution module of layers \\[1\\]"),
    ],
)
def test_a_subnet_stock_parakeet_cannot_express_is_refused_with_the_reason(change, reason):
    model = SupernetConformerForCTC.from_parakeet(tiny_parakeet(6))
    spec = LayerWidthSpec((16, 16, 16))
    plans = model.mask.block_plans(spec)
    plans[1] = dataclasses.replace(plans[1], **change)
    model.conformer.mask.block_plans = lambda _spec: plans
    try:
        with pytest.raises(NotStockParakeetError, match=reason):
            model.extract_subnet(spec)
        with pytest.raises(ValueError, match="cannot be a stock transformers ParakeetForCTC"):
            model.subnet_config(spec)
    finally:
        del model.conformer.mask.block_plans


def test_per_layer_widths_are_a_space_option_whose_mixed_subnets_are_refused():
    model = SupernetConformerForCTC.from_parakeet(tiny_parakeet(7), ffn_width_per_layer=True)
    spec = LayerWidthSpec((16, 64, 32))
    assert spec in model.subnet_space and spec not in SUPERNET.subnet_space
    with pytest.raises(NotStockParakeetError, match=r"feed-forward widths differ \(\[16, 64, 32\]\).*ffn_width_per_layer"):
        model.extract_subnet(spec)
    uniform = LayerWidthSpec((32, 32, 32))
    features, mask = padded_batch([30, 21])
    with torch.no_grad():
        got = model.extract_subnet(uniform)(features, attention_mask=mask).logits
    torch.testing.assert_close(got, masked_logits(model, uniform, features, mask), atol=1e-4, rtol=0)


def test_uniform_width_space_is_a_depth_and_one_width():
    space = SUPERNET.subnet_space
    assert len(space) == len(list(space)) == 3 * 4
    assert all(len(set(spec.ffn_dims)) == 1 for spec in space)
    assert space.gene_choices() == [3, 4]
    for spec in space:
        assert space.from_genes(space.to_genes(spec)) == spec
        assert all(up in space for up in space.neighbors_up(spec))
    generator = torch.Generator().manual_seed(0)
    assert all(space.sample(generator) in space for _ in range(20))
    assert space.neighbors_up(LayerWidthSpec((16,))) == [LayerWidthSpec((32,)), LayerWidthSpec((16, 16))]
    with pytest.raises(ValueError, match="ffn_width_per_layer=False.*differ in full width"):
        SupernetConformerConfig(num_hidden_layers=2, layer_ffn_dims=[64, 32], ffn_width_per_layer=False)


def test_folded_parakeet_paths_extract_to_stock_and_orthosoftmax_subnets_are_refused_with_the_reason():
    """Unfolding repeats whole blocks, which stock Parakeet expresses (copies, in order); OrthoSoftmax's learned masks
    leave layers of different shapes, which it cannot (the masked supernet still runs them)."""
    plain = SupernetConformerForCTC.from_parakeet(tiny_parakeet(10), layer_drop_choices=[0], ffn_width_choices=[1.0])
    folded = SupernetConformerForCTC.fold(plain, 2).eval()
    features, mask = padded_batch([44, 26], seed=5)
    for spec in folded.subnet_space:
        stock = folded.extract_subnet(spec)
        assert type(stock) is ParakeetForCTC
        with torch.no_grad():
            got = stock(features, attention_mask=mask).logits
        torch.testing.assert_close(got, masked_logits(folded, spec, features, mask), atol=1e-4, rtol=0)

    from .test_masks_orthosoftmax import set_scores

    source = tiny_parakeet(11)
    orthosoftmax = SupernetConformerForCTC.from_parakeet(source, "orthosoftmax")
    with torch.no_grad():  # the full budget is the source model
        expected = source(features, attention_mask=mask).logits
    torch.testing.assert_close(
        masked_logits(orthosoftmax, orthosoftmax.subnet_space.largest(), features, mask), expected, atol=1e-4, rtol=0
    )
    set_scores(orthosoftmax.mask, seed=1, frozen=True)
    with pytest.raises(NotStockParakeetError, match="feed-forward widths differ"):
        orthosoftmax.extract_subnet(orthosoftmax.subnet_space.smallest())


def test_build_parakeet_processor_is_a_character_tokenizer_with_the_blank_last():
    processor = build_parakeet_processor(["zero one", "two"], feature_size=16)
    tokenizer = processor.tokenizer
    assert tokenizer.pad_token_id == len(tokenizer) - 1 and tokenizer.convert_ids_to_tokens(0) == "<unk>"
    ids = tokenizer("one two", add_special_tokens=False)["input_ids"]
    assert len(ids) == len("▁one▁two") and tokenizer.decode(ids, group_tokens=False) == "one two"
    # CTC decoding: repeats merged, blanks dropped.
    blank = tokenizer.pad_token_id
    assert tokenizer.decode([ids[0], ids[1], ids[1], blank, ids[1], ids[2]]) == "oon"
    with pytest.raises(ValueError, match="no characters"):
        build_parakeet_processor([" "])


def test_bare_encoder_extracts_to_a_stock_parakeet_encoder():
    torch.manual_seed(0)
    config = SUPERNET.config
    encoder = SupernetConformerModel(config).eval()
    spec = LayerWidthSpec((16, 16))
    stock = encoder.extract_subnet(spec)
    assert type(stock) is ParakeetEncoder
    features, mask = padded_batch([40, 25], seed=2)
    with torch.no_grad(), encoder.use_subnet(spec):
        expected = encoder(features, attention_mask=mask).last_hidden_state
    with torch.no_grad():
        got = stock(features, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert stock.num_parameters() == encoder.subnet_costs(spec).params


def test_from_parakeet_refuses_what_it_cannot_carry():
    with pytest.raises(ValueError, match=r"\['hidden_size'\] come from the Parakeet checkpoint"):
        SupernetConformerForCTC.from_parakeet(SOURCE, hidden_size=64)
    with pytest.raises(ValueError, match=r"\['layer_drop_choise'\] are not SupernetConformerConfig fields"):
        SupernetConformerForCTC.from_parakeet(SOURCE, layer_drop_choise=[1])
    with pytest.raises(TypeError, match="takes a transformers ParakeetForCTC"):
        SupernetConformerForCTC.from_parakeet(SUPERNET)
    with pytest.raises(ValueError, match="'parakeet'"):
        SupernetConformerConfig(architecture="conformer", attention_bias=False)
    with pytest.raises(ValueError, match="num_mel_bins=20 must be a multiple of subsampling_factor=8"):
        SupernetConformerConfig(architecture="parakeet", num_mel_bins=20, subsampling_factor=8)


def test_parakeet_supernet_saves_and_reloads(tmp_path):
    SUPERNET.save_pretrained(tmp_path)
    loaded = SupernetConformerForCTC.from_pretrained(tmp_path).eval()
    features, mask = padded_batch([33, 20])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(features, attention_mask=mask).logits, SUPERNET(features, attention_mask=mask).logits, atol=0, rtol=0
        )


# A fresh Python where `import hf_supernet` fails, as on a machine that never installed it.
BLOCKED_LOADER = BLOCK_HF_SUPERNET + textwrap.dedent(
    """
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCTC, AutoProcessor, pipeline

    folder, out = sys.argv[1], sys.argv[2]
    model = AutoModelForCTC.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    rng = np.random.default_rng(0)
    audio = [rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 9000)]
    batch = processor(audio=audio, sampling_rate=16000)
    with torch.no_grad():
        logits = model(**batch).logits
    text = processor.batch_decode(logits.argmax(-1))
    asr = pipeline("automatic-speech-recognition", model=folder)
    assert asr(audio[0])["text"] == text[0], (asr(audio[0]), text)
    assert not any(m.startswith("hf_supernet") for m in sys.modules)
    tensors = {"logits": logits, "features": batch["input_features"], "mask": batch["attention_mask"]}
    save_file({k: v.contiguous() for k, v in tensors.items()}, out)
    print(type(model).__module__, type(model).__name__, type(processor).__name__)
    """
)


def test_exported_subnet_and_processor_load_without_hf_supernet(tmp_path):
    processor = tiny_parakeet_processor()
    source_dir = tmp_path / "parakeet"
    SOURCE.save_pretrained(source_dir)
    processor.save_pretrained(source_dir)
    supernet, carried = SupernetConformerForCTC.from_parakeet(
        str(source_dir), layer_drop_choices=[0, 1], return_processor=True
    )
    assert type(carried) is ParakeetProcessor
    # The supernet's folder holds Parakeet's processor, which AutoProcessor finds there too.
    supernet.save_pretrained(tmp_path / "supernet")
    carried.save_pretrained(tmp_path / "supernet")
    assert type(AutoProcessor.from_pretrained(tmp_path / "supernet")) is ParakeetProcessor

    spec = LayerWidthSpec((32, 32))
    stock = supernet.extract_subnet(spec)
    folder = tmp_path / "subnet"
    stock.save_pretrained(folder)
    carried.save_pretrained(folder)
    assert not any(name.endswith(".py") for name in os.listdir(folder))  # no remote code: all of it is stock
    script = tmp_path / "load.py"
    script.write_text(BLOCKED_LOADER)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, str(script), str(folder), str(tmp_path / "out.safetensors")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transformers.models.parakeet.modeling_parakeet ParakeetForCTC ParakeetProcessor" in result.stdout

    from safetensors.torch import load_file

    remote = load_file(tmp_path / "out.safetensors")
    rng = np.random.default_rng(0)
    batch = processor(audio=[rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 9000)], sampling_rate=16000)
    torch.testing.assert_close(remote["features"], batch["input_features"], atol=1e-6, rtol=0)
    expected = masked_logits(supernet, spec, batch["input_features"], batch["attention_mask"])
    torch.testing.assert_close(remote["logits"], expected, atol=1e-4, rtol=0)
    assert type(AutoModelForCTC.from_pretrained(folder)) is ParakeetForCTC  # also with hf_supernet imported


def test_the_supernet_over_plain_block_plans_needs_no_parakeet_specific_plan():
    """Block plans stay the mask types' business: the Parakeet blocks run the same BlockPlan fields."""
    plan = BlockPlan(layer_index=0, ffn_dim=8, attention_heads=(0, 2))
    block = SUPERNET.conformer.layers[0]
    cuts = block.linear_selections(plan)
    assert cuts["self_attn.relative_k_proj"] == cuts["self_attn.q_proj"]
    state = block.reduced_state_dict(plan)
    assert state["self_attn.bias_u"].shape == (2, 8) and state["self_attn.relative_k_proj.weight"].shape == (16, 32)
    torch.testing.assert_close(state["self_attn.bias_v"], block.self_attn.bias_v.detach()[[0, 2]])




def fsdd_manifest(folder, counts: dict[str, int]):
    """A manifest folder (``{split}.jsonl``) of a few bundled spoken-digit recordings per split (every 50th)."""
    import json

    from hf_supernet.data import bundled_data_path

    fsdd = bundled_data_path("fsdd")
    folder.mkdir()
    source_split = {"train": "train"}
    for split, count in counts.items():
        lines = (fsdd / f"{source_split.get(split, 'test')}.jsonl").read_text().splitlines()[::50][:count]
        rows = [json.loads(line) for line in lines]
        text = "\n".join(json.dumps({**row, "file": str(fsdd / row["file"])}) for row in rows)
        (folder / f"{split}.jsonl").write_text(text + "\n")
    return folder


DIGIT_CHARACTERS = "efghinorstuvwxz"


def test_published_subnets_are_stock_parakeet_with_recalibrated_batch_norm(tmp_path):
    """search (BatchNorm recalibrated per subnet) -> publish: each folder is a stock ParakeetForCTC with Parakeet's
    processor, its card says plain transformers loads it, and its logits are the searched subnet's with the
    statistics re-estimated on the batches the search used (rebuilt from its record)."""
    from hf_supernet import SubnetSpec, batch_norm_recalibrated, load_speech_dataset
    from hf_supernet.data import DataCollatorCTCWithPadding, prepare_dataset
    from hf_supernet.publishing import publish_subnets
    from hf_supernet.search import collate_batches, search_subnets

    processor = tiny_parakeet_processor(DIGIT_CHARACTERS)
    supernet = SupernetConformerForCTC.from_parakeet(
        tiny_parakeet(9, vocab_size=len(processor.tokenizer)), layer_drop_choices=[0, 1]
    )
    manifest = fsdd_manifest(tmp_path / "data", {"dev": 6})
    data = prepare_dataset(load_speech_dataset(str(manifest), "dev"), processor)
    collator = DataCollatorCTCWithPadding(processor)
    options = dict(data_collator=collator, tokenizer=processor.tokenizer, budgets=[0.6, 1.0], population=4,
                   generations=1, proxy_examples=4, batch_size=4, progress=False, measure_latency=False)
    search_subnets(supernet, data, eval_name=str(manifest), eval_split="dev", **options)
    assert supernet.config.selected_subnets[0]["batch_norm_calibration"]["dataset"] == str(manifest)
    folder = tmp_path / "supernet"
    supernet.save_pretrained(folder)
    processor.save_pretrained(folder)
    published = publish_subnets(folder, "me/parakeet", push=False, local_dir=tmp_path / "out")
    assert [p.model_class for p in published] == ["ParakeetForCTC", "ParakeetForCTC"]
    assert all(p.loads_with_stock_transformers for p in published)
    calibration = collate_batches(data, collator, 4, 4)
    features, mask = padded_batch([45, 30], seed=3)
    for entry, subnet in zip(supernet.config.selected_subnets, published):
        card = (subnet.folder / "README.md").read_text()
        assert "`ParakeetForCTC`, a class of stock `transformers`" in card and "import hf_supernet" not in card
        assert type(AutoProcessor.from_pretrained(subnet.folder)) is ParakeetProcessor
        stock = AutoModelForCTC.from_pretrained(subnet.folder)
        spec = SubnetSpec.from_dict(entry["spec"])
        with batch_norm_recalibrated(supernet, calibration, subnet=spec):
            expected = masked_logits(supernet, spec, features, mask)
        with torch.no_grad():
            torch.testing.assert_close(stock(features, attention_mask=mask).logits, expected, atol=1e-4, rtol=0)

    # Statistics re-estimated on a dataset object the record cannot name: publishing needs the batches given.
    search_subnets(supernet, data, calibration_dataset=data.select(range(2, 6)), **options)
    supernet.save_pretrained(folder)
    with pytest.raises(ValueError, match="names no dataset and split.*calibration_data="):
        publish_subnets(folder, "me/parakeet", push=False, local_dir=tmp_path / "refused")
    given = collate_batches(data.select(range(2, 6)), collator, 4)
    assert publish_subnets(folder, "me/parakeet", push=False, local_dir=tmp_path / "given", calibration_data=given)


@pytest.mark.slow
def test_finetune_parakeet_script_trains_searches_and_saves_stock_subnets(tmp_path):
    """scripts/finetune_parakeet.py --smoke: a Parakeet trained from scratch, made elastic and fine-tuned, searched;
    every saved subnet is a stock ParakeetForCTC with Parakeet's processor; then the same command from the saved
    checkpoint (--parakeet PATH)."""
    from .test_bad_input import load_script

    script = load_script("finetune_parakeet")
    out = tmp_path / "run"
    rows = script.main(["--smoke", "--output_dir", str(out)])
    assert [r["name"] for r in rows] == ["largest", "smallest", "params_50pct", "params_75pct"]
    assert {r["class"] for r in rows} == {"ParakeetForCTC"}
    assert all(0 <= r["wer"] and 0 <= r["wer_shared_batch_norm"] for r in rows)
    supernet = SupernetConformerForCTC.from_pretrained(out / "supernet").eval()
    assert supernet.config.architecture == "parakeet" and supernet.config.selected_subnets
    smallest = AutoModelForCTC.from_pretrained(out / "subnets" / "smallest")
    assert type(smallest) is ParakeetForCTC and type(AutoProcessor.from_pretrained(out / "subnets" / "smallest")) is ParakeetProcessor
    assert smallest.num_parameters() < AutoModelForCTC.from_pretrained(out / "subnets" / "largest").num_parameters()

    again = script.main(["--smoke", "--parakeet", str(out / "parakeet"), "--output_dir", str(tmp_path / "again")])
    assert [r["name"] for r in again] == [r["name"] for r in rows]


def test_latency_parts_are_the_stock_modules_of_the_exported_subnet():
    spec = LayerWidthSpec((16, 16))
    parts = SUPERNET.latency_parts(SUPERNET.subnet_config(spec), seconds=1.0)
    assert [key.split(":")[0] for key, _ in parts] == ["parakeet_front_head", "parakeet_block", "parakeet_block"]
    assert parts[1][0] == parts[2][0] and "16" in parts[1][0]  # equal blocks are timed once
    whole = SUPERNET.latency_parts(SUPERNET.config, seconds=1.0)
    assert len(whole) == 1 + 3 and whole[1][0] != parts[1][0]
    for _key, make_runner in parts:
        make_runner()()  # each part runs


def test_evaluate_subnet_scores_a_stock_parakeet_on_its_real_output_frames():
    """A stock ParakeetForCTC reports no output frame mask: the scorer takes the input lengths through Parakeet's own
    subsampling arithmetic, so a padded utterance decodes as it does alone."""
    from hf_supernet.search import evaluate_subnet

    model = tiny_parakeet()
    processor = tiny_parakeet_processor()
    tokenizer = processor.tokenizer
    torch.manual_seed(1)
    features = torch.randn(2, 120, 16)
    mask = torch.ones(2, 120, dtype=torch.long)
    mask[1, 50:] = 0
    labels = torch.tensor([[0, 1, 2], [3, 4, -100]])
    batch = {"input_features": features, "attention_mask": mask, "labels": labels}
    alone = {"input_features": features[1:, :50], "attention_mask": mask[1:, :50], "labels": labels[1:, :2]}
    together = evaluate_subnet(model, None, [batch], tokenizer, per_utterance=True)
    single = evaluate_subnet(model, None, [alone], tokenizer, per_utterance=True)
    assert together["hypotheses"][1] == single["hypotheses"][0]
    assert together["ctc_loss_per_frame"] > 0


def test_supernet_attention_maps_equal_the_source_parakeets():
    """Parakeet's relative-position attention run eagerly for `output_attentions=True`: the largest subnet's maps
    (padded rows included) are the source ParakeetForCTC's."""
    source = tiny_parakeet(attn_implementation="eager")
    supernet = SupernetConformerForCTC.from_parakeet(source).eval()
    features, mask = padded_batch([40, 23])
    with torch.no_grad():
        expected = source(input_features=features, attention_mask=mask, output_attentions=True)
        ours = supernet(features, attention_mask=mask, output_attentions=True)
    assert len(ours.attentions) == len(expected.attentions) == 3
    for a, b in zip(ours.attentions, expected.attentions):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
