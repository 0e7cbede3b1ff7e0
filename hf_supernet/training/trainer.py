"""``SupernetTrainer``: transformers' ``Trainer`` that trains a whole family of subnets at once.

Each optimizer step runs the sandwich rule (largest + smallest + k random subnets of ``model.subnet_space``),
distils the largest subnet's detached output into the others, sums the losses (weighted per role, see
``SupernetTrainingArguments``) and lets ``Trainer`` do one backward and one optimizer step. Mask types contribute
extra losses and per-step hooks through the model's mask interface (``model.mask.training_space`` /
``training_subnets`` / ``subnet_loss`` / ``extra_loss`` / ``on_optimizer_step``); the trainer never asks which mask
type it holds. The math lives in :mod:`.sandwich` and :mod:`.distillation`.

A peft-wrapped supernet (``get_peft_model(supernet, LoraConfig(...))``) trains the same way: only the adapter's
parameters require gradients, and every subnet of the sandwich runs through the adapter, cut to its width.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainerCallback

from ..adapters.lora import unwrap_peft
from ..subnets import SubnetSpec
from .arguments import SupernetTrainingArguments
from .distillation import ctc_distillation_loss
from .optim import ScaledAdam
from .sandwich import LARGEST, RANDOM, SMALLEST, batch_rows, sandwich_subnets, take_rows

SAMPLER_STATE_FILE = "subnet_sampler.safetensors"


def _keep_control(args, state, control, metrics=None, **kwargs):
    """A ``CallbackHandler.on_evaluate`` that tells no callback and leaves the control as it is."""
    return control


class MaskHooksCallback(TrainerCallback):
    """Forwards ``on_optimizer_step`` to the model's mask method (e.g. Omni-sparsity's pruning step)."""

    def __init__(self, trainer: SupernetTrainer):
        self.trainer = trainer

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        model = self.trainer.supernet()
        model.mask.on_optimizer_step(model, optimizer, state.global_step)


class OptimizerSwitchMixin:
    """A ``Trainer`` mixin for TODM's optimizer switch: from ``args.optimizer_switch_step`` on, training continues
    with ScaledAdam (``SupernetTrainingArguments``' fields). ``SupernetTrainer`` has it; a plain ``Trainer`` gets it
    as ``class MyTrainer(OptimizerSwitchMixin, Trainer)`` (e.g. to train a separate model with the same optimizer)."""

    optimizer_switched = False

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self.optimizer_switched and self.args.optimizer_switched_at(self.state.global_step):
            self.switch_to_scaled_adam()
        return super().training_step(model, inputs, num_items_in_batch)

    def switch_to_scaled_adam(self) -> None:
        """Continue with ScaledAdam over the same parameter groups (fresh moments), keeping the learning-rate
        schedule's shape with ``learning_rate_after_switch`` as its peak."""
        groups = [
            {"params": list(group["params"]), "weight_decay": group.get("weight_decay", 0.0)}
            for group in self.optimizer.param_groups
        ]
        # The schedule's current multiplier, read off the old optimizer, carries over to the new rate.
        scheduler = self.lr_scheduler
        multipliers = [
            group["lr"] / base if base else 1.0 for group, base in zip(self.optimizer.param_groups, scheduler.base_lrs)
        ]
        new_lr = self.args.learning_rate_after_switch
        optimizer = ScaledAdam(groups, lr=new_lr, clipping_scale=2.0)
        for group, multiplier in zip(optimizer.param_groups, multipliers):
            group["initial_lr"] = new_lr
            group["lr"] = new_lr * multiplier
        self.optimizer = self.accelerator.prepare_optimizer(optimizer)
        scheduler.optimizer = self.optimizer
        scheduler.base_lrs = [new_lr] * len(optimizer.param_groups)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]  # what get_last_lr() reports
        self.callback_handler.optimizer = self.optimizer
        self.optimizer_switched = True

    def _clip_grad_norm(self, model):
        # ScaledAdam clips gradients itself (median-based); the Trainer's max_grad_norm clipping stops at the switch.
        if self.optimizer_switched:
            return None
        return super()._clip_grad_norm(model)

    def _load_optimizer_and_scheduler(self, checkpoint):
        # A checkpoint written after the switch holds ScaledAdam's state: switch before loading it. The switch
        # happens before the step that starts at global_step == optimizer_switch_step, so the checkpoint of that
        # very step still holds Adam's (training_step then switches as in an uninterrupted run).
        switched = self.args.optimizer_switched_at(self.state.global_step - 1)
        if checkpoint is not None and switched and not self.optimizer_switched:
            self.switch_to_scaled_adam()
        super()._load_optimizer_and_scheduler(checkpoint)


class SupernetTrainer(OptimizerSwitchMixin, Trainer):
    """``Trainer`` with sandwich sampling and in-place distillation.

    Args:
        eval_subnets (`dict[str, SubnetSpec]`, *optional*):
            Subnets to evaluate besides the largest and smallest (and any `config.selected_subnets`); `evaluate()`
            reports metrics per subnet as `eval_<name>_<metric>`.
        Everything else as for [`~transformers.Trainer`]; `args` must be a [`SupernetTrainingArguments`].
    """

    def __init__(self, model=None, args: SupernetTrainingArguments | None = None, *pos, eval_subnets=None, **kwargs):
        if not isinstance(args, SupernetTrainingArguments):
            raise TypeError("SupernetTrainer needs SupernetTrainingArguments (it adds the sandwich/distillation fields).")
        if args.use_scaled_adam and kwargs.get("optimizer_cls_and_kwargs") is None:
            kwargs["optimizer_cls_and_kwargs"] = (ScaledAdam, {"lr": args.learning_rate, "clipping_scale": 2.0})
        super().__init__(model, args, *pos, **kwargs)
        self.model.config.adaptive_dropout = args.adaptive_dropout
        self.subnet_generator = torch.Generator().manual_seed(args.subnet_seed)
        self.eval_subnets = dict(eval_subnets or {})
        self._role_losses: dict[str, list[float]] = defaultdict(list)
        self.add_callback(MaskHooksCallback(self))

    def supernet(self, model=None):
        """The supernet being trained, unwrapped from accelerate/DDP and from peft (the mask hooks see the supernet's
        own modules and parameter names)."""
        return unwrap_peft(self.accelerator.unwrap_model(model if model is not None else self.model))

    # ---------------------------------------------------------------- training
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:
            # Evaluation / prediction: one forward as the active subnet (see `evaluate`).
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss

        supernet = self.supernet(model)
        args: SupernetTrainingArguments = self.args
        # The part of the space open at this step (a mask type may open its space up during training), then what
        # the mask type makes of the draw (e.g. soft-masked training variants).
        subnets = sandwich_subnets(supernet.mask.training_space(), args.num_random_subnets, self.subnet_generator)
        subnets = supernet.mask.training_subnets(subnets, self.subnet_generator, self.state.global_step)
        batch_size = inputs[supernet.main_input_name].shape[0]
        rows = batch_rows(batch_size, len(subnets), args.sandwich_batch_split)
        # One set of SpecAugment masks per batch for every subnet (the config's mask_time_prob / mask_feature_prob):
        # a student distilled from the largest then sees the input its teacher saw.
        if hasattr(supernet, "spec_augment_masks") and "mask_time_indices" not in inputs:
            inputs = {**inputs, **supernet.spec_augment_masks(inputs[supernet.main_input_name],
                                                               inputs.get("attention_mask"))}
        # Per-role weights; roles a mask type adds beyond the sandwich's three weigh 1.
        task_weights = {LARGEST: 1.0, SMALLEST: args.smallest_loss_weight, RANDOM: args.random_loss_weight}
        distill_scales = {SMALLEST: 1.0, RANDOM: args.random_distill_weight}

        teacher_logits = None
        total, largest_outputs, distill_terms = 0.0, None, []
        weight = args.distill_weight_at(self.state.global_step)
        for (role, spec), part in zip(subnets, rows):
            outputs = model(**take_rows(inputs, part), subnet=spec)
            task_loss = supernet.mask.subnet_loss(spec, outputs.loss, self.state.global_step)
            total = total + task_weights.get(role, 1.0) * task_loss
            self._role_losses[f"loss_{role}"].append(outputs.loss.detach().item())
            if role == LARGEST:
                largest_outputs = outputs
                if args.distillation != "none":
                    teacher_logits = self._teacher_logits(model, inputs, spec, part, outputs.logits, batch_size)
            elif args.distillation != "none" and distill_scales.get(role, 1.0) > 0:
                kd = ctc_distillation_loss(
                    teacher_logits[part],
                    outputs.logits,
                    attention_mask=outputs.output_attention_mask,
                    method=args.distillation,
                    top_k=args.distill_top_k or None,
                    alpha_min=args.alpha_min,
                    alpha_max=args.alpha_max,
                    alpha_clip=args.alpha_clip,
                )
                distill_terms.append(kd.detach().item())
                total = total + weight * distill_scales.get(role, 1.0) * kd
        if distill_terms:
            self._role_losses["loss_distill"].append(sum(distill_terms) / len(distill_terms))

        extra = supernet.mask.extra_loss(supernet, self.state.global_step)
        if extra is not None:
            total = total + extra
            self._role_losses["loss_mask"].append(extra.detach().item())
        return (total, largest_outputs) if return_outputs else total

    @staticmethod
    def _teacher_logits(model, inputs, largest, rows: slice, logits: torch.Tensor, batch_size: int) -> torch.Tensor:
        """The largest subnet's detached logits on every row of the batch.

        Its own training forward gives ``rows``; with the ``"split"`` batch split the students train on other rows,
        whose teacher output comes from one extra no-grad forward of the largest on just those rows (not the whole
        batch again: a quarter of the teacher forward saved). ``batch_rows`` gives the largest the first part, and
        every part of a padded batch has the same number of frames, so the parts join along the batch axis.
        """
        if rows.start not in (0, None):
            raise ValueError(f"The largest subnet must train on the first rows of the batch, got {rows}.")
        end = rows.stop if rows.stop is not None else batch_size
        if end >= batch_size:
            return logits.detach()
        with torch.no_grad():
            rest = model(**take_rows(inputs, slice(end, batch_size)), subnet=largest).logits
        return torch.cat([logits.detach(), rest], dim=0)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Adds the mean per-role losses since the last log (``loss_largest``, ``loss_smallest``, ...)."""
        if self._role_losses and "loss" in logs:
            names = sorted(self._role_losses)
            local = torch.tensor([sum(v) / len(v) for v in (self._role_losses[n] for n in names)], device=self.args.device)
            means = self.accelerator.reduce(local, reduction="mean") if self.accelerator.num_processes > 1 else local
            logs.update({name: round(value, 4) for name, value in zip(names, means.tolist())})
            self._role_losses.clear()
        super().log(logs, start_time)

    # ---------------------------------------------------------------- evaluation
    def subnets_to_evaluate(self) -> dict[str, SubnetSpec]:
        """largest, smallest, every `config.selected_subnets` entry and `eval_subnets`, by name."""
        supernet = self.supernet()
        space = supernet.subnet_space
        subnets = {"largest": space.largest(), "smallest": space.smallest()}
        for entry in supernet.config.selected_subnets or []:
            subnets[entry["name"]] = SubnetSpec.from_dict(entry["spec"])
        subnets.update(self.eval_subnets)
        return subnets

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        """Evaluates each subnet of :meth:`subnets_to_evaluate`; metrics are ``{prefix}_{name}_{metric}``. The
        plain ``{prefix}_loss`` is the largest subnet's, so ``metric_for_best_model`` keeps working, and
        ``{prefix}_subnets_mean_loss`` is the mean over the evaluated subnets (``metric_for_best_model=
        "subnets_mean_loss"`` selects and early-stops on all of them). Callbacks' ``on_evaluate`` then sees the
        metrics of every subnet at once (``EarlyStoppingCallback`` included)."""
        supernet = self.supernet()
        metrics, losses = {}, []
        handler = self.callback_handler
        for name, spec in self.subnets_to_evaluate().items():
            # Callbacks hear of the evaluation once, below, with every subnet's metrics (not once per subnet with a
            # part of them, which early stopping on the mean loss would warn about).
            handler.on_evaluate = _keep_control
            try:
                with supernet.use_subnet(spec):
                    metrics.update(super().evaluate(eval_dataset, ignore_keys, f"{metric_key_prefix}_{name}"))
            finally:
                del handler.on_evaluate  # the class's method again
            if f"{metric_key_prefix}_{name}_loss" in metrics:
                losses.append(metrics[f"{metric_key_prefix}_{name}_loss"])
        if f"{metric_key_prefix}_largest_loss" in metrics:  # absent when the eval set has no labels
            metrics[f"{metric_key_prefix}_loss"] = metrics[f"{metric_key_prefix}_largest_loss"]
        if losses:
            metrics[f"{metric_key_prefix}_subnets_mean_loss"] = sum(losses) / len(losses)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # ---------------------------------------------------------------- resume
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """``Trainer.train``; ``resume_from_checkpoint=True`` resumes from the newest *complete* checkpoint (a save
        killed midway is skipped), and a folder that is not a checkpoint of this model is refused with what a
        checkpoint is (:func:`~hf_supernet.training.checkpoints.resolve_resume_checkpoint`)."""
        from .checkpoints import resolve_resume_checkpoint

        checkpoint = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir, self.supernet())
        return super().train(checkpoint, *args, **kwargs)

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        # The subnet sampler is part of the training state: without it a resumed run trains other subnets.
        name = SAMPLER_STATE_FILE if self.args.world_size <= 1 else f"subnet_sampler_{self.args.process_index}.safetensors"
        save_file({"state": self.subnet_generator.get_state()}, os.path.join(output_dir, name))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        super()._load_rng_state(checkpoint)
        if checkpoint is None:
            return
        name = SAMPLER_STATE_FILE if self.args.world_size <= 1 else f"subnet_sampler_{self.args.process_index}.safetensors"
        path = os.path.join(checkpoint, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: this checkpoint was not written by SupernetTrainer, so the subnet sampler "
                "cannot resume exactly. Resume from a SupernetTrainer checkpoint or start a new run."
            )
        self.subnet_generator.set_state(load_file(path)["state"])
