"""Training a supernet: arguments, the thin trainer, and the loss math as pure functions."""

from .arguments import SupernetTrainingArguments
from .callbacks import WallClockLimitCallback
from .trainer import SupernetTrainer

__all__ = ["SupernetTrainer", "SupernetTrainingArguments", "WallClockLimitCallback"]
