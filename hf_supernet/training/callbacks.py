"""Small ``TrainerCallback``s used by the scripts: time budgets (wall clock, training CPU seconds)."""

from __future__ import annotations

import json
import logging
import time

from transformers import EarlyStoppingCallback, TrainerCallback

from ..latency import cpu_seconds
from ..search.evaluation import evaluate_subnet

logger = logging.getLogger(__name__)


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


class CpuBudgetCallback(TrainerCallback):
    """Scores the full model on the test batches every ``every`` training CPU seconds and stops training after
    ``budget`` of them; evaluation CPU time is kept out of the training count."""

    def __init__(self, model, batches, tokenizer, budget: float, every: float, log_path: str):
        self.model, self.batches, self.tokenizer = model, batches, tokenizer
        self.budget, self.every, self.log_path = budget, every, log_path
        self.start = self.eval_cpu = self.next_eval = None
        self.records = []

    def train_cpu(self) -> float:
        return cpu_seconds() - self.start - self.eval_cpu

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.eval_cpu, self.next_eval, self.wall = cpu_seconds(), 0.0, self.every, time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        used = self.train_cpu()
        if used >= self.budget:
            control.should_training_stop = True
        elif used >= self.next_eval:
            self.evaluate(state)
            self.next_eval += self.every

    def on_train_end(self, args, state, control, **kwargs):
        self.evaluate(state)

    def evaluate(self, state):
        used, before = self.train_cpu(), cpu_seconds()
        spec = self.model.subnet_space.largest()
        scores = evaluate_subnet(self.model, spec, self.batches, self.tokenizer)
        self.eval_cpu += cpu_seconds() - before
        losses = [e["loss"] for e in state.log_history if "loss" in e]
        record = {
            "train_cpu_s": round(used, 1), "wall_s": round(time.monotonic() - self.wall, 1), "step": state.global_step,
            "epoch": round(state.epoch or 0.0, 2), "train_loss": float(losses[-1]) if losses else None,
            "test_loss": scores["loss"], "test_wer": scores["wer"], "test_cer": scores["cer"],
        }
        self.records.append(record)
        logger.info("eval %s", record)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")


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
