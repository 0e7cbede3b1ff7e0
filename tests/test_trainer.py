import json

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file

from hf_supernet import SupernetConformerForCTC
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments

from .conftest import tiny_conformer_config


def synthetic_dataset(n=16, seed=0):
    """Utterances whose label sequence is encoded in the features, so a tiny model can learn something."""
    gen = torch.Generator().manual_seed(seed)
    rows = {"input_features": [], "labels": []}
    for _ in range(n):
        labels = torch.randint(1, 12, (3,), generator=gen)
        frames = torch.randn(48, 16, generator=gen) * 0.1
        for i, label in enumerate(labels):
            frames[i * 16 : (i + 1) * 16, label] += 1.0
        rows["input_features"].append(frames.tolist())
        rows["labels"].append(labels.tolist())
    return Dataset.from_dict(rows)


def collate(examples):
    features = torch.nn.utils.rnn.pad_sequence([torch.tensor(e["input_features"]) for e in examples], batch_first=True)
    labels = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(e["labels"]) for e in examples], batch_first=True, padding_value=-100
    )
    mask = torch.ones(features.shape[:2], dtype=torch.long)
    return {"input_features": features, "attention_mask": mask, "labels": labels}


def make_trainer(tmp_path, max_steps=4, model=None, **overrides):
    torch.manual_seed(0)
    model = model or SupernetConformerForCTC(tiny_conformer_config())
    values = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        max_steps=max_steps,
        learning_rate=3e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    values.update(overrides)
    args = SupernetTrainingArguments(**values)
    return SupernetTrainer(
        model=model, args=args, train_dataset=synthetic_dataset(), eval_dataset=synthetic_dataset(8, 1), data_collator=collate
    )


@pytest.mark.slow
@pytest.mark.parametrize("split", ["full", "quarter", "split"])
@pytest.mark.parametrize("distillation", ["none", "kl", "alpha"])
def test_sandwich_step_logs_per_role_losses(tmp_path, split, distillation):
    trainer = make_trainer(tmp_path, max_steps=2, sandwich_batch_split=split, distillation=distillation)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2
    for entry in logged:
        assert {"loss_largest", "loss_smallest", "loss_random"} <= set(entry)
        assert ("loss_distill" in entry) == (distillation != "none")
        assert all(torch.isfinite(torch.tensor(v)) for k, v in entry.items() if k.startswith("loss"))


@pytest.mark.parametrize("split", ["full", "quarter", "split"])
def test_every_student_is_distilled_from_the_largest_on_its_own_rows(tmp_path, monkeypatch, split):
    # "split" builds the teacher from the largest's training forward (its rows) plus a no-grad forward of the rest:
    # it must equal the largest's output on the whole batch, row for row.
    import hf_supernet.training.trainer as trainer_module

    model = SupernetConformerForCTC(tiny_conformer_config(hidden_dropout=0.0, activation_dropout=0.0,
                                                          attention_dropout=0.0, final_dropout=0.0))
    trainer = make_trainer(tmp_path, max_steps=1, model=model, sandwich_batch_split=split, distillation="kl",
                           per_device_train_batch_size=8)
    seen = []
    distill = trainer_module.ctc_distillation_loss
    monkeypatch.setattr(trainer_module, "ctc_distillation_loss",
                        lambda teacher, student, **kw: seen.append((teacher, student)) or distill(teacher, student, **kw))
    inputs = collate([trainer.train_dataset[i] for i in range(8)])
    trainer.model.train()
    trainer.compute_loss(trainer.model, inputs)
    with torch.no_grad():
        reference = trainer.model(**inputs, subnet=trainer.model.subnet_space.largest()).logits
    assert len(seen) == 3  # smallest + 2 random students
    covered = 0
    for teacher, student in seen:
        rows = student.shape[0]
        assert rows == (8 if split == "full" else 2)
        start = 0 if split == "full" else (covered + (2 if split == "split" else 0))
        torch.testing.assert_close(teacher, reference[start : start + rows], atol=1e-5, rtol=1e-5)
        covered += 0 if split == "full" else rows
    if split == "split":
        assert covered == 6  # the students' rows are the batch minus the largest's first part


@pytest.mark.slow
def test_training_reduces_every_subnets_loss(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=40, learning_rate=5e-3)
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    for name in ("largest", "smallest"):
        assert after[f"eval_{name}_loss"] < 0.8 * before[f"eval_{name}_loss"]
    assert after["eval_loss"] == after["eval_largest_loss"]


def test_one_sandwich_is_one_optimizer_step(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1, num_random_subnets=0)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    assert trainer.state.global_step == 1
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "conformer.layers.3.ffn1.intermediate_dense.weight" in changed  # the largest trains the top layer


def test_mask_hooks_are_called_through_the_interface(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=3)
    mask = trainer.model.mask
    calls = {"extra": 0, "step": []}

    def extra_loss(model, step):
        calls["extra"] += 1
        return 0.0 * sum(p.sum() for p in model.parameters()) + 0.5

    mask.extra_loss = extra_loss
    mask.on_optimizer_step = lambda model, optimizer, step: calls["step"].append(step)
    trainer.train()
    assert calls["extra"] == 3 and len(calls["step"]) == 3
    assert all("loss_mask" in e for e in trainer.state.log_history if "loss" in e)


def test_mask_chooses_the_subnets_of_a_step_and_their_losses(tmp_path):
    """``training_subnets`` can replace the sandwich's draw and ``subnet_loss`` reweight each subnet's loss."""
    trainer = make_trainer(tmp_path, max_steps=2, distillation="none")
    mask = trainer.model.mask
    seen = []

    def training_subnets(subnets, generator, step):
        assert [role for role, _ in subnets] == ["largest", "smallest", "random", "random"]
        assert isinstance(generator, torch.Generator)
        seen.append(step)
        return [subnets[0], ("tiny", subnets[1][1])]

    mask.training_subnets = training_subnets
    mask.subnet_loss = lambda spec, loss, step: 0.0 * loss if spec == mask.space().smallest() else loss
    trainer.train()
    assert seen == [0, 1]
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert all({k for k in e if k.startswith("loss_")} == {"loss_largest", "loss_tiny"} for e in logged)
    # The smallest's loss is logged as computed but weighted 0 in the optimised total.
    assert all(e["loss"] == pytest.approx(e["loss_largest"], rel=1e-3) for e in logged)


def test_adaptive_dropout_flag_reaches_the_model(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1, adaptive_dropout=True)
    assert trainer.model.config.adaptive_dropout is True


def test_evaluate_reports_each_subnet(tmp_path):
    from hf_supernet import LayerWidthSpec

    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.eval_subnets = {"mid": LayerWidthSpec((32, 32, 32))}
    metrics = trainer.evaluate()
    assert {"eval_largest_loss", "eval_smallest_loss", "eval_mid_loss"} <= set(metrics)
    assert metrics["eval_largest_loss"] != metrics["eval_smallest_loss"]


def test_callbacks_hear_of_an_evaluation_once_with_every_subnet(tmp_path):
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self):
            self.calls = []

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            self.calls.append(set(metrics))

    trainer = make_trainer(tmp_path, max_steps=1)
    recorder = Recorder()
    trainer.add_callback(recorder)
    trainer.evaluate()
    trainer.evaluate()
    assert len(recorder.calls) == 2
    assert {"eval_largest_loss", "eval_smallest_loss", "eval_subnets_mean_loss"} <= recorder.calls[0]


@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    """Killed after 3 steps and resumed == 6 uninterrupted steps (model, optimizer, scheduler, sampler RNG)."""
    full = make_trainer(tmp_path / "full", max_steps=6, save_strategy="steps", save_steps=3)
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-3"
    assert (checkpoint / "subnet_sampler.safetensors").exists()
    assert (checkpoint / "model.safetensors").exists()

    resumed = make_trainer(tmp_path / "resumed", max_steps=6, save_strategy="no")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    final, again = full.model.state_dict(), resumed.model.state_dict()
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=1e-5, atol=1e-6)

    # Without the sampler state it must not pretend to resume exactly.
    (checkpoint / "subnet_sampler.safetensors").unlink()
    broken = make_trainer(tmp_path / "broken", max_steps=6)
    with pytest.raises(FileNotFoundError, match="subnet sampler"):
        broken.train(resume_from_checkpoint=str(checkpoint))


@pytest.mark.slow
def test_sampler_state_is_safetensors(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=2)
    trainer.train()
    state = load_file(tmp_path / "checkpoint-2" / "subnet_sampler.safetensors")["state"]
    assert torch.equal(state, trainer.subnet_generator.get_state())


def test_arguments_validate():
    with pytest.raises(ValueError, match="sandwich_batch_split"):
        SupernetTrainingArguments(output_dir="x", sandwich_batch_split="halves", report_to=[])
    with pytest.raises(ValueError, match="distillation"):
        SupernetTrainingArguments(output_dir="x", distillation="mse", report_to=[])
    for name in ("smallest_loss_weight", "random_loss_weight", "random_distill_weight"):
        with pytest.raises(ValueError, match=f"{name} must be >= 0"):
            SupernetTrainingArguments(output_dir="x", report_to=[], **{name: -0.5})
    args = SupernetTrainingArguments(output_dir="x", distill_weight_drop_step=10, report_to=[], seed=7)
    assert args.distill_weight_at(9) == 1.0 and args.distill_weight_at(10) == 0.1
    assert args.subnet_seed == 7
    json.dumps(args.to_dict())  # serialisable like any TrainingArguments


def test_trainer_requires_supernet_arguments(tmp_path):
    from transformers import TrainingArguments

    with pytest.raises(TypeError, match="SupernetTrainingArguments"):
        SupernetTrainer(model=SupernetConformerForCTC(tiny_conformer_config()), args=TrainingArguments(str(tmp_path)))


@pytest.mark.slow
def test_scaled_adam_is_an_optimizer_choice(tmp_path):
    from hf_supernet.training.optim import ScaledAdam

    trainer = make_trainer(tmp_path, max_steps=3, optim="scaled_adam", learning_rate=0.02)
    trainer.train()
    assert isinstance(trainer.optimizer.optimizer, ScaledAdam) and trainer.args.max_grad_norm == 0.0
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)
