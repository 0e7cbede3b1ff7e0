"""Which checkpoint a run resumes from: never one a killed save left half-written, never a folder that is not one.

``Trainer`` writes a checkpoint folder ``output_dir/checkpoint-<step>`` file by file and ``trainer_state.json``
last, so a save killed midway leaves a folder without a readable ``trainer_state.json``; transformers'
``get_last_checkpoint`` would still pick it (the highest step) and the resumed run would fail or start from a
half-written state. :func:`resolve_resume_checkpoint` skips such folders and turns a wrong
``resume_from_checkpoint`` (a saved model rather than a checkpoint, or a checkpoint of another architecture) into an
error that says what a checkpoint is, instead of a raw state-dict size mismatch.
"""

from __future__ import annotations

import glob
import json
import os
import re

from safetensors import SafetensorError, safe_open
from transformers.trainer import TRAINER_STATE_NAME
from transformers.utils import logging

from ..integrity import verify_checksums

logger = logging.get_logger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
WHAT_A_CHECKPOINT_IS = (
    "A training checkpoint is a checkpoint-<step> folder that the Trainer writes inside output_dir every save_steps "
    "(weights, optimizer.pt, scheduler.pt, rng_state.pth, subnet_sampler.safetensors and, last, trainer_state.json)."
)


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a readable ``trainer_state.json`` (the file a checkpoint save writes last)."""
    try:
        with open(os.path.join(folder, TRAINER_STATE_NAME)) as f:
            return isinstance(json.load(f), dict)
    except (OSError, ValueError):
        return False


def _checkpoints(output_dir: str | os.PathLike) -> list[str]:
    """The ``checkpoint-<step>`` folders of ``output_dir``, newest step first."""
    if not os.path.isdir(output_dir):
        return []
    found = [
        (int(m[1]), name)
        for name in os.listdir(output_dir)
        if (m := _CHECKPOINT.match(name)) and os.path.isdir(os.path.join(output_dir, name))
    ]
    return [os.path.join(output_dir, name) for _, name in sorted(found, reverse=True)]


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint of ``output_dir`` that a save finished (partial ones are skipped, with a warning)."""
    for path in _checkpoints(output_dir):
        if is_complete_checkpoint(path):
            return path
        logger.warning(f"Skipping {path}: it has no readable {TRAINER_STATE_NAME}, so its save was interrupted.")
    return None


def resolve_resume_checkpoint(resume, output_dir: str | os.PathLike, model=None) -> str | None:
    """The checkpoint folder ``Trainer.train(resume_from_checkpoint=resume)`` should load, checked.

    ``None``/``False``: none. ``True`` (or the strings ``"true"`` / ``"last"``): the newest complete checkpoint of
    ``output_dir``. A path: that folder, if it is a complete checkpoint whose weights match their recorded
    checksums and have ``model``'s shapes.
    Anything else raises an error naming the folder and what a checkpoint is."""
    if resume is None or resume is False:
        return None
    if resume is True or (isinstance(resume, str) and resume.strip().lower() in ("true", "last")):
        path = last_complete_checkpoint(output_dir)
        if path is None:
            raise ValueError(
                f"resume_from_checkpoint={resume!r}: {output_dir} holds no complete checkpoint to resume from. "
                f"{WHAT_A_CHECKPOINT_IS} Start a new run instead."
            )
        verify_checksums(path)
        return path
    path = os.fspath(resume)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"resume_from_checkpoint={path!r} is not a folder. {WHAT_A_CHECKPOINT_IS}")
    inside = last_complete_checkpoint(path)
    if inside is not None and not os.path.isfile(os.path.join(path, "optimizer.pt")):
        raise ValueError(
            f"{path} is a run's output_dir, not a checkpoint; resume from its newest complete checkpoint {inside} "
            "(or pass resume_from_checkpoint=True with that output_dir)."
        )
    if not is_complete_checkpoint(path):
        if _CHECKPOINT.match(os.path.basename(os.path.normpath(path))):
            kind = f"a checkpoint whose save was interrupted (it has no readable {TRAINER_STATE_NAME})"
            last = last_complete_checkpoint(os.path.dirname(os.path.normpath(path)))
        else:
            kind = f"not a training checkpoint (it has no {TRAINER_STATE_NAME}; a saved model is not a checkpoint)"
            last = None
        hint = f" The newest complete one next to it is {last}." if last else ""
        raise ValueError(
            f"Cannot resume from {path}: it is {kind}. {WHAT_A_CHECKPOINT_IS}{hint} To start from a saved model's "
            "weights instead, load it with from_pretrained and start a new run."
        )
    verify_checksums(path)  # a checkpoint whose weights were damaged since they were saved is refused
    if model is not None:
        _check_shapes(path, model)
    return path


def _check_shapes(path: str, model) -> None:
    """Refuse a checkpoint whose weights do not fit ``model`` (another architecture), naming the tensors."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    mismatched = []
    for file in sorted(glob.glob(os.path.join(path, "model*.safetensors"))):
        try:
            with safe_open(file, framework="pt") as f:
                for name in f.keys():
                    shape = tuple(f.get_slice(name).get_shape())
                    if name in expected and expected[name] != shape:
                        mismatched.append(f"{name}: {list(shape)} in the checkpoint, {list(expected[name])} here")
        except SafetensorError as error:
            raise ValueError(f"Cannot resume from {path}: {file} is not a readable safetensors file ({error}).") from None
    if mismatched:
        shown = "; ".join(mismatched[:3]) + (f"; and {len(mismatched) - 3} more" if len(mismatched) > 3 else "")
        raise ValueError(
            f"Cannot resume from {path}: it was trained with another model configuration ({shown}). Resume with the "
            "model arguments of that run (see its config.json), or start a new run."
        )
