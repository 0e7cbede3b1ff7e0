"""Small ``TrainerCallback``s used by the scripts."""

from __future__ import annotations

import time

from transformers import EarlyStoppingCallback, TrainerCallback


class WallClockLimitCallback(TrainerCallback):
    """Stop training once ``seconds`` of wall-clock time have passed since training began (a safety net for
    time-boxed runs such as the quickstart; the step budget still sets the learning-rate schedule)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = None
        self.stopped_early = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.start is not None and time.monotonic() - self.start > self.seconds:
            self.stopped_early = True
            control.should_training_stop = True


class EarlyStoppingFromStepCallback(EarlyStoppingCallback):
    """transformers' ``EarlyStoppingCallback`` that only counts evaluations from optimizer step ``start_step`` on.

    A recipe whose second phase starts late (TODM switches optimizer and cuts the distillation weight at two thirds
    of training) must reach that phase before a plateau of the first one may end the run."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0, start_step: int = 0):
        super().__init__(early_stopping_patience, early_stopping_threshold)
        self.start_step = start_step

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        if state.global_step < self.start_step:
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)
