"""mask_type="orthosoftmax": units, orthogonality loss, nested budgets, stages, exact extraction, training."""

import importlib.util
import itertools
import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_supernet import ConformerForCTC, OrthoSoftmaxSpec, SupernetConformerConfig, SupernetConformerForCTC
from hf_supernet.masks.orthosoftmax import (
    OrthoSoftmaxMask,
    OrthoSoftmaxTrainingSpec,
    build_units,
    format_kept_units,
    greedy_ranking,
    kept_units_report,
    orthogonality_loss,
    plot_kept_units,
)

from .conftest import assert_extraction_matches, padded_batch, tiny_conformer_config


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def ortho_config(**overrides):
    return tiny_conformer_config(mask_type="orthosoftmax", **overrides)


torch.manual_seed(0)
MODELS = {
    "component_flops": SupernetConformerForCTC(ortho_config()).eval(),
    "layer_params": SupernetConformerForCTC(
        ortho_config(orthosoftmax_granularity="layer", orthosoftmax_budget_cost="params")
    ).eval(),
    # Uneven layers, a layer without self-attention, one without conv, one without FFN2, 3 chunks.
    "per_layer": SupernetConformerForCTC(
        ortho_config(
            num_hidden_layers=3,
            layer_ffn_dims=[64, [48, 0], 40],
            layer_attention_heads=[4, 0, 2],
            layer_conv_modules=[True, True, False],
            orthosoftmax_ffn_chunks=3,
            orthosoftmax_budgets=[0.3, 0.6],
        )
    ).eval(),
}


def set_scores(mask: OrthoSoftmaxMask, seed: int, frozen: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mask.scores.copy_(torch.randn(mask.scores.shape, generator=gen))
    mask.frozen.fill_(False)
    if frozen:
        mask.freeze()


# ---------------------------------------------------------------- config and units
def test_config_accepts_orthosoftmax_and_implies_the_full_budget():
    config = SupernetConformerConfig(mask_type="orthosoftmax", orthosoftmax_budgets=[0.5, 0.25])
    assert config.orthosoftmax_budgets == [0.25, 0.5, 1.0]
    assert SupernetConformerConfig(mask_type="orthosoftmax").orthosoftmax_budgets == [0.337, 0.457, 0.578, 0.759, 1.0]
    space = SupernetConformerForCTC(ortho_config(orthosoftmax_budgets=[0.5])).subnet_space
    assert space.largest() == OrthoSoftmaxSpec(1.0) and space.smallest() == OrthoSoftmaxSpec(0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"orthosoftmax_granularity": "head"}, "orthosoftmax_granularity"),
        ({"orthosoftmax_budget_cost": "latency"}, "orthosoftmax_budget_cost"),
        ({"orthosoftmax_budgets": [1.0]}, "at least one below 1"),
        ({"orthosoftmax_budgets": [0.0, 0.5]}, r"fractions in \(0, 1\]"),
        ({"orthosoftmax_budgets": [1.5]}, r"fractions in \(0, 1\]"),
        ({"orthosoftmax_ffn_chunks": 0}, "orthosoftmax_ffn_chunks"),
        ({"orthosoftmax_stage1_steps": -1}, "orthosoftmax_stage1_steps"),
        ({"orthosoftmax_temperature_decay": 1.5}, "orthosoftmax_temperature_decay"),
        ({"orthosoftmax_min_temperature": 0}, "orthosoftmax_min_temperature"),
        ({"orthosoftmax_stochastic_depth": 1.0}, "orthosoftmax_stochastic_depth"),
        ({"orthosoftmax_orth_weight": -1}, "orthosoftmax_orth_weight"),
    ],
)
def test_config_rejects_bad_orthosoftmax_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SupernetConformerConfig(mask_type="orthosoftmax", **kwargs)


def test_units_component_and_layer_wise():
    names = [u.name for u in build_units(ortho_config()) if u.layer == 0]
    assert names == ["ffn1.0", "ffn1.1", "ffn1.2", "ffn1.3", "head0", "head1", "head2", "head3", "conv",
                     "ffn2.0", "ffn2.1", "ffn2.2", "ffn2.3"]
    assert len(build_units(ortho_config())) == 4 * 13
    layer_wise = build_units(ortho_config(orthosoftmax_granularity="layer"))
    assert [u.name for u in layer_wise[:4]] == ["ffn1", "mhsa", "conv", "ffn2"] and len(layer_wise) == 16
    # Chunks cover every channel exactly once, contiguous and near-equal (64 / 4 = 16 each; 40 / 3 = 14, 13, 13).
    units = MODELS["per_layer"].mask.units
    for layer, kind, width in [(0, "ffn1", 64), (1, "ffn1", 48), (2, "ffn2", 40)]:
        members = [u.members for u in units if u.layer == layer and u.kind == kind]
        assert sum(members, ()) == tuple(range(width))
        assert max(map(len, members)) - min(map(len, members)) <= 1
    # Modules a layer lacks have no unit.
    assert not [u for u in units if u.layer == 1 and u.kind in ("self_attn", "ffn2")]
    assert not [u for u in units if u.layer == 2 and u.kind == "conv_module"]


# ---------------------------------------------------------------- orthogonality loss
@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12).flatmap(lambda m: st.tuples(st.permutations(range(m)), st.integers(1, m))))
def test_orthogonality_loss_is_exactly_zero_for_permutation_like_rows(case):
    perm, rows = case
    one_hot = torch.eye(len(perm))[list(perm)][:rows]
    assert orthogonality_loss(one_hot).item() == 0.0
    # Also through the softmax the mask uses: far-apart scores give exact one-hots in float32.
    assert orthogonality_loss(torch.softmax(1000.0 * one_hot, dim=1)).item() == 0.0


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 10), st.integers(0, 2**16))
def test_orthogonality_loss_is_positive_otherwise(size, seed):
    gen = torch.Generator().manual_seed(seed)
    soft = torch.softmax(torch.randn(size, size, generator=gen), dim=1)
    assert orthogonality_loss(soft).item() > 0
    # One-hot rows that collide (two ranks claiming one unit) are not orthogonal either.
    collide = torch.eye(size)[[0, 0] + list(range(2, size))]
    assert orthogonality_loss(collide).item() > 0


# ---------------------------------------------------------------- binary masks: nesting, budgets, equivalence
def test_greedy_ranking_is_the_row_argmax_when_distinct_and_a_permutation_always():
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    assert greedy_ranking(torch.eye(9)[perm] * 5 + 0.01 * torch.rand(9, 9)) == perm.tolist()
    scores = torch.zeros(4, 4)
    scores[:, 2] = 1.0  # every row prefers unit 2
    assert greedy_ranking(scores) == [2, 0, 1, 3]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(MODELS)), st.integers(0, 2**16), st.booleans())
def test_masks_nest_across_budgets(name, seed, frozen):
    mask = MODELS[name].mask
    set_scores(mask, seed, frozen)
    budgets = mask.space().budgets
    kept = [mask.kept_units(b) for b in budgets]
    for small, large in itertools.pairwise(kept):
        assert large[: len(small)] == small  # a prefix of one ranking, so a subset
    assert sorted(kept[-1]) == list(range(len(mask.units)))  # budget 1.0 is the whole model
    assert MODELS[name].mask.block_plans(OrthoSoftmaxSpec(1.0)) == MODELS[name].mask.full_plans()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(MODELS)), st.integers(0, 2**16))
def test_binary_mask_meets_its_budget_within_unit_granularity(name, seed):
    model = MODELS[name]
    mask = model.mask
    set_scores(mask, seed, frozen=True)
    cost = model.config.orthosoftmax_budget_cost
    full = getattr(model.subnet_costs(), cost)
    empty = mask.cost_of_units(())
    # Nearest prefix: off by at most half of the largest single step (a unit, plus its module's norm and bias when
    # it is the module's first unit).
    step = max(mask.cost_of_units((j,)) - empty for j in range(len(mask.units)))
    for spec in model.subnet_space:
        achieved = getattr(model.subnet_costs(spec), cost)
        assert abs(achieved - spec.budget * full) <= step / 2 + 1e-6 * full, (spec, achieved / full)


@st.composite
def equivalence_cases(draw):
    name = draw(st.sampled_from(sorted(MODELS)))
    lengths = draw(st.lists(st.integers(min_value=9, max_value=40), min_size=1, max_size=3))
    return name, draw(st.integers(0, 2**16)), draw(st.booleans()), lengths


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(equivalence_cases())
def test_extracted_subnet_matches_masked_supernet_for_every_budget(case):
    name, seed, frozen, lengths = case
    model = MODELS[name]
    set_scores(model.mask, seed, frozen)
    features, attention_mask = padded_batch(lengths, seed=seed)
    for spec in model.subnet_space:
        dense, _ = assert_extraction_matches(model, spec, features, attention_mask)
        assert dense.num_parameters() == model.subnet_costs(spec).params
        assert type(dense) is ConformerForCTC and dense.config.subnet_spec == spec.to_dict()


def test_a_block_with_every_unit_off_keeps_only_its_layer_norm():
    model = SupernetConformerForCTC(ortho_config(orthosoftmax_budgets=[0.3])).eval()
    mask = model.mask
    # Rank the top block's units last, so the 30% budget keeps none of them.
    order = [j for j, u in enumerate(mask.units) if u.layer != 3] + [j for j, u in enumerate(mask.units) if u.layer == 3]
    with torch.no_grad():
        mask.scores.copy_(100.0 * torch.eye(len(order))[order])
    mask.freeze()
    assert not any(mask.units[j].layer == 3 for j in mask.kept_units(0.3))
    dense = model.extract_subnet(OrthoSoftmaxSpec(0.3))
    top = dense.conformer.layers[3]
    assert top.ffn1 is None and top.self_attn is None and top.conv_module is None and top.ffn2 is None
    assert [name for name, _ in top.named_parameters()] == ["final_layer_norm.weight", "final_layer_norm.bias"]
    features, attention_mask = padded_batch([20, 31])
    with torch.no_grad(), model.use_subnet(OrthoSoftmaxSpec(0.3)):
        masked = model(features, attention_mask).logits
    torch.testing.assert_close(dense(features, attention_mask).logits, masked, atol=1e-4, rtol=0)


def test_spec_validation():
    model = MODELS["component_flops"]
    with pytest.raises(ValueError, match="not a subnet"):
        model.mask.block_plans(OrthoSoftmaxSpec(0.5))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        OrthoSoftmaxSpec(0.0)
    with pytest.raises(ValueError, match="not a subnet"):  # training-only networks are not deployable subnets
        model.extract_subnet(OrthoSoftmaxTrainingSpec(0.337, soft=True))
    with pytest.raises(ValueError, match="drops units outside"):
        model.mask.block_plans(OrthoSoftmaxTrainingSpec(1.0, dropped_units=(10_000,)))
    assert OrthoSoftmaxSpec.from_json(OrthoSoftmaxSpec(0.457).to_json()) == OrthoSoftmaxSpec(0.457)


# ---------------------------------------------------------------- soft masks and stages
def test_soft_masks_carry_gradients_into_the_scores():
    torch.manual_seed(0)
    model = SupernetConformerForCTC(ortho_config()).train()
    features, attention_mask = padded_batch([24, 17])
    spec = OrthoSoftmaxTrainingSpec(0.578, soft=True)
    plans = model.mask.block_plans(spec)
    assert all(set(p.unit_scales) == {"ffn1", "self_attn", "conv_module", "ffn2"} for p in plans)
    assert plans[0].unit_scales["ffn1"].shape == (64,) and plans[0].unit_scales["self_attn"].shape == (4,)
    model(features, attention_mask, subnet=spec).logits.sum().backward()
    assert model.mask.scores.grad is not None and model.mask.scores.grad.abs().sum() > 0
    # The soft masks are m_j = sum of the first k(p) rows of S; with S near uniform each is near k/M.
    masks = model.mask.soft_masks(0.578)
    k = model.mask.soft_prefix_length(model.mask.soft_scores(), 0.578)
    torch.testing.assert_close(masks, torch.full_like(masks, k / len(masks)), atol=0.05, rtol=0)


def test_layer_wise_soft_masks_scale_whole_modules():
    mask = MODELS["layer_params"].mask
    set_scores(mask, 4, frozen=False)
    masks = mask.soft_masks(0.457)
    for layer, plan in enumerate(mask.block_plans(OrthoSoftmaxTrainingSpec(0.457, soft=True))):
        ids = {u.kind: j for j, u in enumerate(mask.units) if u.layer == layer}
        for kind in ("ffn1", "self_attn", "ffn2"):
            assert torch.equal(plan.unit_scales[kind], masks[ids[kind]].expand_as(plan.unit_scales[kind]))
        assert torch.equal(plan.unit_scales["conv_module"], masks[ids["conv_module"]])


def test_soft_k_matches_the_binary_mask_for_one_hot_rows():
    """With permutation-like scores the soft cost formula and the exact binary mask cost agree (FLOPs add up)."""
    model = SupernetConformerForCTC(ortho_config()).eval()
    mask = model.mask
    perm = torch.randperm(len(mask.units), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        mask.scores.copy_(1000.0 * torch.eye(len(perm))[perm])
    for budget in mask.space().budgets:
        k = mask.soft_prefix_length(mask.soft_scores(), budget)
        assert mask.kept_units(budget) == tuple(perm[:k].tolist())


def test_temperature_anneals_to_its_floor_at_the_stage_switch():
    model = SupernetConformerForCTC(ortho_config(orthosoftmax_stage1_steps=100))
    mask = model.mask
    assert mask.temperature() == 1.0
    mask.trained_steps.fill_(50)
    assert mask.temperature() == pytest.approx(0.1)
    mask.trained_steps.fill_(100)
    assert mask.temperature() == pytest.approx(0.01)
    mask.trained_steps.fill_(500)
    assert mask.temperature() == 0.01
    explicit = SupernetConformerForCTC(ortho_config(orthosoftmax_temperature_decay=0.999992)).mask
    explicit.trained_steps.fill_(1000)
    assert explicit.temperature() == pytest.approx(0.999992**1000)


def test_stage_switch_at_the_configured_step():
    torch.manual_seed(0)
    model = SupernetConformerForCTC(ortho_config(orthosoftmax_stage1_steps=3))
    mask, space = model.mask, model.subnet_space
    sandwich = [("largest", space.largest()), ("smallest", space.smallest()), ("random", space.sample())]
    gen = torch.Generator().manual_seed(0)
    for step in range(3):
        subnets = mask.training_subnets(sandwich, gen, step)
        assert [role for role, _ in subnets] == ["largest", "random"]
        assert subnets[0][1] == space.largest()
        assert subnets[1][1].soft and subnets[1][1].budget < 1
        assert mask.extra_loss(model, step) is not None
        assert not bool(mask.frozen)
        mask.on_optimizer_step(model, None, step)
    assert bool(mask.frozen) and int(mask.trained_steps) == 3
    frozen = mask.ranking()
    assert frozen == greedy_ranking(mask.scores)
    with torch.no_grad():
        mask.scores.normal_()  # scores no longer decide anything
    assert mask.ranking() == frozen
    assert mask.extra_loss(model, 3) is None
    subnets = mask.training_subnets(sandwich, gen, 3)
    assert [role for role, _ in subnets] == ["largest", "smallest", "random"]
    assert subnets[1:] == sandwich[1:]
    # A frozen supernet trained further by a new run (whose steps restart at 0) keeps its frozen masks.
    subnets = mask.training_subnets(sandwich, gen, 0)
    assert subnets[1:] == sandwich[1:] and not getattr(subnets[0][1], "soft", False)
    assert mask.extra_loss(model, 0) is None


def test_stage_one_loss_reweighting():
    mask = MODELS["component_flops"].mask
    loss = torch.tensor(2.0)
    assert mask.subnet_loss(OrthoSoftmaxTrainingSpec(0.337, soft=True), loss, 0) == pytest.approx((1 - torch.exp(-loss)) * loss)
    assert mask.subnet_loss(OrthoSoftmaxSpec(0.337), loss, 0) is loss


def test_stochastic_depth_drops_only_units_outside_the_smallest_subnet():
    model = SupernetConformerForCTC(ortho_config(orthosoftmax_stage1_steps=0, orthosoftmax_stochastic_depth=0.5))
    mask, space = model.mask, model.subnet_space
    sandwich = [("largest", space.largest()), ("smallest", space.smallest())]
    protected = set(mask.kept_units(space.smallest().budget))
    dropped_any = set()
    for seed in range(10):
        (role, spec), *rest = mask.training_subnets(sandwich, torch.Generator().manual_seed(seed), 0)
        assert role == "largest" and rest == sandwich[1:] and spec.budget == 1.0
        assert not protected & set(spec.dropped_units)
        dropped_any |= set(spec.dropped_units)
        again = mask.training_subnets(sandwich, torch.Generator().manual_seed(seed), 0)[0][1]
        assert again == spec  # drawn from the trainer's generator only: resumes draw the same units
        assert mask.block_plans(spec) == mask.plans_for_units(set(range(len(mask.units))) - set(spec.dropped_units))
    assert 0 < len(dropped_any)
    no_drop = SupernetConformerForCTC(ortho_config(orthosoftmax_stage1_steps=0, orthosoftmax_stochastic_depth=0.0))
    assert no_drop.mask.training_subnets(sandwich, torch.Generator(), 0) == sandwich


# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("frozen", [True, False])
def test_save_and_load_keep_the_masks(tmp_path, frozen):
    torch.manual_seed(0)
    model = SupernetConformerForCTC(ortho_config()).eval()
    set_scores(model.mask, 7, frozen)
    model.mask.trained_steps.fill_(42)
    kept = {b: model.mask.kept_units(b) for b in model.subnet_space.budgets}
    if frozen:
        with torch.no_grad():
            model.mask.scores.normal_()  # after the freeze, only the frozen ranking decides
    model.save_pretrained(tmp_path)
    loaded = SupernetConformerForCTC.from_pretrained(tmp_path).eval()
    assert bool(loaded.mask.frozen) == frozen and int(loaded.mask.trained_steps) == 42
    assert {b: loaded.mask.kept_units(b) for b in loaded.subnet_space.budgets} == kept
    features, attention_mask = padded_batch([25, 18])
    spec = OrthoSoftmaxSpec(0.457)
    with torch.no_grad(), model.use_subnet(spec), loaded.use_subnet(spec):
        torch.testing.assert_close(loaded(features, attention_mask).logits, model(features, attention_mask).logits, rtol=0, atol=0)

    dense = SupernetConformerForCTC.from_pretrained(tmp_path, subnet_budget=0.5)
    assert type(dense) is ConformerForCTC  # the plain dense model of the chosen budget
    assert dense.num_parameters() <= 0.5 * model.subnet_costs().params
    chosen = OrthoSoftmaxSpec.from_dict(dense.config.subnet_spec)
    assert chosen in model.subnet_space and dense.num_parameters() == model.subnet_costs(chosen).params
    with torch.no_grad(), model.use_subnet(chosen):
        torch.testing.assert_close(dense.eval()(features, attention_mask).logits, model(features, attention_mask).logits, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- training with SupernetTrainer
@pytest.mark.slow
def test_supernet_trainer_runs_both_stages(tmp_path):
    from .test_trainer import make_trainer

    torch.manual_seed(0)
    model = SupernetConformerForCTC(ortho_config(orthosoftmax_stage1_steps=3))
    initial_scores = model.mask.scores.detach().clone()
    snapshots = {}

    class Snapshot:
        def __call__(self, model, optimizer, step):
            snapshots[step] = model.mask.scores.detach().clone()

    trainer = make_trainer(tmp_path, max_steps=5, model=model, num_random_subnets=1)
    original = model.mask.on_optimizer_step
    model.mask.on_optimizer_step = lambda m, o, s: (original(m, o, s), Snapshot()(m, o, s))
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == 5 and all(torch.isfinite(torch.tensor(e["loss"])) for e in logged)
    stage1, stage2 = logged[:3], logged[3:]
    assert all("loss_mask" in e and "loss_random" in e and "loss_smallest" not in e for e in stage1)
    assert stage1[-1]["loss_mask"] > 0
    assert all("loss_mask" not in e and {"loss_largest", "loss_smallest", "loss_random"} <= set(e) for e in stage2)
    # Stage 1 trains the scores; stage 2 leaves them (and the frozen masks) alone.
    assert not torch.equal(snapshots[2], initial_scores)
    assert torch.equal(snapshots[4], snapshots[2])
    assert bool(model.mask.frozen) and int(model.mask.trained_steps) == 5
    assert model.mask.ranking() == greedy_ranking(snapshots[2])
    metrics = trainer.evaluate()
    assert {"eval_largest_loss", "eval_smallest_loss"} <= set(metrics)


@pytest.mark.slow
def test_resume_across_the_stage_switch_reproduces_an_uninterrupted_run(tmp_path):
    from .test_trainer import make_trainer

    def run(folder, **kwargs):
        torch.manual_seed(0)
        model = SupernetConformerForCTC(ortho_config(orthosoftmax_stage1_steps=2))
        return make_trainer(tmp_path / folder, max_steps=4, model=model, num_random_subnets=1, **kwargs)

    full = run("full", save_strategy="steps", save_steps=2)
    full.train()
    resumed = run("resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-2"))
    final, again = full.model.state_dict(), resumed.model.state_dict()
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- report
def test_report_lists_kept_units_per_budget_and_layer(tmp_path):
    model = MODELS["component_flops"]
    set_scores(model.mask, 5, frozen=True)
    report = kept_units_report(model)
    assert report["frozen"] and list(report["budgets"]) == list(model.subnet_space.budgets)
    for budget, entry in report["budgets"].items():
        kept_names = sum((names for layer in entry["layers"] for names in layer.values()), [])
        assert len(kept_names) == len(model.mask.kept_units(budget))
        assert entry["flops"] == pytest.approx(model.subnet_costs(OrthoSoftmaxSpec(budget)).flops / model.subnet_costs().flops)
    assert report["budgets"][1.0]["kept_share"] == {"ffn1": 1.0, "self_attn": 1.0, "conv_module": 1.0, "ffn2": 1.0}
    text = format_kept_units(report)
    assert "budget 0.337" in text and "layer  3" in text
    png = plot_kept_units(model, tmp_path / "masks.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TypeError, match="orthosoftmax"):
        kept_units_report(SupernetConformerForCTC(tiny_conformer_config()))


def test_report_script(tmp_path, capsys):
    model = MODELS["layer_params"]
    set_scores(model.mask, 2, frozen=True)
    model.save_pretrained(tmp_path / "supernet")
    spec = importlib.util.spec_from_file_location("report_orthosoftmax", SCRIPTS / "report_orthosoftmax.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main([str(tmp_path / "supernet"), "--json", str(tmp_path / "r.json")])
    stdout = capsys.readouterr().out
    assert "budget 0.337" in stdout and "mhsa" in stdout
    assert (tmp_path / "supernet" / "orthosoftmax_masks.png").exists()
    assert set(json.loads((tmp_path / "r.json").read_text())["budgets"]) == {str(b) for b in model.subnet_space.budgets}
