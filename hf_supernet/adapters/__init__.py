"""Parameter-efficient fine-tuning of supernets with peft: one LoRA adapter, trained with sandwich sampling, adapts
every subnet (:mod:`.lora`); supernet modules run a linear layer, adapted or not, through
:func:`hf_supernet.slicing.subnet_linear`.

Importing hf_supernet registers the supernets' default LoRA target modules with peft as soon as peft is imported, so
``get_peft_model(supernet, LoraConfig())`` adapts the attention projections and feed-forward linears."""

from .lora import (
    SUPERNET_LORA_TARGET_MODULES,
    check_lora_config,
    extract_base_subnet,
    extract_lora_subnet,
    lora_target_candidates,
    register_lora_target_modules,
    supernet_lora_config,
    unwrap_peft,
)

__all__ = [
    "SUPERNET_LORA_TARGET_MODULES",
    "check_lora_config",
    "extract_base_subnet",
    "extract_lora_subnet",
    "lora_target_candidates",
    "register_lora_target_modules",
    "supernet_lora_config",
    "unwrap_peft",
]
