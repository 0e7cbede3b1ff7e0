"""Training a supernet: arguments, the thin trainer, and the loss math as pure functions."""

from .arguments import SupernetTrainingArguments
from .callbacks import WallClockLimitCallback
from .trainer import OptimizerSwitchMixin, SupernetTrainer

__all__ = ["OptimizerSwitchMixin", "SupernetTrainer", "SupernetTrainingArguments", "WallClockLimitCallback"]
