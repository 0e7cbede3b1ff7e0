"""Paper recipes as presets, and TODM's optimizer switch (Adam -> ScaledAdam at a step)."""

import pytest
import torch

from hf_supernet import SupernetConformerConfig
from hf_supernet.paper_recipes import RECIPES, recipe_config_fields, recipe_training_arguments
from hf_supernet.training import SupernetTrainingArguments
from hf_supernet.training.optim import ScaledAdam

from .test_trainer import make_trainer


@pytest.mark.parametrize("name", RECIPES)
def test_each_preset_sets_the_fields_it_documents(name):
    fields = recipe_training_arguments(name, max_steps=300)
    args = SupernetTrainingArguments.from_recipe(name, output_dir="x", report_to=[], max_steps=300)
    for field, value in fields.items():
        if field == "optim":  # TrainingArguments turns the name into its enum
            assert getattr(args.optim, "value", args.optim) == value
        else:
            assert getattr(args, field) == value, field
    config = SupernetConformerConfig.from_recipe(name, num_hidden_layers=4, hidden_size=32, intermediate_size=64,
                                                 vocab_size=12)
    for field, value in recipe_config_fields(name).items():
        assert getattr(config, field) == value, field


def test_todm_preset_is_model_f():
    args = SupernetTrainingArguments.from_recipe("todm", output_dir="x", report_to=[], max_steps=900)
    # Model F: quarter split, alpha-divergence over top-10 + rest, adaptive dropout, and at two thirds of training
    # the switch to ScaledAdam with the distillation weight cut from 1 to 0.1.
    assert (args.sandwich_batch_split, args.distillation, args.distill_top_k, args.adaptive_dropout) == (
        "quarter", "alpha", 10, True)
    assert args.optimizer_switch_step == args.distill_weight_drop_step == 600
    assert args.distill_weight_at(599) == 1.0 and args.distill_weight_at(600) == 0.1
    assert not args.optimizer_switched_at(599) and args.optimizer_switched_at(600)


def test_presets_refuse_what_they_cannot_express():
    with pytest.raises(ValueError, match="max_steps"):
        SupernetTrainingArguments.from_recipe("todm", output_dir="x", report_to=[])
    with pytest.raises(ValueError, match="Unknown recipe 'slimmable'"):
        SupernetTrainingArguments.from_recipe("slimmable", output_dir="x")
    # Overrides win, including the switch step.
    args = SupernetTrainingArguments.from_recipe("todm", output_dir="x", report_to=[], max_steps=-1,
                                                 num_train_epochs=2, optimizer_switch_step=5,
                                                 distill_weight_drop_step=7, distillation="kl")
    assert (args.optimizer_switch_step, args.distill_weight_drop_step, args.distillation) == (5, 7, "kl")
    with pytest.raises(ValueError, match="optimizer_switch_step must be >= 0"):
        SupernetTrainingArguments(output_dir="x", report_to=[], optimizer_switch_step=-1)


def test_optimizer_switch_changes_the_optimizer_at_the_step(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=6, optimizer_switch_step=3, learning_rate_after_switch=0.02,
                           lr_scheduler_type="linear", max_grad_norm=1.0)
    classes = []
    original = trainer.training_step

    def recording_step(model, inputs, num_items_in_batch=None):
        loss = original(model, inputs, num_items_in_batch)
        classes.append((trainer.state.global_step, type(trainer.optimizer.optimizer).__name__))
        return loss

    trainer.training_step = recording_step
    trainer.train()
    assert classes == [(0, "AdamW"), (1, "AdamW"), (2, "AdamW"), (3, "ScaledAdam"), (4, "ScaledAdam"), (5, "ScaledAdam")]
    assert trainer.state.global_step == 6
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    # The schedule keeps its shape (linear decay to 0 at step 6) with the new peak: step 3 of 6 -> half of 0.02.
    rates = {e["step"]: e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e}
    assert rates[4] == pytest.approx(0.02 * 3 / 6, rel=1e-6)
    assert rates[2] == pytest.approx(3e-3 * 5 / 6, rel=1e-6)


@pytest.mark.parametrize("stop", [2, 3, 4])
def test_resume_across_the_switch_reproduces_an_uninterrupted_run(tmp_path, stop):
    """Killed before (2), at (3: the checkpoint still holds Adam's state, ScaledAdam's first step is the 4th) or after
    (4) the switch at step 3 and resumed == 6 uninterrupted steps."""
    settings = dict(optimizer_switch_step=3, learning_rate_after_switch=0.02)
    full = make_trainer(tmp_path / "full", max_steps=6, save_strategy="steps", save_steps=stop, **settings)
    full.train()
    resumed = make_trainer(tmp_path / "resumed", max_steps=6, **settings)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / f"checkpoint-{stop}"))
    assert isinstance(resumed.optimizer.optimizer, ScaledAdam) and resumed.state.global_step == 6
    final, again = full.model.state_dict(), resumed.model.state_dict()
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=1e-5, atol=1e-6)


def test_progressive_shrinking_opens_smaller_subnets_in_stages():
    from hf_supernet import SupernetConformerForCTC
    from hf_supernet.training.sandwich import sandwich_subnets

    from .conftest import tiny_conformer_config

    model = SupernetConformerForCTC(tiny_conformer_config(layer_width_shrinking_steps=[3, 6]))
    space, mask = model.subnet_space, model.mask
    generator = torch.Generator().manual_seed(0)
    depth = space.largest().num_layers
    for step in range(9):
        drawn = sandwich_subnets(mask.training_space(), 2, generator)
        trained = mask.training_subnets(drawn, generator, step)
        if step < 3:  # the largest alone
            assert trained == drawn[:1]
        elif step < 6:  # elastic width: every subnet keeps every layer, the sandwich's roles stay
            assert [role for role, _ in trained] == [role for role, _ in drawn]
            assert all(spec.num_layers == depth and spec in space for _, spec in trained)
            assert trained[1][1] == type(space.smallest())((min(space.width_choices[0]),) * depth)
        else:
            assert trained == drawn
    with pytest.raises(ValueError, match="layer_width_shrinking_steps"):
        tiny_conformer_config(layer_width_shrinking_steps=[5, 2])


def test_a_plain_trainer_takes_the_optimizer_switch_as_a_mixin(tmp_path):
    from transformers import Trainer

    from hf_supernet import SupernetConformerForCTC
    from hf_supernet.training import OptimizerSwitchMixin

    from .conftest import tiny_conformer_config
    from .test_trainer import collate, synthetic_dataset

    class SeparateTrainer(OptimizerSwitchMixin, Trainer):
        pass

    torch.manual_seed(0)
    args = SupernetTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=4,
                                     learning_rate=3e-3, optimizer_switch_step=2, learning_rate_after_switch=0.02,
                                     report_to=[], use_cpu=True, logging_steps=1)
    trainer = SeparateTrainer(model=SupernetConformerForCTC(tiny_conformer_config()), args=args,
                              train_dataset=synthetic_dataset(), data_collator=collate)
    trainer.train()
    assert isinstance(trainer.optimizer.optimizer, ScaledAdam) and trainer.state.global_step == 4
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)
