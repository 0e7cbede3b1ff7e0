"""Feature extractor, CTC tokenizer and processor for hf_supernet speech models.

- :class:`SupernetFeatureExtractor` is transformers' ``ParakeetFeatureExtractor`` (80-bin log-mel at 16 kHz, 25 ms
  window / 10 ms hop, pre-emphasis, per-utterance mean/variance normalisation over the valid frames, padded frames
  exactly 0; pure torch, no torchaudio, no download) with input checks added: a clear error for a wrong sampling rate,
  empty / too short / NaN / Inf audio, and a working mono downmix of multi-channel input.
- :class:`SupernetCTCTokenizer` is a ``SentencePieceBackend`` tokenizer whose id 0 is ``<pad>`` = the CTC blank, with
  CTC decoding (merge repeats, drop blanks) like ``Wav2Vec2CTCTokenizer`` / ``ParakeetTokenizer``.
- :class:`SupernetSpeechProcessor` bundles both, ``Wav2Vec2Processor``-style.

``import hf_supernet.data`` registers all three with transformers' Auto classes.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Iterable

import numpy as np
import sentencepiece
import torch
from transformers import BatchFeature, ParakeetFeatureExtractor, ProcessorMixin
from transformers.tokenization_utils_sentencepiece import SPIECE_UNDERLINE, SentencePieceBackend
from transformers.utils import logging

from .text import normalize_text

logger = logging.get_logger(__name__)

__all__ = [
    "SupernetCTCTokenizer",
    "SupernetFeatureExtractor",
    "SupernetSpeechProcessor",
    "build_parakeet_processor",
    "build_processor",
    "train_tokenizer",
]

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
TOKENIZER_MODEL_TYPES = ("unigram", "bpe", "char", "word")
# Multi-channel in-memory audio has at most this many channels; a wider "channel" axis is a batch axis.
MAX_CHANNELS = 8


# --------------------------------------------------------------------------------------------------------------
# Feature extractor
# --------------------------------------------------------------------------------------------------------------


class SupernetFeatureExtractor(ParakeetFeatureExtractor):
    r"""80-bin log-mel features at 16 kHz with per-utterance normalisation: [`ParakeetFeatureExtractor`] plus checks.

    Returns ``input_features`` of shape `(batch, frames, feature_size)` (100 frames per second; padded frames are
    exactly 0, and valid frames do not depend on how much padding the batch has, up to float rounding of ~1e-6) and
    ``attention_mask`` (`(batch, frames)`, 1 on valid frames, `int64`). With the default ``padding="longest"`` the
    batch has as many frames as its longest utterance has valid ones: Parakeet computes `floor(samples / hop_length)`
    valid frames from a centred STFT of one more, and that trailing frame, padding in every utterance, is dropped
    (a CTC decoder that ignores the mask, like the unchunked ASR pipeline's, would otherwise decode it).

    Why a subclass and not `ParakeetFeatureExtractor` as is:

    - a wrong `sampling_rate` raises a `ValueError` that says how to resample;
    - empty audio, audio shorter than two frames (Parakeet's variance then divides by zero and returns NaN), and
      NaN/Inf samples raise a `ValueError` naming the utterance instead of yielding NaN features;
    - multi-channel input is downmixed (channels averaged): an utterance given as a 2-D array is
      `(frames, channels)` or `(channels, frames)` (the shorter axis is the channel axis), and a single 2-D
      `np.ndarray` `(frames, channels)` with at most 8 channels is one multi-channel utterance. Parakeet treats such
      an array as a batch of tiny utterances, and its per-item downmix has no effect.

    Args:
        feature_size (`int`, *optional*, defaults to 80): number of mel bins.
        sampling_rate (`int`, *optional*, defaults to 16000): rate the audio must have, in Hz.
        hop_length (`int`, *optional*, defaults to 160): STFT hop in samples (10 ms).
        n_fft (`int`, *optional*, defaults to 512): FFT size.
        win_length (`int`, *optional*, defaults to 400): STFT window in samples (25 ms).
        preemphasis (`float`, *optional*, defaults to 0.97): pre-emphasis coefficient (0 disables it).
        padding_value (`float`, *optional*, defaults to 0.0): value of padded samples and of padded frames.
    """

    model_input_names = ["input_features", "attention_mask"]

    @property
    def min_samples(self) -> int:
        """Shortest audio (in samples) that gives the two frames per-utterance normalisation needs."""
        return 2 * self.hop_length + self.n_fft - self.n_fft // 2 * 2

    def _check_sampling_rate(self, sampling_rate: int | None) -> None:
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(
                f"{type(self).__name__} expects audio sampled at {self.sampling_rate} Hz, got sampling_rate="
                f"{sampling_rate}. Resample first, e.g. `soxr.resample(audio, {sampling_rate}, {self.sampling_rate})`"
                f", or load the audio with `hf_supernet.data.load_speech_dataset(..., sampling_rate="
                f"{self.sampling_rate})` or `hf_supernet.data.load_audio(path, {self.sampling_rate})`, which resample."
            )

    def _as_mono_utterances(self, raw_speech) -> list[np.ndarray]:
        """Any accepted input layout → list of 1-D float32 arrays, one per utterance, validated."""
        if isinstance(raw_speech, torch.Tensor):
            raw_speech = raw_speech.detach().cpu().numpy()
        if isinstance(raw_speech, np.ndarray):
            if raw_speech.ndim == 1:
                utterances = [raw_speech]
            elif raw_speech.ndim == 2 and raw_speech.shape[1] <= MAX_CHANNELS < raw_speech.shape[0]:
                utterances = [raw_speech]  # one (frames, channels) recording, as soundfile returns it
            else:
                utterances = list(raw_speech)
        elif isinstance(raw_speech, (list, tuple)) and raw_speech and np.ndim(raw_speech[0]) == 0:
            utterances = [np.asarray(raw_speech)]  # one utterance as a list of floats
        else:
            utterances = list(raw_speech)
        if not utterances:
            raise ValueError("No audio given to the feature extractor.")
        return [self._check_utterance(utterance, index) for index, utterance in enumerate(utterances)]

    def _check_utterance(self, utterance, index: int) -> np.ndarray:
        if isinstance(utterance, torch.Tensor):
            utterance = utterance.detach().cpu().numpy()
        samples = np.asarray(utterance, dtype=np.float32)
        if samples.ndim == 2:
            samples = samples.mean(axis=0 if samples.shape[0] < samples.shape[1] else 1, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"Utterance {index} has shape {samples.shape}; expected (samples,) mono audio.")
        if samples.size == 0:
            raise ValueError(f"Utterance {index} of the batch is empty (0 samples); remove it.")
        if samples.size < self.min_samples:
            raise ValueError(
                f"Utterance {index} has {samples.size} samples ({samples.size / self.sampling_rate * 1000:.1f} ms); "
                f"at least {self.min_samples} are needed for two feature frames. Remove it or pad it with silence."
            )
        if not np.isfinite(samples).all():
            raise ValueError(f"Utterance {index} contains NaN or Inf samples; fix or remove that audio.")
        return samples

    def __call__(self, raw_speech, sampling_rate: int | None = None, return_tensors=None, **kwargs) -> BatchFeature:
        """Compute log-mel features for one utterance or a batch.

        Args:
            raw_speech (`np.ndarray`, `torch.Tensor`, `list[float]` or a list of those):
                Mono audio at `self.sampling_rate`; multi-channel audio is downmixed (see the class docstring).
            sampling_rate (`int`, *optional*):
                Rate of `raw_speech`; checked against `self.sampling_rate` (a `ValueError` explains how to resample).
            return_tensors (`str` or [`~utils.TensorType`], *optional*):
                `"pt"` or `"np"`; by default torch tensors, as `ParakeetFeatureExtractor` returns.
            kwargs:
                Passed to [`ParakeetFeatureExtractor.__call__`] (`padding`, `pad_to_multiple_of`, `device`, ...).
        """
        self._check_sampling_rate(sampling_rate)
        utterances = self._as_mono_utterances(raw_speech)
        features = super().__call__(utterances, sampling_rate=sampling_rate, **kwargs)
        # transformers attention masks are integer tensors; Parakeet returns bool.
        features["attention_mask"] = features["attention_mask"].long()
        if kwargs.get("padding", "longest") in ("longest", True) and kwargs.get("pad_to_multiple_of") is None:
            frames = int(features["attention_mask"].sum(dim=1).max())
            features["input_features"] = features["input_features"][:, :frames]
            features["attention_mask"] = features["attention_mask"][:, :frames]
        return BatchFeature(dict(features), tensor_type=return_tensors)


# --------------------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------------------


class SupernetCTCTokenizer(SentencePieceBackend):
    r"""SentencePiece tokenizer for CTC: id 0 is ``<pad>`` (= the CTC blank), ``<unk>`` is present, no BOS/EOS.

    Text is normalised with :func:`~hf_supernet.data.normalize_text` before encoding (``do_normalize=True``), so
    raw transcripts can be passed. Characters the SentencePiece model has never seen are encoded as ``<unk>`` (a run
    of them as one ``<unk>``) and a warning names them (once per character per tokenizer); retrain the tokenizer on
    text that contains them if they matter.

    `decode` / `batch_decode` do CTC decoding by default (merge repeated ids, drop blanks), like
    [`Wav2Vec2CTCTokenizer`]; pass ``group_tokens=False`` for label sequences, where repeats are real (``"aab"``).
    Negative ids (the ``-100`` of padded labels) are dropped like blanks.

    Create one with :func:`train_tokenizer`, or load one with `AutoTokenizer.from_pretrained` after
    ``import hf_supernet.data``.

    Args:
        vocab_file (`str`):
            SentencePiece model file (``tokenizer.model``) with ``<pad>`` at id 0 and an ``<unk>`` piece.
        unk_token (`str`, *optional*, defaults to `"<unk>"`): unknown-token piece.
        pad_token (`str`, *optional*, defaults to `"<pad>"`): padding piece, also the CTC blank; must be id 0.
        do_normalize (`bool`, *optional*, defaults to `True`): apply `normalize_text` before encoding.
        sp_model_kwargs (`dict`, *optional*): passed to `SentencePieceProcessor`.
    """

    vocab_files_names = {"vocab_file": "tokenizer.model"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        unk_token: str = UNK_TOKEN,
        pad_token: str = PAD_TOKEN,
        do_normalize: bool = True,
        sp_model_kwargs: dict | None = None,
        **kwargs,
    ):
        self.do_normalize = do_normalize
        if sp_model_kwargs is not None:
            kwargs["sp_model_kwargs"] = sp_model_kwargs
        kwargs.setdefault("bos_token", None)
        kwargs.setdefault("eos_token", None)
        # CTC output has no tokenization artefacts to clean, and cleaning would alter transcripts (" 's" → "'s").
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        super().__init__(
            vocab_file=vocab_file,
            unk_token=unk_token,
            pad_token=pad_token,
            do_normalize=do_normalize,
            special_tokens_pattern="none",
            **kwargs,
        )
        if self.pad_token_id != 0:
            raise ValueError(
                f"{vocab_file}: the CTC blank {self.pad_token!r} must be id 0, found id {self.pad_token_id}. Train the "
                "SentencePiece model with pad_id=0 (`train_tokenizer` does)."
            )
        if self.sp_model.id_to_piece(self.unk_token_id) != self.unk_token:
            raise ValueError(f"{vocab_file}: the SentencePiece model has no {self.unk_token!r} piece.")
        special_ids = {self.pad_token_id, self.unk_token_id}
        pieces = (self.sp_model.id_to_piece(index) for index in range(self.vocab_size) if index not in special_ids)
        self._known_characters = set("".join(pieces).replace(SPIECE_UNDERLINE, " ")) | {" "}
        self._warned_characters: set[str] = set()

    def prepare_for_tokenization(self, text, is_split_into_words=False, **kwargs):
        do_normalize = kwargs.pop("do_normalize", self.do_normalize)
        if is_split_into_words:
            text = " " + text
        if do_normalize:
            text = normalize_text(text)
        return text, kwargs

    def _tokenize(self, text, **kwargs):
        unknown = set(text) - self._known_characters - self._warned_characters
        if unknown:
            self._warned_characters |= unknown
            logger.warning(
                f"Characters {sorted(unknown)} (in {text!r}) are not in the tokenizer's vocabulary and are encoded as "
                f"{self.unk_token!r}. Train the tokenizer on text that contains them (`train_tokenizer`) if they "
                "matter; this warning is given once per character."
            )
        return super()._tokenize(text, **kwargs)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        # Word-initial pieces ("▁two") after a lone "▁" would otherwise leave double spaces.
        return " ".join("".join(tokens).replace(SPIECE_UNDERLINE, " ").split())

    def _decode(
        self,
        token_ids: int | list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        group_tokens: bool = True,
        **kwargs,
    ) -> str:
        """CTC decoding: merge repeats (if `group_tokens`), then drop blanks and negative (ignored) ids."""
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        if group_tokens:
            token_ids = [token for token, _ in itertools.groupby(token_ids)]
        token_ids = [token for token in token_ids if token >= 0 and token != self.pad_token_id]
        out_of_range = sorted({token for token in token_ids if token >= len(self)})
        if out_of_range:
            raise ValueError(
                f"Token ids {out_of_range[:5]} are out of range: this tokenizer has {len(self)} ids (0 to "
                f"{len(self) - 1}). The ids come from a model whose vocab_size differs from the tokenizer's, or from "
                "another tokenizer; decode with the processor saved next to the model."
            )
        return super()._decode(
            token_ids,
            skip_special_tokens=skip_special_tokens,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **kwargs,
        )


def _sentencepiece_training_text(texts: Iterable[str], normalize: bool) -> list[str]:
    lines = [normalize_text(text) if normalize else text.strip() for text in texts]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError("train_tokenizer got no non-empty transcripts.")
    return lines


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 128,
    model_type: str = "unigram",
    output_dir: str | os.PathLike | None = None,
    *,
    normalize: bool = True,
    character_coverage: float = 1.0,
    **trainer_kwargs,
) -> SupernetCTCTokenizer:
    """Train a SentencePiece model on transcripts, in process, and return it as a :class:`SupernetCTCTokenizer`.

    Args:
        texts (`Iterable[str]`):
            Transcripts, e.g. ``dataset["text"]``.
        vocab_size (`int`, *optional*, defaults to 128):
            Upper bound on the vocabulary size, `<pad>` and `<unk>` included. Small corpora yield fewer pieces
            (SentencePiece's `hard_vocab_limit=False`), and `char` models have one piece per character whatever
            this is; size the model's output layer with ``len(tokenizer)``.
        model_type (`str`, *optional*, defaults to `"unigram"`):
            `"unigram"`, `"bpe"`, `"char"` or `"word"`. `char` models are trained without SentencePiece's dummy
            prefix, so an utterance does not start with a "▁" piece ("▁" only separates words). `word` models have
            one piece per word of the training text (its boundary included), for a closed vocabulary such as the
            ten digit words; any other word is `<unk>`.
        output_dir (`str` or `os.PathLike`, *optional*):
            If given, the tokenizer is saved there (`save_pretrained`).
        normalize (`bool`, *optional*, defaults to `True`):
            Apply :func:`~hf_supernet.data.normalize_text` to `texts` first (empty results are skipped).
        character_coverage (`float`, *optional*, defaults to 1.0):
            Fraction of characters the model covers; the rest become `<unk>`.
        trainer_kwargs:
            Further `sentencepiece.SentencePieceTrainer.train` options (e.g. `seed_sentencepiece_size`).
    """
    if model_type not in TOKENIZER_MODEL_TYPES:
        raise ValueError(f"model_type must be one of {TOKENIZER_MODEL_TYPES}, got {model_type!r}.")
    lines = _sentencepiece_training_text(texts, normalize)
    model = io.BytesIO()
    options = dict(
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        pad_id=0,
        pad_piece=PAD_TOKEN,
        unk_id=1,
        unk_piece=UNK_TOKEN,
        bos_id=-1,
        eos_id=-1,
        # The text is already normalised by `normalize_text`; SentencePiece must not change it again.
        normalization_rule_name="identity",
        hard_vocab_limit=False,
        # A char model would otherwise start every utterance with a lone "▁" piece: one more CTC label to emit
        # (short utterances may then not fit the output frames) that carries no information.
        add_dummy_prefix=model_type != "char",
        # The word separator must be a piece even if the training text has no multi-word line (e.g. FSDD).
        required_chars=SPIECE_UNDERLINE,
        minloglevel=2,
    )
    options.update(trainer_kwargs)
    try:
        sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, **options)
    except RuntimeError as error:
        raise ValueError(f"SentencePiece training failed: {error} (vocab_size={vocab_size}).") from error
    with tempfile.TemporaryDirectory() as folder:
        model_file = os.path.join(folder, SupernetCTCTokenizer.vocab_files_names["vocab_file"])
        with open(model_file, "wb") as handle:
            handle.write(model.getvalue())
        # The processor keeps the model in memory; save_pretrained writes it from there once the file is gone.
        tokenizer = SupernetCTCTokenizer(model_file, do_normalize=normalize)
    if output_dir is not None:
        tokenizer.save_pretrained(output_dir)
    return tokenizer


# --------------------------------------------------------------------------------------------------------------
# Processor
# --------------------------------------------------------------------------------------------------------------


class SupernetSpeechProcessor(ProcessorMixin):
    r"""Feature extractor + CTC tokenizer, used like [`Wav2Vec2Processor`].

    ``processor(audio=..., sampling_rate=16000)`` returns `input_features` and `attention_mask`;
    ``processor(text=...)`` returns the tokenizer's `input_ids`; with both, the token ids are added as `labels`,
    padded with `-100` when the batch is padded (the value CTC loss ignores). `decode` / `batch_decode` CTC-decode
    (see [`SupernetCTCTokenizer`]). Save with `save_pretrained`; load with `AutoProcessor.from_pretrained` after
    ``import hf_supernet.data``.

    Args:
        feature_extractor ([`SupernetFeatureExtractor`]): computes log-mel features.
        tokenizer ([`SupernetCTCTokenizer`]): maps transcripts to ids and CTC output back to text.
    """

    # Defaults as in `ParakeetProcessor`: padded torch batches; CTC labels take no BOS/EOS.
    audio_kwargs = {"return_tensors": "pt"}
    text_kwargs = {"padding": True, "add_special_tokens": False, "return_tensors": "pt"}

    def __init__(self, feature_extractor, tokenizer):
        super().__init__(feature_extractor, tokenizer)

    def __call__(self, audio=None, text=None, sampling_rate: int | None = None, **kwargs) -> BatchFeature:
        """Features for `audio` and/or token ids for `text` (as `labels` when both are given).

        Args:
            audio: one utterance or a batch, as [`SupernetFeatureExtractor.__call__`] accepts.
            text (`str` or `list[str]`): transcripts (normalised by the tokenizer).
            sampling_rate (`int`, *optional*): rate of `audio`, checked by the feature extractor.
            kwargs: `return_tensors`, `padding`, ... routed to the feature extractor / tokenizer.
        """
        if audio is None and text is None:
            raise ValueError("Pass `audio`, `text` or both.")
        output_kwargs = self._merge_kwargs(tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        if text is not None:
            encodings = self.tokenizer(text, **output_kwargs["text_kwargs"])
            if audio is None:
                return encodings
        inputs = self.feature_extractor(audio, sampling_rate=sampling_rate, **output_kwargs["audio_kwargs"])
        if text is not None:
            inputs["labels"] = _labels_with_ignore_index(encodings)
        return inputs

    @property
    def model_input_names(self):
        return self.feature_extractor.model_input_names + ["labels"]


def _labels_with_ignore_index(encodings):
    """Token ids with padded positions set to -100, the index CTC loss (and `Trainer`) ignores."""
    labels, mask = encodings["input_ids"], encodings.get("attention_mask")
    if mask is None:
        return labels
    if isinstance(labels, torch.Tensor):
        return labels.masked_fill(mask.eq(0), -100)
    if isinstance(labels, np.ndarray):
        return np.where(mask == 0, -100, labels)
    if labels and isinstance(labels[0], list):
        return [[i if m else -100 for i, m in zip(ids, row)] for ids, row in zip(labels, mask)]
    return labels


def build_processor(
    tokenizer: SupernetCTCTokenizer, feature_extractor: SupernetFeatureExtractor | None = None, **feature_kwargs
) -> SupernetSpeechProcessor:
    """Bundle `tokenizer` with `feature_extractor` (default: ``SupernetFeatureExtractor(**feature_kwargs)``, 80-bin
    log-mel at 16 kHz) into a :class:`SupernetSpeechProcessor`."""
    if feature_extractor is None:
        feature_extractor = SupernetFeatureExtractor(**feature_kwargs)
    elif feature_kwargs:
        raise ValueError("Pass either a feature_extractor or keyword arguments to build one, not both.")
    return SupernetSpeechProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def build_parakeet_processor(texts: Iterable[str], feature_size: int = 80):
    """A transformers ``ParakeetProcessor`` for training a ``ParakeetForCTC`` from scratch: Parakeet's feature
    extractor (``feature_size`` mel bins) and a character ``ParakeetTokenizer`` over the characters of ``texts``
    (``"▁"`` between words, as SentencePiece; ``<unk>`` at id 0, ``<pad>`` = the CTC blank as the last id, as
    Parakeet's checkpoints). It needs no hf_supernet to load: stock subnets ship with it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import ParakeetProcessor, ParakeetTokenizer

    characters = sorted({c for text in texts for c in text if not c.isspace()} - {SPIECE_UNDERLINE})
    if not characters:
        raise ValueError("build_parakeet_processor got no characters: pass the training transcripts.")
    vocab = {UNK_TOKEN: 0, SPIECE_UNDERLINE: 1, **{c: i + 2 for i, c in enumerate(characters)}}
    vocab[PAD_TOKEN] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    return ParakeetProcessor(
        ParakeetFeatureExtractor(feature_size=feature_size),
        ParakeetTokenizer(tokenizer_object=tokenizer, unk_token=UNK_TOKEN, pad_token=PAD_TOKEN),
    )
