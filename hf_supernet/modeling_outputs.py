"""The one output type of every supernet family's CTC model (the Conformer supernet and the foldable wav2vec2/HuBERT
models): transformers' CTC output plus which output frames are real.

In-place distillation compares a teacher's and a student's frame distributions on real frames only, and the
frame count after subsampling differs by family, so each model reports its own frame mask instead of leaving every
caller to recompute it from the input mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import CausalLMOutput

__all__ = ["SupernetCTCOutput"]


@dataclass
class SupernetCTCOutput(CausalLMOutput):
    """
    [`~transformers.modeling_outputs.CausalLMOutput`] (`loss`, `logits`, `hidden_states`, `attentions`) plus:

    Args:
        output_attention_mask (`torch.BoolTensor` of shape `(batch, frames)`):
            Which output frames are real (not padding).
    """

    output_attention_mask: torch.BoolTensor | None = None
