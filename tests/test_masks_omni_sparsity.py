"""mask_type="omni_sparsity": exact block sparsity per layer, Adam-pruning importance, the cubic schedule of the
trainable sparsity, exact extraction, checkpoints that keep the masks, and training through SupernetTrainer."""

import logging
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_supernet import ConformerForCTC, OmniSparsitySpec, SubnetSpec, SupernetConformerForCTC
from hf_supernet.masks.omni_sparsity import (
    adam_importance,
    block_scores,
    cubic_max_sparsity,
    descending_ranks,
)
from hf_supernet.slicing import block_grid
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments

from .conftest import assert_extraction_matches, padded_batch, tiny_conformer_config
from .test_trainer import collate, synthetic_dataset

LEVELS = (0.0, 0.5, 0.6, 0.7, 0.8)


def omni_config(**overrides):
    values = dict(mask_type="omni_sparsity")
    values.update(overrides)
    return tiny_conformer_config(**values)


def omni_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return SupernetConformerForCTC(omni_config(**overrides)).eval()


class FakeAdam:
    """An optimizer as far as the mask hook can tell: ``state[param]["exp_avg_sq"]``."""

    def __init__(self, second_moments):
        self.state = {p: {"exp_avg_sq": v} for p, v in second_moments.items()}


def random_second_moments(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {p: torch.rand(p.shape, generator=gen) for p in model.parameters()}


def prune_with_random_adam_state(model, seed=0):
    """A pruning step whose importance differs from the magnitudes (so masks are not the init's)."""
    mask = model.mask
    interval = model.config.omni_sparsity_prune_interval
    mask.on_optimizer_step(model, FakeAdam(random_second_moments(model, seed)), interval - 1)


def ranks(model):
    return {k: v.clone() for k, v in model.mask.state_dict().items() if k.startswith("block_ranks")}


def magnitude_ranks(model):
    """The rankings a fresh model computes from its weights' magnitudes at first use."""
    assert int(model.mask.masks_step) == -1
    model.mask.weight_masks(0, 0.5)
    return ranks(model)


# --------------------------------------------------------------------------------------------------- space
def test_space_spans_every_level_per_layer():
    space = omni_model().subnet_space
    assert space.largest() == OmniSparsitySpec((0.0,) * 4)
    assert space.smallest() == OmniSparsitySpec((0.8,) * 4)
    assert len(space) == len(LEVELS) ** 4 == len(set(space))
    spec = OmniSparsitySpec((0.0, 0.8, 0.5, 0.6))
    assert spec in space and space.from_genes(space.to_genes(spec)) == spec
    assert SubnetSpec.from_json(spec.to_json()) == spec
    assert OmniSparsitySpec((0.5,) * 3) not in space  # one entry per layer
    assert OmniSparsitySpec((0.5, 0.5, 0.5, 0.55)) not in space
    with pytest.raises(ValueError, match="not a subnet"):
        omni_model().extract_subnet(OmniSparsitySpec((0.9,) * 4))
    # neighbors_up: one layer one level denser each.
    assert set(space.neighbors_up(OmniSparsitySpec((0.0, 0.5, 0.8, 0.8)))) == {
        OmniSparsitySpec((0.0, 0.0, 0.8, 0.8)),
        OmniSparsitySpec((0.0, 0.5, 0.7, 0.8)),
        OmniSparsitySpec((0.0, 0.5, 0.8, 0.7)),
    }


def test_configurable_levels_and_json_round_trip(tmp_path):
    config = omni_config(omni_sparsity_levels=[0.9 - 0.3, 0, 0.3])  # unsorted, with float noise
    assert config.omni_sparsity_levels == [0.0, 0.3, 0.6]
    config.save_pretrained(tmp_path)
    loaded = type(config).from_pretrained(tmp_path)
    assert SupernetConformerForCTC(loaded).subnet_space.smallest() == OmniSparsitySpec((0.6,) * 4)


# ------------------------------------------------------------------------------------------ block sparsity
# Uneven widths, one of them (44) not a multiple of the 8-row block, and a layer without self-attention.
UNEVEN = dict(num_hidden_layers=3, layer_ffn_dims=[64, 44, [40, 24]], layer_attention_heads=[4, 0, 2])


def block_view(mask, block):
    """(block rows, block cols, rows*cols) view of a full-shape mask, padding partial blocks with their own
    first entry so that 'all equal within a block' stays checkable."""
    rows, cols = block_grid(tuple(mask.shape), block)
    padded = torch.zeros(rows * block[0], cols * block[1], dtype=mask.dtype)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    for r in range(mask.shape[0], rows * block[0]):
        padded[r] = padded[rows * block[0] - block[0]]
    for c in range(mask.shape[1], cols * block[1]):
        padded[:, c] = padded[:, cols * block[1] - block[1]]
    return padded.view(rows, block[0], cols, block[1]).permute(0, 2, 1, 3).reshape(rows, cols, -1)


@pytest.mark.parametrize("block", [(8, 1), (1, 8), (4, 4)])
@pytest.mark.parametrize("level", [0.5, 0.6, 0.7, 0.8])
def test_each_matrix_keeps_exactly_its_share_of_whole_blocks(level, block):
    model = omni_model(**UNEVEN, omni_sparsity_block_shape=list(block))
    prune_with_random_adam_state(model)
    for layer in range(3):
        masks = model.mask.weight_masks(layer, level)
        assert masks, "every layer has prunable weights"
        for name, mask in masks.items():
            assert mask.shape == model.conformer.layers[layer].get_parameter(name).shape
            blocks = block_view(mask, block)
            assert (blocks.all(-1) | ~blocks.any(-1)).all(), f"{name}: a block is partly kept"
            num_blocks = blocks.shape[0] * blocks.shape[1]
            assert int(blocks.all(-1).sum()) == round((1 - level) * num_blocks), name
        # Layer sparsity is the requested level up to one block of rounding per matrix.
        weights = sum(m.numel() for m in masks.values())
        largest_block = block[0] * block[1]
        kept = sum(int(m.sum()) for m in masks.values())
        assert abs(kept / weights - (1 - level)) <= len(masks) * largest_block / weights


@pytest.mark.parametrize("level", [0.5, 0.6, 0.7, 0.8])
def test_layer_pooling_keeps_exactly_its_share_of_the_layers_blocks(level):
    model = omni_model(**UNEVEN, omni_sparsity_pooling="layer")
    prune_with_random_adam_state(model)
    for layer in range(3):
        masks = model.mask.weight_masks(layer, level)
        kept = total = 0
        for mask in masks.values():
            blocks = block_view(mask, (8, 1))
            assert (blocks.all(-1) | ~blocks.any(-1)).all()
            kept += int(blocks.all(-1).sum())
            total += blocks.shape[0] * blocks.shape[1]
        assert kept == round((1 - level) * total)


def test_masks_nest_across_levels_and_only_prunable_weights_are_masked():
    model = omni_model()
    prune_with_random_adam_state(model)
    for layer in range(4):
        looser = None
        for level in LEVELS[1:]:
            masks = model.mask.weight_masks(layer, level)
            assert set(masks) == {
                f"{u}.{w}.weight" for u in ("ffn1", "ffn2") for w in ("intermediate_dense", "output_dense")
            } | {f"self_attn.{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "out_proj")} | {
                "conv_module.pointwise_in.weight", "conv_module.pointwise_out.weight"
            }
            if looser is not None:
                assert all((masks[k] <= looser[k]).all() for k in masks), "a sparser mask keeps a pruned block"
            looser = masks
    plans = model.mask.block_plans(OmniSparsitySpec((0.0, 0.5, 0.8, 0.0)))
    assert plans[0].weight_masks is None and plans[3].weight_masks is None


def test_extracted_weights_carry_the_block_zeros_and_costs_count_nonzeros():
    model = omni_model()
    prune_with_random_adam_state(model)
    spec = OmniSparsitySpec((0.8, 0.5, 0.0, 0.7))
    dense = model.extract_subnet(spec)
    # The plain dense model: no mask state; the zeros are in its weights, their block shape in its config.
    assert type(dense) is ConformerForCTC and not any("mask." in k for k in dense.state_dict())
    assert dense.config.sparsity_block_shape == [8, 1]
    for layer, s in enumerate(spec.sparsity):
        weight = dense.conformer.layers[layer].ffn1.intermediate_dense.weight
        zero_blocks = int((~block_view(weight != 0, (8, 1)).any(-1)).sum())
        num_blocks = (64 // 8) * 32
        assert zero_blocks == num_blocks - round((1 - s) * num_blocks)
        assert (dense.conformer.layers[layer].conv_module.depthwise_conv.weight != 0).all()  # stays dense
    nonzero = sum(int(p.count_nonzero()) if p.dim() > 1 else p.numel() for p in dense.parameters())
    assert model.subnet_costs(spec).params == nonzero < dense.num_parameters()
    assert model.subnet_costs(spec).flops < model.subnet_costs().flops


# --------------------------------------------------------------------------------------------- importance
def test_adam_importance_and_block_scores():
    w = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    v = torch.tensor([[4.0, 1.0], [0.0, 16.0]])
    torch.testing.assert_close(adam_importance(w, v), torch.tensor([[2.0, 2.0], [0.0, 2.0]]))
    torch.testing.assert_close(adam_importance(w), w.abs())
    scores = torch.arange(12.0).view(3, 4)  # 3 rows: blocks of 2 rows leave a partial last block
    expected = torch.tensor([[2.0, 3.0, 4.0, 5.0], [8.0, 9.0, 10.0, 11.0]])  # last block: row 2 alone
    torch.testing.assert_close(block_scores(scores, (2, 1)), expected)
    assert descending_ranks(torch.tensor([0.1, 0.5, 0.5, 0.0])).tolist() == [2, 0, 1, 3]  # ties: lower index first


def kept_magnitude(model, layer, name, level):
    """Mean |w| of the kept and of the pruned weights of one matrix."""
    weight = model.conformer.layers[layer].get_parameter(name).detach().abs()
    mask = model.mask.weight_masks(layer, level)[name]
    return weight[mask].mean(), weight[~mask].mean()


def test_importance_is_magnitude_before_the_first_pruning_step_and_adam_after():
    model = omni_model()
    name = "ffn1.intermediate_dense.weight"
    kept, pruned = kept_magnitude(model, 0, name, 0.5)
    assert kept > pruned  # fresh model: the largest-magnitude blocks are kept
    assert int(model.mask.masks_step) == 0
    weights = {p: p for p in model.parameters()}
    # Second moments that make small weights important: |w| * sqrt(1 / |w|^4) = 1 / |w|.
    adam = FakeAdam({p: 1.0 / (w.detach().abs() + 1e-6) ** 4 for p, w in weights.items()})
    interval = model.config.omni_sparsity_prune_interval
    before = ranks(model)
    model.mask.on_optimizer_step(model, adam, interval - 2)  # not a pruning step: nothing moves
    assert all(torch.equal(before[k], v) for k, v in ranks(model).items())
    assert int(model.mask.schedule_step) == interval - 1
    model.mask.on_optimizer_step(model, adam, interval - 1)
    assert int(model.mask.masks_step) == interval
    kept, pruned = kept_magnitude(model, 0, name, 0.5)
    assert kept < pruned  # the Adam importance, not the magnitude, chose the blocks


def test_optimizer_without_second_moments_falls_back_to_magnitude(caplog):
    model = omni_model()
    magnitude = magnitude_ranks(model)
    prune_with_random_adam_state(model)
    assert any(not torch.equal(magnitude[k], v) for k, v in ranks(model).items())
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(padded_batch([20])[0]).logits.sum().backward()
    sgd.step()
    with caplog.at_level(logging.WARNING, logger="hf_supernet.masks.omni_sparsity"):
        model.mask.update_masks(sgd)
    assert "magnitude" in caplog.text and "SGD" in caplog.text
    # The weights moved by one SGD step; the magnitude ranking of the moved weights is what we get.
    expected = descending_ranks(
        block_scores(model.conformer.layers[0].ffn1.intermediate_dense.weight.detach().abs(), (8, 1)).flatten()
    )
    assert torch.equal(model.mask.block_ranks_0[: expected.numel()], expected)


# ------------------------------------------------------------------------------------------------ schedule
@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),  # start: s_i
        (255, 0.0),  # held until the first pruning step
        (256, 0.8 * (1 - 0.75**3)),  # 0.4625
        (511, 0.8 * (1 - 0.75**3)),
        (512, 0.7),  # middle: 0.8 * (1 - 0.5^3)
        (768, 0.8 * (1 - 0.25**3)),
        (1024, 0.8),  # end: s_f
        (10_000, 0.8),  # clamped after the end
    ],
)
def test_cubic_schedule_values_at_known_steps(step, expected):
    value = cubic_max_sparsity(step, initial=0.0, final=0.8, start=0, length=1024, interval=256)
    assert math.isclose(value, expected, abs_tol=1e-12)


def test_cubic_schedule_start_offset_initial_value_and_no_ramp():
    kwargs = dict(initial=0.5, final=0.8, interval=100)
    assert cubic_max_sparsity(300, start=400, length=400, **kwargs) == 0.5  # before t0: s_i
    assert math.isclose(cubic_max_sparsity(600, start=400, length=400, **kwargs), 0.8 - 0.3 * 0.5**3)
    assert cubic_max_sparsity(99, start=0, length=0, **kwargs) == 0.8  # no ramp: s_f from t0 on


def test_training_space_opens_as_the_schedule_raises_the_largest_sparsity():
    model = omni_model(omni_sparsity_prune_interval=4, omni_sparsity_schedule_steps=8)
    mask, gen = model.mask, torch.Generator().manual_seed(0)
    seen = {}
    for step in range(12):
        space = mask.training_space()
        s_max = mask.max_sparsity
        samples = [space.sample(gen) for _ in range(50)]
        assert all(max(s.sparsity) <= s_max + 1e-9 for s in samples + [space.smallest()])
        assert space.largest() == mask.space().largest()
        seen[step] = (s_max, space.smallest().sparsity[0], {x for s in samples for x in s.sparsity})
        mask.on_optimizer_step(model, FakeAdam(random_second_moments(model)), step)
    # Steps 0-3: s_max = 0, only the dense net trains. 4-7: s_max = 0.7 (0.8 * (1 - 0.5^3)). 8-: 0.8.
    assert seen[0] == (0.0, 0.0, {0.0})
    assert math.isclose(seen[4][0], 0.7) and seen[4][1] == 0.7 and seen[4][2] == {0.5, 0.6, 0.7}  # no dense layers
    assert seen[11][1:] == (0.8, {0.5, 0.6, 0.7, 0.8})
    # The full space (search, extraction) never shrinks.
    assert mask.space().smallest() == OmniSparsitySpec((0.8,) * 4)


# ---------------------------------------------------------------------------------------------- equivalence
EQUIVALENCE_MODELS = {
    "matrix_8x1": omni_model(**UNEVEN),
    "layer_1x8_sub8": omni_model(
        seed=1, omni_sparsity_pooling="layer", omni_sparsity_block_shape=[1, 8], subsampling_factor=8
    ),
}
for _seed, _model in enumerate(EQUIVALENCE_MODELS.values()):
    prune_with_random_adam_state(_model, _seed)


@st.composite
def omni_cases(draw):
    name = draw(st.sampled_from(sorted(EQUIVALENCE_MODELS)))
    model = EQUIVALENCE_MODELS[name]
    spec = OmniSparsitySpec(tuple(draw(st.sampled_from(LEVELS)) for _ in range(model.config.num_hidden_layers)))
    lengths = draw(st.lists(st.integers(min_value=9, max_value=48), min_size=1, max_size=3))
    return model, spec, lengths, draw(st.integers(0, 2**16))


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(omni_cases())
def test_extracted_subnet_matches_masked_supernet(case):
    model, spec, lengths, seed = case
    features, mask = padded_batch(lengths, seed=seed)
    dense, _ = assert_extraction_matches(model, spec, features, mask)
    nonzero = sum(int(p.count_nonzero()) if p.dim() > 1 else p.numel() for p in dense.parameters())
    assert model.subnet_costs(spec).params == nonzero


# ------------------------------------------------------------------------------------------- checkpoints
def test_save_load_round_trip_keeps_masks_and_schedule(tmp_path):
    model = omni_model(omni_sparsity_prune_interval=4)
    prune_with_random_adam_state(model, seed=3)  # masks differ from the magnitudes a fresh load would compute
    model.mask.on_optimizer_step(model, None, 5)  # not a pruning step: only the step count moves
    spec = OmniSparsitySpec((0.8, 0.6, 0.5, 0.7))
    features, mask = padded_batch([30, 21])
    with torch.no_grad(), model.use_subnet(spec):
        expected = model(features, mask).logits
    model.save_pretrained(tmp_path)
    loaded = SupernetConformerForCTC.from_pretrained(tmp_path).eval()
    assert all(torch.equal(v, loaded.mask.state_dict()[k]) for k, v in model.mask.state_dict().items())
    assert int(loaded.mask.schedule_step) == 6 and loaded.mask.max_sparsity == model.mask.max_sparsity
    with torch.no_grad(), loaded.use_subnet(spec):
        torch.testing.assert_close(loaded(features, mask).logits, expected, rtol=0, atol=0)


def test_fresh_checkpoint_computes_the_same_magnitude_masks_after_loading(tmp_path):
    model = omni_model()
    model.save_pretrained(tmp_path)  # masks not computed yet
    assert int(model.mask.masks_step) == -1
    loaded = SupernetConformerForCTC.from_pretrained(tmp_path).eval()
    for layer in range(4):
        a, b = model.mask.weight_masks(layer, 0.7), loaded.mask.weight_masks(layer, 0.7)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_from_pretrained_with_a_budget_returns_a_dense_subnet_that_fits(tmp_path):
    model = omni_model()
    prune_with_random_adam_state(model)
    model.save_pretrained(tmp_path)
    full = model.subnet_costs().params
    dense = SupernetConformerForCTC.from_pretrained(tmp_path, subnet_budget=0.5)
    assert type(dense) is ConformerForCTC and dense.config.subnet_spec["mask_type"] == "omni_sparsity"
    nonzero = sum(int(p.count_nonzero()) if p.dim() > 1 else p.numel() for p in dense.parameters())
    assert nonzero <= 0.5 * full
    spec = SubnetSpec.from_dict(dense.config.subnet_spec)
    assert nonzero == model.subnet_costs(spec).params
    # The most parameters that fit: no single layer one level denser still fits.
    assert all(model.subnet_costs(up).params > 0.5 * full for up in model.subnet_space.neighbors_up(spec))


def test_masks_first_built_in_inference_mode_still_train():
    model = omni_model()
    spec = OmniSparsitySpec((0.5,) * 4)
    features, mask = padded_batch([20])
    with torch.inference_mode(), model.use_subnet(spec):
        model(features, mask)
    model.train()
    with model.use_subnet(spec):
        model(features, mask).logits.sum().backward()
    assert model.conformer.layers[0].ffn1.intermediate_dense.weight.grad is not None


# ------------------------------------------------------------------------------------------ dropout/trainer
def test_adaptive_dropout_scales_every_dropout_of_a_layer_by_one_minus_sparsity(monkeypatch):
    import torch.nn.functional as F

    model = omni_model(num_hidden_layers=1, final_dropout=0.0).train()
    model.config.adaptive_dropout = True
    rates = []
    dropout, sdpa = F.dropout, F.scaled_dot_product_attention

    def spy_dropout(x, p=0.5, training=True, inplace=False):
        rates.append(p)
        return dropout(x, p, training)

    def spy_sdpa(*args, dropout_p=0.0, **kwargs):
        rates.append(dropout_p)
        return sdpa(*args, dropout_p=dropout_p, **kwargs)

    monkeypatch.setattr(F, "dropout", spy_dropout)
    monkeypatch.setattr(F, "scaled_dot_product_attention", spy_sdpa)
    features, mask = padded_batch([20])
    with model.use_subnet(OmniSparsitySpec((0.8,))):
        model(features, mask)
    # Front end (0.1), then the block: every dropout at 0.1 * (1 - 0.8) (activation + residual of each FFN, attention
    # probabilities and output, conv output), then the head (final_dropout=0).
    expected = [0.1] + [0.1 * 0.2] * 7 + [0.0]
    assert len(rates) == len(expected) and all(math.isclose(p, q) for p, q in zip(rates, expected))


@pytest.fixture
def drawn(monkeypatch):
    """(s_max, subnets) of every sandwich the trainer draws."""
    import hf_supernet.training.trainer as trainer_module

    record, original = [], trainer_module.sandwich_subnets

    def recording(space, num_random, generator):
        subnets = original(space, num_random, generator)
        record.append((space.max_sparsity, [spec for _, spec in subnets]))
        return subnets

    monkeypatch.setattr(trainer_module, "sandwich_subnets", recording)
    return record


def run_trainer(tmp_path, max_steps=4, **arg_overrides):
    torch.manual_seed(0)
    model = SupernetConformerForCTC(
        omni_config(omni_sparsity_prune_interval=2, omni_sparsity_schedule_steps=2)
    )
    values = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=max_steps, learning_rate=3e-3,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=0,
        sandwich_batch_split="split", adaptive_dropout=True,
    )
    values.update(arg_overrides)
    trainer = SupernetTrainer(
        model=model, args=SupernetTrainingArguments(**values), train_dataset=synthetic_dataset(), data_collator=collate
    )
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize("optim", ["adamw_torch", "scaled_adam"])
def test_supernet_trainer_trains_and_prunes_with_adam_importance(tmp_path, drawn, optim, caplog):
    trainer = run_trainer(tmp_path, optim=optim)
    model = trainer.model
    magnitude = magnitude_ranks(model)
    with caplog.at_level(logging.WARNING, logger="hf_supernet.masks.omni_sparsity"):
        trainer.train()
    assert "magnitude" not in caplog.text
    assert int(model.mask.schedule_step) == 4 and int(model.mask.masks_step) == 4
    # Step 0-1 train the dense net only (s_max = 0); from step 2 the whole space is open (ramp of one interval).
    assert [s_max for s_max, _ in drawn] == [0.0, 0.0, 0.8, 0.8]
    assert all(max(spec.sparsity) <= s_max for s_max, specs in drawn for spec in specs)
    assert drawn[2][1][1] == OmniSparsitySpec((0.8,) * 4)  # the smallest
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 4 and all(math.isfinite(e["loss"]) for e in logged)
    # Masks changed at the pruning steps, and are exactly the Adam-pruning ranking of the final optimizer state.
    after = ranks(model)
    assert any(not torch.equal(magnitude[k], v) for k, v in after.items())
    model.mask.update_masks(trainer.optimizer)
    assert all(torch.equal(after[k], v) for k, v in ranks(model).items())


@pytest.mark.slow
def test_supernet_trainer_resume_continues_the_schedule(tmp_path, drawn):
    trainer = run_trainer(tmp_path, max_steps=3, save_strategy="steps", save_steps=3)
    trainer.train()
    ranks_at_3 = ranks(trainer.model)
    resumed = run_trainer(tmp_path, max_steps=4)
    assert int(resumed.model.mask.schedule_step) == 0
    drawn.clear()
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    # The resumed step samples from the space open at step 3 (s_max = 0.8), with the masks pruned at step 2.
    assert [s_max for s_max, _ in drawn] == [0.8]
    assert int(resumed.model.mask.schedule_step) == 4 and int(resumed.model.mask.masks_step) == 4
    assert any(not torch.equal(ranks_at_3[k], v) for k, v in ranks(resumed.model).items())


@pytest.mark.slow
def test_training_reduces_the_largest_and_the_sparsest_subnets_loss(tmp_path):
    torch.manual_seed(0)
    model = SupernetConformerForCTC(omni_config(omni_sparsity_prune_interval=5, omni_sparsity_schedule_steps=20))
    args = SupernetTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, per_device_eval_batch_size=8, max_steps=40,
        learning_rate=5e-3, logging_steps=10, save_strategy="no", report_to=[], use_cpu=True,
        dataloader_num_workers=0, seed=0, sandwich_batch_split="split", adaptive_dropout=True,
    )
    trainer = SupernetTrainer(
        model=model, args=args, train_dataset=synthetic_dataset(), eval_dataset=synthetic_dataset(8, 1),
        data_collator=collate,
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    for name in ("largest", "smallest"):  # smallest: every layer at 0.8 sparsity
        assert after[f"eval_{name}_loss"] < 0.8 * before[f"eval_{name}_loss"], name


def test_search_can_leave_out_the_dense_level_as_the_paper_does(monkeypatch):
    import hf_supernet.search.subnet_search as subnet_search

    model = SupernetConformerForCTC(omni_config(omni_sparsity_search_excludes_dense=True))
    space = model.mask.search_space()
    assert 0.0 not in space.levels and set(space.levels) == {0.5, 0.6, 0.7, 0.8}
    assert all(spec in model.subnet_space for spec in space)
    # The dense level is still trained (the sandwich's largest) and still part of the space.
    assert model.subnet_space.largest() == OmniSparsitySpec((0.0,) * 4)
    assert SupernetConformerForCTC(omni_config()).mask.search_space().levels[0] == 0.0

    seen = []

    def fake_search(space, *args, **kwargs):
        seen.append(space)
        raise StopIteration

    monkeypatch.setattr(subnet_search, "evolutionary_search", fake_search)
    with pytest.raises(StopIteration):
        subnet_search.search_subnets(model, synthetic_dataset(4), data_collator=collate, budgets=[0.5], progress=False)
    assert 0.0 not in seen[0].levels
