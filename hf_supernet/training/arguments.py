"""``SupernetTrainingArguments``: ``TrainingArguments`` plus the supernet-training knobs (defaults from TODM)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..paper_recipes import recipe_training_arguments

BATCH_SPLITS = ("full", "quarter", "split")
DISTILLATION_METHODS = ("none", "kl", "alpha")
# Our extra optimizer name; TrainingArguments validates `optim` against its own enum, so we intercept it.
SCALED_ADAM = "scaled_adam"


@dataclass
class SupernetTrainingArguments(TrainingArguments):
    """
    Args:
        num_random_subnets (`int`, *optional*, defaults to 2):
            Random subnets trained per step besides the largest and the smallest (sandwich rule; TODM uses 2).
        sandwich_batch_split (`str`, *optional*, defaults to `"full"`):
            How a batch is shared among the subnets of a step: `"full"` (every subnet sees the whole batch),
            `"quarter"` (the largest sees the whole batch, every other subnet its own quarter — TODM) or `"split"` (the
            batch is cut into one equal part per subnet — Omni-sparsity).
        distillation (`str`, *optional*, defaults to `"kl"`):
            In-place distillation from the largest subnet's detached output to the others: `"none"`, `"kl"` or
            `"alpha"` (AlphaNet's adaptive alpha-divergence).
        distill_top_k (`int`, *optional*, defaults to 10):
            Per frame, distill over the teacher's top-k classes plus one "rest" bin (TODM); 0 = full distribution.
        alpha_min (`float`, *optional*, defaults to -1.0), alpha_max (`float`, *optional*, defaults to 1.0),
        alpha_clip (`float`, *optional*, defaults to 5.0):
            AlphaNet's alpha range and the clip of the ratio p/q in the gradient surrogate.
        distill_weight (`float`, *optional*, defaults to 1.0):
            Weight λ of the distillation term (`L = CTC + λ·KD` per student subnet).
        smallest_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the smallest subnet's task (CTC) loss; the largest subnet's weighs 1. Unfolding calls it α_p
            (weight of the seed model's loss; its value is not published). TODM / Omni-sparsity: 1.
        random_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of each random subnet's task loss (TODM / Omni-sparsity: 1).
        random_distill_weight (`float`, *optional*, defaults to 1.0):
            Factor on λ for the random subnets' distillation term. 1: every student is distilled (TODM); 0: only the
            smallest is, as in Unfolding (KL from the deepest path to the seed only).
        distill_weight_drop_step (`int`, *optional*):
            Optimizer step from which λ becomes `distill_weight_after_drop` (TODM lowers it late in training, where KD
            alone made validation loss diverge). `None`: never.
        distill_weight_after_drop (`float`, *optional*, defaults to 0.1):
            λ after `distill_weight_drop_step`.
        adaptive_dropout (`bool`, *optional*, defaults to `False`):
            Scale a reduced module's dropout by the share of it the subnet keeps (TODM's `p_i = p_max·c_i/m_i`).
        subnet_seed (`int`, *optional*):
            Seed of the subnet sampler (saved in checkpoints for exact resume); defaults to `seed`.
        optim (`str`):
            Any of `TrainingArguments`' optimizers, or `"scaled_adam"` for ScaledAdam (Zipformer), which does its
            own gradient clipping (so `max_grad_norm` is set to 0); the schedule is still `lr_scheduler_type`.
        optimizer_switch_step (`int`, *optional*):
            Optimizer step from which training continues with ScaledAdam (TODM's Model F trains with Adam, then
            switches to ScaledAdam for the last third). The new optimizer starts with fresh moments; the learning-rate
            schedule keeps its shape with `learning_rate_after_switch` as its peak. Gradient clipping by
            `max_grad_norm` stops at the switch (ScaledAdam clips on its own). `None`: never.
        learning_rate_after_switch (`float`, *optional*, defaults to 0.045):
            Peak learning rate of the schedule after `optimizer_switch_step` (ScaledAdam's rates are relative step
            sizes, far above Adam's; 0.045 is the Zipformer recipes' value).
    """

    num_random_subnets: int = field(default=2, metadata={"help": "Random subnets per step besides largest/smallest."})
    sandwich_batch_split: str = field(default="full", metadata={"help": f"One of {BATCH_SPLITS}."})
    distillation: str = field(default="kl", metadata={"help": f"One of {DISTILLATION_METHODS}."})
    distill_top_k: int = field(default=10, metadata={"help": "Teacher top-k classes + a rest bin; 0 = all."})
    alpha_min: float = field(default=-1.0, metadata={"help": "AlphaNet lower alpha."})
    alpha_max: float = field(default=1.0, metadata={"help": "AlphaNet upper alpha."})
    alpha_clip: float = field(default=5.0, metadata={"help": "AlphaNet clip of p/q in the gradient surrogate."})
    distill_weight: float = field(default=1.0, metadata={"help": "Weight of the distillation loss."})
    smallest_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the smallest subnet's task loss."})
    random_loss_weight: float = field(default=1.0, metadata={"help": "Weight of each random subnet's task loss."})
    random_distill_weight: float = field(default=1.0, metadata={"help": "Factor on λ for random subnets (0: none)."})
    distill_weight_drop_step: int | None = field(default=None, metadata={"help": "Step where the weight drops."})
    distill_weight_after_drop: float = field(default=0.1, metadata={"help": "Distillation weight after the drop."})
    adaptive_dropout: bool = field(default=False, metadata={"help": "Scale dropout by the kept share."})
    subnet_seed: int | None = field(default=None, metadata={"help": "Seed of the subnet sampler (default: seed)."})
    optimizer_switch_step: int | None = field(default=None, metadata={"help": "Step where ScaledAdam takes over."})
    learning_rate_after_switch: float = field(default=0.045, metadata={"help": "Peak lr after the switch."})

    def __post_init__(self):
        self.use_scaled_adam = str(self.optim) == SCALED_ADAM
        if self.use_scaled_adam:
            # Keep TrainingArguments' validation happy; SupernetTrainer builds ScaledAdam itself. ScaledAdam clips
            # gradients on its own (median-based, clipping_scale=2 as in icefall's recipes): no second clipping.
            self.optim = "adamw_torch"
            self.max_grad_norm = 0.0
        super().__post_init__()
        if self.sandwich_batch_split not in BATCH_SPLITS:
            raise ValueError(f"sandwich_batch_split must be one of {BATCH_SPLITS}, got {self.sandwich_batch_split!r}.")
        if self.distillation not in DISTILLATION_METHODS:
            raise ValueError(f"distillation must be one of {DISTILLATION_METHODS}, got {self.distillation!r}.")
        if self.num_random_subnets < 0:
            raise ValueError(f"num_random_subnets must be >= 0, got {self.num_random_subnets}.")
        for name in ("smallest_loss_weight", "random_loss_weight", "random_distill_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.distill_top_k < 0:
            raise ValueError(f"distill_top_k must be >= 0, got {self.distill_top_k}.")
        if self.subnet_seed is None:
            self.subnet_seed = self.seed
        for name in ("optimizer_switch_step", "distill_weight_drop_step"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {getattr(self, name)}.")
        if self.learning_rate_after_switch <= 0:
            raise ValueError(f"learning_rate_after_switch must be > 0, got {self.learning_rate_after_switch}.")

    @classmethod
    def from_recipe(cls, name: str, **overrides) -> SupernetTrainingArguments:
        """Training arguments of a paper's recipe (see :mod:`hf_supernet.paper_recipes` for each field's source);
        ``overrides`` replace any field. Recipes that act at a share of training (TODM's switch at two thirds) need
        ``max_steps``."""
        return cls(**recipe_training_arguments(name, **overrides))

    def optimizer_switched_at(self, step: int) -> bool:
        """Whether ScaledAdam has taken over at optimizer step ``step``."""
        return self.optimizer_switch_step is not None and step >= self.optimizer_switch_step

    def distill_weight_at(self, step: int) -> float:
        """λ at optimizer step ``step``."""
        if self.distill_weight_drop_step is not None and step >= self.distill_weight_drop_step:
            return self.distill_weight_after_drop
        return self.distill_weight
