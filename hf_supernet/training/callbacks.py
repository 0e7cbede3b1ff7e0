"""Small ``TrainerCallback``s used by the scripts."""

from __future__ import annotations

import time

from transformers import TrainerCallback


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
