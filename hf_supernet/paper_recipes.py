"""The papers' own training recipes as presets: ``SupernetTrainingArguments.from_recipe(name, **overrides)`` and
``SupernetConformerConfig.from_recipe(name, **overrides)``.

Each value says where it comes from: ``[TODM §x]`` = Shangguan et al. 2023, "TODM: Train Once Deploy Many"
(seeds/004); ``[Omni §x]`` = Yang et al. 2022, "Omni-sparsity DNN" (seeds/002); ``[OrthoSoftmax]`` = Xu, Beck, Yang,
Schlüter 2025 and ``[Unfolding]`` = "Unfolding a few structures for the many" (seeds/000, 001, 003 hold only their
abstracts and summaries, so most of those recipes' values are *not* in the text we have: such values say
``[not in the seed text]`` and where they come from instead, e.g. the authors' code as read for METHODS.md, or our
choice). Values a recipe does not set keep the dataclass defaults; nothing here depends on model size, so a user's
overrides (``learning_rate``, ``max_steps``, batch size) apply as given.

Recipes that act at a share of training need the run's length: TODM switches optimizer and lowers the distillation
weight at two thirds of training (120 of 180 epochs), so ``max_steps`` must be given to its preset.
"""

from __future__ import annotations

RECIPES = ("todm", "omni_sparsity", "orthosoftmax", "unfolding")

# TODM §5.4: Model F switches to ScaledAdam and cuts λ to 0.1 "at 120 epochs" of 180.
TODM_SWITCH_SHARE = 120 / 180

_TRAINING = {
    "todm": {
        "num_random_subnets": 2,  # [TODM §2.1] max, min and two random subnets per step
        "sandwich_batch_split": "quarter",  # [TODM §2.1] the max subnet gets the whole batch, the others 1/4 each
        "distillation": "alpha",  # [TODM §3, §5.4] Model F: in-place Alpha-divergence KD
        "distill_top_k": 10,  # [TODM §5.4] Model F: "sampled over 10 log-probabilities" (+ the rest bin, §3)
        "alpha_min": -1.0,  # [TODM §3] "α−=−1, α+=1 and β=5.0"
        "alpha_max": 1.0,
        "alpha_clip": 5.0,
        "distill_weight": 1.0,  # [TODM §3, eq. 4] "default λ = 1.0"
        "distill_weight_after_drop": 0.1,  # [TODM §5.4] λ = 0.1 from the optimizer switch on
        "adaptive_dropout": True,  # [TODM §3] adaptive dropout p_i = p·c_i/m_i after reduced modules
        "optim": "adamw_torch",  # [TODM §4] "Adam optimizer with β1 = 0.9, β2 = 0.999" and "0.1 weight decay"
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "weight_decay": 0.1,  # [TODM §4]
        "learning_rate": 6e-3,  # [TODM §4] "a fixed 0.006 learning rate" (for a 99.9 M-parameter model, 32 GPUs)
        # [TODM §4] "force-anneal at 60 epochs with shrinking factor 0.96" is per epoch; a per-step Trainer schedule
        # cannot say it exactly, so [choice]: constant after warm-up (the force-annealing is left out).
        "lr_scheduler_type": "constant_with_warmup",
        "learning_rate_after_switch": 0.045,  # [not in the seed text] ScaledAdam's rate: Zipformer recipes' 0.045
    },
    "omni_sparsity": {
        "num_random_subnets": 2,  # [Omni §2.1] "the smallest, the largest and two random ones"
        "sandwich_batch_split": "split",  # [Omni §2.1] the batch split into four equal parts, one per subnet
        "distillation": "kl",  # [Omni §2.1] in-place KD from the dense supernet's logits; the divergence is
        # [not in the seed text]: KL (the usual in-place KD), full distribution (top-k is TODM's later addition)
        "distill_top_k": 0,
        "adaptive_dropout": True,  # [Omni §2.1] dropout 0.1·(1 − s) per layer of sparsity s
        # [not in the seed text] optimizer and learning rate; Adam-pruning needs Adam's second moments [Omni §2.1].
        "optim": "adamw_torch",
    },
    "orthosoftmax": {
        # [not in the seed text] the batch use and sandwich of stage 2 come from the authors' code as read for
        # METHODS.md: the whole batch for every subnet, the largest + the smallest + one random budget.
        "num_random_subnets": 1,
        "sandwich_batch_split": "full",
        # [not in the seed text] no in-place distillation is described in the summary: CTC per subnet only.
        "distillation": "none",
    },
    "unfolding": {
        # [Unfolding, abstract] "the KL-divergence between the largest unfolded and smallest seed models is used in a
        # self-distillation process": KL from the deepest path into the seed only, over the full distribution.
        "distillation": "kl",
        "distill_top_k": 0,
        "random_distill_weight": 0.0,
        # [not in the seed text] the weight α_p of the seed's task loss: 0.5 is our choice.
        "smallest_loss_weight": 0.5,
        # [Unfolding, abstract] "the seed model and many unfolded paths are jointly trained": the deepest path,
        # the seed and one random path per step [choice: how many paths], each on the whole batch [choice].
        "num_random_subnets": 1,
        "sandwich_batch_split": "full",
    },
}

_CONFIG = {
    "todm": {
        "mask_type": "layer_width",
        # [TODM §4] drop the top 0, 3 or 7 of 16 layers (scaled to the model's depth by the config's default),
        # FFN widths {512, 1024, 2048, 4096} of 4096 = {1/8, 1/4, 1/2, 1}.
        "ffn_width_choices": [0.125, 0.25, 0.5, 1.0],
    },
    "omni_sparsity": {
        "mask_type": "omni_sparsity",
        "omni_sparsity_levels": [0.0, 0.5, 0.6, 0.7, 0.8],  # [Omni §3] per layer; 0 only for the dense model
        "omni_sparsity_block_shape": [8, 1],  # [Omni §3] 8x1 block-wise pruning
        "omni_sparsity_prune_interval": 256,  # [Omni §3] cubic schedule "with interval 256"
        # [Omni §3] "Zero sparsity is not used for sampling random networks or the evolutionary search".
        "omni_sparsity_search_excludes_dense": True,
    },
    "orthosoftmax": {
        "mask_type": "orthosoftmax",
        "orthosoftmax_granularity": "component",  # [OrthoSoftmax, summary] component-wise selection is best
        "orthosoftmax_budget_cost": "flops",  # [OrthoSoftmax, summary] FLOPs-aware selection is best
        # [not in the seed text] the budgets 0.337 ... 1 of the whole model's FLOPs: the paper's table as read for
        # METHODS.md (the config's default).
    },
    "unfolding": {
        "mask_type": "folding",  # [Unfolding, abstract] a seed of few blocks unfolded to deeper logical depths
    },
}


def _check_name(name: str) -> None:
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}; choose one of {list(RECIPES)}.")


def recipe_training_arguments(name: str, **overrides) -> dict:
    """The fields ``SupernetTrainingArguments`` takes for the recipe ``name``, with ``overrides`` applied."""
    _check_name(name)
    values = dict(_TRAINING[name])
    values.update(overrides)
    if name == "todm":
        max_steps = values.get("max_steps", -1)
        explicit = "optimizer_switch_step" in values and "distill_weight_drop_step" in values
        if not explicit and (max_steps is None or max_steps <= 0):
            raise ValueError(
                "The todm recipe switches optimizer and cuts the distillation weight at two thirds of training "
                "[TODM §5.4]; pass max_steps=... (or set optimizer_switch_step and distill_weight_drop_step yourself "
                "and max_steps=-1)."
            )
        if not explicit:
            switch = round(TODM_SWITCH_SHARE * max_steps)
            values.setdefault("optimizer_switch_step", switch)
            values.setdefault("distill_weight_drop_step", switch)
    return values


def recipe_config_fields(name: str, **overrides) -> dict:
    """The ``SupernetConformerConfig`` fields of the recipe ``name``, with ``overrides`` applied."""
    _check_name(name)
    values = dict(_CONFIG[name])
    values.update(overrides)
    return values
