"""Foldable wav2vec2 / HuBERT (and the folding Conformer): stored blocks, unfolding paths, stock extraction."""

import json

import pytest
import torch
from datasets import Dataset
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCTC,
    HubertConfig,
    HubertForCTC,
    HubertModel,
    Wav2Vec2Config,
    Wav2Vec2ForCTC,
    Wav2Vec2Model,
)

import hf_supernet
from hf_supernet import (
    ConformerForCTC,
    FoldableHubertConfig,
    FoldableHubertForCTC,
    FoldableHubertModel,
    FoldableWav2Vec2Config,
    FoldableWav2Vec2ForCTC,
    FoldableWav2Vec2Model,
    FoldingSpec,
    LatencyTable,
    SupernetConformerForCTC,
    stored_params,
)
from hf_supernet.costs import ParamCounts
from hf_supernet.models.foldable import evenly_spaced_layers
from hf_supernet.models.foldable.modeling_foldable import transformer_ctc_flops
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments
from hf_supernet.training.sandwich import sandwich_subnets

from .conftest import assert_extraction_matches, padded_batch, tiny_conformer_config

# A wav2vec2 small enough for hundreds of forward passes. Per-frame LayerNorm in the feature encoder (as the large
# checkpoints) makes outputs independent of padding; dropout, LayerDrop and SpecAugment off so training-mode passes
# are deterministic too.
TINY = dict(
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=48,
    conv_dim=(16, 16, 16),
    conv_kernel=(10, 3, 3),
    conv_stride=(5, 2, 2),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4,
    vocab_size=12,
    feat_extract_norm="layer",
    hidden_dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    feat_proj_dropout=0.0,
    final_dropout=0.0,
    layerdrop=0.0,
    mask_time_prob=0.0,
    ctc_loss_reduction="mean",
    ctc_zero_infinity=True,
)
FAMILIES = {
    "wav2vec2": (FoldableWav2Vec2Config, FoldableWav2Vec2ForCTC, FoldableWav2Vec2Model, Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Model),
    "hubert": (FoldableHubertConfig, FoldableHubertForCTC, FoldableHubertModel, HubertConfig, HubertForCTC, HubertModel),
}


def foldable(family="wav2vec2", stable=True, **overrides):
    config_class, ctc_class = FAMILIES[family][:2]
    values = dict(TINY, do_stable_layer_norm=stable, num_physical_layers=2, num_hidden_layers=5)
    values.update(overrides)
    torch.manual_seed(0)
    return ctc_class(config_class(**values)).eval()


def waveforms(lengths, seed=0):
    """Random audio of ``lengths`` samples, zero-padded, with its attention mask."""
    gen = torch.Generator().manual_seed(seed)
    audio = torch.randn(len(lengths), max(lengths), generator=gen)
    mask = (torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]).long()
    return audio * mask, mask


CASES = [(family, stable) for family in FAMILIES for stable in (True, False)]


@pytest.mark.parametrize("family, stable", CASES)
def test_only_the_physical_blocks_are_stored(family, stable):
    model = foldable(family, stable)
    stock_config_class, stock_ctc = FAMILIES[family][3], FAMILIES[family][4]
    assert len(model.stored_layers) == 2 and model.config.num_hidden_layers == 5
    stock_of_same_storage = stock_ctc(stock_config_class(**dict(TINY, do_stable_layer_norm=stable, num_hidden_layers=2)))
    assert model.num_parameters() == stock_of_same_storage.num_parameters()
    assert stored_params(model) == model.num_parameters()  # the deepest path runs every stored block
    assert model.subnet_costs().params > model.num_parameters()  # ... but its extracted model stores 5 layers


@pytest.mark.slow
@pytest.mark.parametrize("family, stable", CASES)
def test_every_path_extracts_to_a_stock_model_with_equal_logits(family, stable):
    model = foldable(family, stable)
    stock_ctc = FAMILIES[family][4]
    audio, mask = waveforms([4000, 3100, 2500])
    logits_per_path = {}
    for spec in model.subnet_space:
        with torch.no_grad(), model.use_subnet(spec):
            folded = model(audio, attention_mask=mask)
        dense = model.extract_subnet(spec)
        assert type(dense) is stock_ctc
        assert dense.config.model_type == stock_ctc.config_class.model_type
        assert dense.config.num_hidden_layers == spec.num_layers
        with torch.no_grad():
            extracted = dense(audio, attention_mask=mask)
        valid = folded.output_attention_mask
        torch.testing.assert_close(extracted.logits[valid], folded.logits[valid], atol=1e-4, rtol=0)
        # Logical layer i of the stock model holds the weights of the stored block the path runs there.
        for logical, physical in enumerate(spec.path):
            for (name, a), b in zip(dense.base_model.encoder.layers[logical].state_dict().items(), model.stored_layers[physical].state_dict().values()):
                assert torch.equal(a, b), name
        assert dense.num_parameters() == model.subnet_costs(spec).params
        # int8 size of the extracted stock model (its linears in int8, the feature encoder's convolutions in fp32).
        assert model.subnet_costs(spec).int8_mb == pytest.approx(ParamCounts.of_module(dense).int8_mb, rel=1e-12)
        logits_per_path[spec] = folded.logits
    space = model.subnet_space
    # Unfolding really changes the computation: the seed and the deepest path disagree.
    assert not torch.allclose(logits_per_path[space.smallest()], logits_per_path[space.largest()], atol=1e-3)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_extracted_checkpoint_loads_with_stock_classes_only(family, tmp_path):
    model = foldable(family, mask_time_prob=0.05)  # SpecAugment's learned mask embedding travels too
    assert model.base_model.masked_spec_embed is not None
    stock_ctc = FAMILIES[family][4]
    spec = FoldingSpec((0, 0, 0, 1, 1))
    model.extract_subnet(spec).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == stock_ctc.config_class.model_type
    assert saved["architectures"] == [stock_ctc.__name__]
    assert not {"num_physical_layers", "unfolding_depths", "unfolding_patterns", "mask_type"} & set(saved)
    loaded = stock_ctc.from_pretrained(tmp_path).eval()
    audio, mask = waveforms([3000, 2000], seed=1)
    with torch.no_grad(), model.use_subnet(spec):
        expected = model(audio, attention_mask=mask)
    with torch.no_grad():
        got = loaded(audio, attention_mask=mask)
    valid = expected.output_attention_mask
    torch.testing.assert_close(got.logits[valid], expected.logits[valid], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family, stable", CASES)
def test_outputs_do_not_depend_on_padding(family, stable):
    model = foldable(family, stable)
    lengths = [4000, 2600, 1700]
    audio, mask = waveforms(lengths, seed=2)
    for spec in (model.subnet_space.smallest(), model.subnet_space.largest(), FoldingSpec((0, 0, 1, 1))):
        with torch.no_grad(), model.use_subnet(spec):
            batched = model(audio, attention_mask=mask)
            for row, length in enumerate(lengths):
                alone = model(audio[row : row + 1, :length], attention_mask=mask[row : row + 1, :length])
                frames = int(batched.output_attention_mask[row].sum())
                assert frames == alone.logits.shape[1]
                torch.testing.assert_close(batched.logits[row, :frames], alone.logits[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_save_and_load_round_trip_through_the_auto_classes(family, tmp_path):
    model = foldable(family, unfolding_depths=[2, 4, 5], unfolding_patterns=["layer", "stack"])
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is type(model.config)
    assert (config.num_physical_layers, config.unfolding_depths, config.unfolding_patterns) == (2, [2, 4, 5], ["layer", "stack"])
    loaded = AutoModelForCTC.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model) and len(loaded.stored_layers) == 2
    assert set(loaded.subnet_space) == set(model.subnet_space)
    audio, mask = waveforms([3000, 2200], seed=3)
    for spec in model.subnet_space:
        with torch.no_grad():
            torch.testing.assert_close(
                loaded(audio, attention_mask=mask, subnet=spec).logits,
                model(audio, attention_mask=mask, subnet=spec).logits,
                atol=0,
                rtol=0,
            )
    bare = AutoModel.from_pretrained(tmp_path)
    assert type(bare) is FAMILIES[family][2] and len(bare.stored_layers) == 2


def test_from_pretrained_with_a_budget_returns_a_stock_model(tmp_path):
    model = foldable()
    model.save_pretrained(tmp_path)
    full = model.subnet_costs().params
    budget = (model.subnet_costs(FoldingSpec((0, 1, 0))).params + 1) / full
    dense = FoldableWav2Vec2ForCTC.from_pretrained(tmp_path, subnet_budget=budget)
    assert type(dense) is Wav2Vec2ForCTC
    assert dense.config.num_hidden_layers == 3 and dense.num_parameters() <= budget * full
    with pytest.raises(ValueError, match="No subnet fits"):
        FoldableWav2Vec2ForCTC.from_pretrained(tmp_path, subnet_budget=0.01)


def test_bare_model_runs_paths_and_extracts_to_the_stock_encoder():
    torch.manual_seed(0)
    model = FoldableWav2Vec2Model(FoldableWav2Vec2Config(**TINY, num_physical_layers=2, num_hidden_layers=4)).eval()
    audio, _ = waveforms([3000])
    spec = FoldingSpec((0, 0, 1, 1))
    with torch.no_grad():
        out = model(audio, subnet=spec, output_hidden_states=True)
        dense = model.extract_subnet(spec)
        assert type(dense) is Wav2Vec2Model
        torch.testing.assert_close(dense(audio).last_hidden_state, out.last_hidden_state, atol=1e-4, rtol=0)
    assert len(out.hidden_states) == spec.num_layers + 1  # one per logical layer run, plus the input
    head = model.subnet_costs(spec).params
    assert head == dense.num_parameters()
    assert model.subnet_costs(spec).int8_mb == pytest.approx(ParamCounts.of_module(dense).int8_mb, rel=1e-12)


def test_hidden_states_and_tuple_outputs_follow_the_path():
    model = foldable()
    audio, mask = waveforms([3000, 2000])
    for spec in model.subnet_space:
        out = model(audio, attention_mask=mask, subnet=spec, output_hidden_states=True)
        assert len(out.hidden_states) == spec.num_layers + 1
    logits = model(audio, attention_mask=mask, return_dict=False)[0]
    torch.testing.assert_close(logits, model(audio, attention_mask=mask).logits, atol=0, rtol=0)


def test_use_subnet_refuses_paths_the_model_cannot_run():
    model = foldable()
    audio, _ = waveforms([2000])
    with pytest.raises(ValueError, match="6 logical layers, more than a path of this model allows"):
        with model.use_subnet(FoldingSpec((0, 1, 0, 1, 0, 1))):
            model(audio)
    with pytest.raises(ValueError, match="physical blocks"):
        model(audio, subnet=FoldingSpec((0, 1, 2)))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("which", ["largest", "smallest", "mid"])
def test_analytic_flops_match_torch_flop_counter(family, which):
    model = foldable(family)
    spec = {"largest": model.subnet_space.largest(), "smallest": model.subnet_space.smallest(), "mid": FoldingSpec((0, 0, 1))}[which]
    samples = 3217
    with torch.no_grad(), model.use_subnet(spec), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, samples))
    assert counter.get_total_flops() == transformer_ctc_flops(model.config, spec.num_layers, samples)


@pytest.mark.slow
def test_latency_is_measured_on_the_extracted_stock_model(tmp_path):
    model = foldable()
    table = LatencyTable(tmp_path / "latency.json", repeats=1)
    stack, layer = FoldingSpec((0, 1, 0, 1)), FoldingSpec((0, 0, 1, 1))
    rtf = model.subnet_costs(stack, latency=table).latency
    assert rtf > 0 and len(table) == 1
    assert model.subnet_costs(layer, latency=table).latency == rtf  # same stock architecture: looked up, not re-timed
    assert model.subnet_config(layer).num_hidden_layers == 4 and model.subnet_config(layer).model_type == "wav2vec2"


def test_stored_params_count_a_repeated_block_once():
    model = foldable(num_physical_layers=3, num_hidden_layers=6)
    block = sum(p.numel() for p in model.stored_layers[0].parameters())
    spec = FoldingSpec((0, 0, 1, 1, 2, 2))
    assert stored_params(model, spec) == model.num_parameters()
    assert model.subnet_costs(spec).params == model.num_parameters() + 3 * block
    assert model.subnet_costs(spec).flops > model.subnet_costs(model.subnet_space.smallest()).flops


# ------------------------------------------------------------------------------ seeding from a stock checkpoint
def stock_checkpoint(tmp_path, family="wav2vec2", head=True, layers=6):
    config_class, ctc_class, model_class = FAMILIES[family][3], FAMILIES[family][4], FAMILIES[family][5]
    torch.manual_seed(1)
    stock = (ctc_class if head else model_class)(config_class(**dict(TINY, do_stable_layer_norm=True, num_hidden_layers=layers))).eval()
    stock.save_pretrained(tmp_path)
    return stock


def test_evenly_spaced_seed_layers_keep_both_ends():
    for source in (4, 6, 12, 24):
        for physical in range(1, source + 1):
            layers = evenly_spaced_layers(source, physical)
            assert len(layers) == physical and layers == sorted(layers)
            assert layers[-1] == source - 1 and (physical == 1 or layers[0] == 0)
            assert len(set(layers)) == physical  # distinct while there are enough source layers
    assert evenly_spaced_layers(12, 8) == [0, 2, 3, 5, 6, 8, 9, 11]  # the documented example


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_backbone_seeds_the_stored_blocks_from_chosen_layers(family, tmp_path):
    stock = stock_checkpoint(tmp_path, family)
    ctc_class = FAMILIES[family][1]
    model = ctc_class.from_pretrained_backbone(tmp_path, num_physical_layers=3).eval()
    assert model.config.num_hidden_layers == 6 and len(model.stored_layers) == 3
    stock_layers = stock.base_model.encoder.layers
    for block, layer in enumerate(evenly_spaced_layers(6, 3)):
        for a, b in zip(model.stored_layers[block].state_dict().values(), stock_layers[layer].state_dict().values()):
            assert torch.equal(a, b)
    stock_state = stock.state_dict()
    for key, value in model.state_dict().items():
        if ".encoder.layers." not in key:
            assert torch.equal(value, stock_state[key]), key  # feature encoder, projection, pos conv, head


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_backbone_with_every_layer_stored_reproduces_the_checkpoint(family, tmp_path):
    stock = stock_checkpoint(tmp_path, family)
    ctc_class = FAMILIES[family][1]
    model = ctc_class.from_pretrained_backbone(tmp_path, num_physical_layers=6, seed_layers=list(range(6))).eval()
    audio, mask = waveforms([3000, 2000], seed=4)
    with torch.no_grad():
        torch.testing.assert_close(model(audio, attention_mask=mask).logits, stock(audio, attention_mask=mask).logits, atol=1e-5, rtol=0)


def test_backbone_from_an_encoder_checkpoint_gets_a_fresh_head(tmp_path):
    stock = stock_checkpoint(tmp_path, "hubert", head=False)
    model = FoldableHubertForCTC.from_pretrained_backbone(
        tmp_path, num_physical_layers=2, num_hidden_layers=4, seed_layers=[1, 4], config_overrides={"vocab_size": 7}
    )
    assert model.lm_head.out_features == 7 and model.config.num_hidden_layers == 4
    for block, layer in enumerate([1, 4]):
        assert torch.equal(model.stored_layers[block].feed_forward.output_dense.weight, stock.encoder.layers[layer].feed_forward.output_dense.weight)
    assert torch.equal(model.hubert.feature_projection.projection.weight, stock.feature_projection.projection.weight)


def test_backbone_refuses_bad_input_clearly(tmp_path):
    stock_checkpoint(tmp_path / "w2v")
    with pytest.raises(ValueError, match="'wav2vec2' checkpoint.*seeds its blocks from a 'hubert'"):
        FoldableHubertForCTC.from_pretrained_backbone(tmp_path / "w2v", num_physical_layers=2)
    with pytest.raises(ValueError, match="one checkpoint layer per stored block"):
        FoldableWav2Vec2ForCTC.from_pretrained_backbone(tmp_path / "w2v", num_physical_layers=2, seed_layers=[0])
    with pytest.raises(ValueError, match=r"must index the checkpoint's 6 layers \(0..5\)"):
        FoldableWav2Vec2ForCTC.from_pretrained_backbone(tmp_path / "w2v", num_physical_layers=2, seed_layers=[0, 6])
    with pytest.raises(ValueError, match="from_pretrained_backbone"):
        FoldableWav2Vec2ForCTC.from_pretrained(tmp_path / "w2v")  # a stock checkpoint is not a foldable one
    foldable().save_pretrained(tmp_path / "fold")
    with pytest.raises(ValueError, match="already a 'foldable_wav2vec2' checkpoint"):
        FoldableWav2Vec2ForCTC.from_pretrained_backbone(tmp_path / "fold", num_physical_layers=2)


def test_zero_physical_layers_is_refused_before_building():
    with pytest.raises(ValueError, match="at least one stored block"):
        FoldableWav2Vec2ForCTC(FoldableWav2Vec2Config(**TINY, num_physical_layers=0, num_hidden_layers=4))


# ------------------------------------------------------------------------------ the folding Conformer
def test_folding_conformer_stores_few_blocks_and_extracts_every_path():
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(mask_type="folding", num_physical_layers=2, num_hidden_layers=5)).eval()
    assert len(model.conformer.layers) == 2
    plain = SupernetConformerForCTC(tiny_conformer_config(num_hidden_layers=2))
    assert model.num_parameters() == plain.num_parameters()
    features, mask = padded_batch([40, 27, 18])
    outputs = {}
    for spec in model.subnet_space:
        dense, folded = assert_extraction_matches(model, spec, features, mask)
        # Unfolded into the plain dense model: every logical layer stored, a repeated block's weights copied.
        assert type(dense) is ConformerForCTC
        assert len(dense.conformer.layers) == spec.num_layers == dense.config.num_hidden_layers
        for logical, physical in enumerate(spec.path):
            for (name, a), b in zip(dense.conformer.layers[logical].state_dict().items(), model.conformer.layers[physical].state_dict().values()):
                assert torch.equal(a, b), name
        assert dense.num_parameters() == model.subnet_costs(spec).params
        outputs[spec] = folded.logits
    assert stored_params(model, model.subnet_space.largest()) == model.num_parameters()
    assert not torch.allclose(outputs[model.subnet_space.smallest()], outputs[model.subnet_space.largest()], atol=1e-3)


# ------------------------------------------------------------------------------ training: deepest + seed + KL
def labelled_batch(seed=5):
    audio, mask = waveforms([3000, 2700, 2300, 1900], seed=seed)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(1, TINY["vocab_size"], (4, 4), generator=gen)
    labels[2:, 3] = -100  # two shorter transcripts
    return {"input_values": audio, "attention_mask": mask, "labels": labels}


def trainer_for(model, tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=3, learning_rate=3e-3, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0, distillation="kl",
        distill_top_k=0,
    )
    values.update(overrides)
    return SupernetTrainer(model=model, args=SupernetTrainingArguments(**values))


def kl_deepest_to_seed(teacher_logits, student_logits, frame_mask):
    """KL(p_teacher ‖ q_student) per real frame, averaged: written out, not taken from hf_supernet."""
    p = teacher_logits.log_softmax(-1)[frame_mask]
    q = student_logits.log_softmax(-1)[frame_mask]
    return (p.exp() * (p - q)).sum(-1).mean()


@pytest.mark.slow
def test_loss_is_deepest_plus_weighted_seed_plus_kl_with_the_teacher_detached(tmp_path):
    model = foldable().train()
    trainer = trainer_for(model, tmp_path, num_random_subnets=0, smallest_loss_weight=0.3, distill_weight=0.7)
    batch = labelled_batch()
    total = trainer.compute_loss(model, batch)
    total.backward()
    from_trainer = {n: p.grad.clone() for n, p in model.named_parameters()}

    space = model.subnet_space
    model.zero_grad()
    deepest, seed = model(**batch, subnet=space.largest()), model(**batch, subnet=space.smallest())
    kl = kl_deepest_to_seed(deepest.logits.detach(), seed.logits, seed.output_attention_mask)
    expected = deepest.loss + 0.3 * seed.loss + 0.7 * kl
    torch.testing.assert_close(total, expected, atol=1e-5, rtol=1e-5)
    expected.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(from_trainer[name], param.grad, atol=1e-6, rtol=1e-4, msg=name)

    # Had the teacher not been detached, the KL would also pull the deepest path towards the seed.
    model.zero_grad()
    deepest, seed = model(**batch, subnet=space.largest()), model(**batch, subnet=space.smallest())
    attached = deepest.loss + 0.3 * seed.loss + 0.7 * kl_deepest_to_seed(deepest.logits, seed.logits, seed.output_attention_mask)
    attached.backward()
    head = dict(model.named_parameters())["lm_head.weight"]
    assert not torch.allclose(from_trainer["lm_head.weight"], head.grad, atol=1e-6)


@pytest.mark.parametrize("random_distill_weight", [0.0, 1.0])
def test_sampled_paths_get_their_task_weight_and_optional_distillation(tmp_path, random_distill_weight):
    model = foldable().train()
    trainer = trainer_for(
        model, tmp_path, num_random_subnets=2, smallest_loss_weight=0.5, random_loss_weight=0.25,
        random_distill_weight=random_distill_weight,
    )
    batch = labelled_batch(seed=6)
    replay = torch.Generator()
    replay.set_state(trainer.subnet_generator.get_state())
    with torch.no_grad():
        total = trainer.compute_loss(model, batch)
        roles = sandwich_subnets(model.subnet_space, 2, replay)
        teacher = model(**batch, subnet=roles[0][1])
        expected = teacher.loss
        weights = {"smallest": 0.5, "random": 0.25}
        for role, spec in roles[1:]:
            student = model(**batch, subnet=spec)
            expected = expected + weights[role] * student.loss
            if role == "smallest" or random_distill_weight:
                expected = expected + kl_deepest_to_seed(teacher.logits, student.logits, student.output_attention_mask)
    torch.testing.assert_close(total, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_sandwich_training_on_waveforms(tmp_path):
    batch = labelled_batch(seed=7)
    rows = {
        "input_values": [a[: int(m.sum())].tolist() for a, m in zip(batch["input_values"], batch["attention_mask"])],
        "labels": [[t for t in row.tolist() if t >= 0] for row in batch["labels"]],
    }

    def collate(examples):
        audio = torch.nn.utils.rnn.pad_sequence([torch.tensor(e["input_values"]) for e in examples], batch_first=True)
        mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(e["input_values"]), dtype=torch.long) for e in examples], batch_first=True)
        labels = torch.nn.utils.rnn.pad_sequence([torch.tensor(e["labels"]) for e in examples], batch_first=True, padding_value=-100)
        return {"input_values": audio, "attention_mask": mask, "labels": labels}

    model = foldable().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = trainer_for(model, tmp_path, num_random_subnets=1, random_distill_weight=0.0)
    trainer.train_dataset, trainer.data_collator = Dataset.from_dict(rows), collate
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 3 and all({"loss_largest", "loss_smallest", "loss_random", "loss_distill"} <= set(e) for e in logged)
    assert all(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if "layers.1.feed_forward" in k)


def test_lora_on_a_foldable_model_adapts_every_path_and_merges_into_stock_models():
    from peft import LoraConfig, get_peft_model

    model = foldable("wav2vec2")
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False))
    assert {n.split(".")[-1] for n, m in peft_model.named_modules() if hasattr(m, "lora_A")} == {
        "q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"
    }
    audio, mask = waveforms([3000, 2600])
    adapted = {}
    for spec in (model.subnet_space.smallest(), model.subnet_space.largest()):
        with torch.no_grad():
            adapted[spec] = peft_model(audio, attention_mask=mask, subnet=spec).logits
            with peft_model.disable_adapter():
                base = peft_model(audio, attention_mask=mask, subnet=spec).logits
        assert not torch.allclose(adapted[spec], base, atol=1e-4)  # the adapter runs on every path
    merged = peft_model.merge_and_unload()
    for spec, logits in adapted.items():
        dense = merged.extract_subnet(spec)
        assert type(dense) is Wav2Vec2ForCTC
        with torch.no_grad():
            torch.testing.assert_close(dense(audio, attention_mask=mask).logits, logits, atol=1e-4, rtol=0)


def test_top_level_extract_subnet_dispatches_to_the_foldable_family():
    model = foldable("hubert")
    spec = model.subnet_space.largest()
    audio, mask = waveforms([3000, 2600])
    dense = hf_supernet.extract_subnet(model, spec)
    assert type(dense) is HubertForCTC
    with torch.no_grad():
        torch.testing.assert_close(
            dense(audio, attention_mask=mask).logits, model(audio, attention_mask=mask, subnet=spec).logits,
            atol=1e-4, rtol=0,
        )


@pytest.mark.slow
def test_lora_adapted_foldable_extracts_every_path_with_its_adapter_copied_per_repeat():
    from peft import LoraConfig, PeftModel, get_peft_model

    model = foldable("wav2vec2")
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False)).eval()
    audio, mask = waveforms([3000, 2600])
    for spec in model.subnet_space:
        for extract in (peft_model.extract_subnet, lambda s: hf_supernet.extract_subnet(peft_model, s)):
            sub = extract(spec)
            assert isinstance(sub, PeftModel) and type(sub.get_base_model()) is Wav2Vec2ForCTC
            with torch.no_grad():
                torch.testing.assert_close(
                    sub(audio, attention_mask=mask).logits,
                    peft_model(audio, attention_mask=mask, subnet=spec).logits,
                    atol=1e-4, rtol=0,
                )
