"""Transcribe recordings with a saved subnet (or a supernet and a budget) through transformers' ASR pipeline.

``transformers.pipeline("automatic-speech-recognition", model=subnet_dir)`` is the one inference path: this module
only adds what a person with a recording needs around it — any file soundfile reads (WAV, FLAC, OGG/Opus, MP3), at
any sampling rate, mono or multi-channel (downmixed), long files cut into chunks, and a supernet folder served at a
budget (``subnet_budget``) — so ``scripts/transcribe.py`` and the pipeline give the same transcripts on the same
arrays.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from transformers import AutoConfig, AutoModelForCTC, AutoProcessor, pipeline

from .data.loading import load_audio

__all__ = ["load_recognizer", "transcribe_file", "transcribe_files"]


def load_recognizer(model: str | os.PathLike, subnet_budget: float | dict | None = None, device: int | str | None = None):
    """An ``AutomaticSpeechRecognitionPipeline`` for the model folder ``model``.

    Args:
        model: a saved subnet or supernet folder with its processor (feature extractor + tokenizer).
        subnet_budget: with a supernet folder, the subnet to serve (as ``from_pretrained(..., subnet_budget=...)``:
            a fraction of the parameters or a dict of limits); ``None`` serves the model as saved.
        device: passed to ``transformers.pipeline`` (``None``: CPU).
    """
    model = os.fspath(model)
    if not os.path.isdir(model):
        raise FileNotFoundError(f"Model folder {model!r} does not exist; pass a folder written by save_pretrained.")
    loaded = model
    if subnet_budget is not None:
        config = AutoConfig.from_pretrained(model)
        model_class = AutoModelForCTC._model_mapping[type(config)]
        if not hasattr(model_class, "select_subnet"):
            raise ValueError(
                f"{model} holds a {config.model_type!r} model, not a supernet, so it has no subnets to choose by "
                "budget; drop subnet_budget (or pass the supernet's folder)."
            )
        loaded = model_class.from_pretrained(model, subnet_budget=subnet_budget)
    processor = AutoProcessor.from_pretrained(model)
    return pipeline(
        "automatic-speech-recognition",
        model=loaded,
        tokenizer=processor.tokenizer,
        feature_extractor=processor.feature_extractor,
        device=device,
    )


def transcribe_file(recognizer, path: str | os.PathLike, chunk_length_s: float | None = 20.0) -> str:
    """The transcript of one recording. Files longer than ``chunk_length_s`` seconds are transcribed in chunks with
    overlapping strides (the pipeline's CTC chunking); ``None`` never chunks.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or cannot be decoded."""
    rate = recognizer.feature_extractor.sampling_rate
    audio = load_audio(path, sampling_rate=rate)
    options = {}
    if chunk_length_s is not None and audio.size > chunk_length_s * rate:
        options = {"chunk_length_s": chunk_length_s, "stride_length_s": chunk_length_s / 6}
    return recognizer(audio, **options)["text"].strip()


def transcribe_files(recognizer, paths: Iterable[str | os.PathLike], chunk_length_s: float | None = 20.0):
    """``(path, transcript or None, error message or None)`` per file, in order; one bad file does not stop the rest."""
    for path in paths:
        try:
            yield path, transcribe_file(recognizer, path, chunk_length_s), None
        except (FileNotFoundError, ValueError) as error:
            yield path, None, str(error)
