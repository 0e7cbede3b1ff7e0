"""Load speech corpora into `datasets` with decoded, resampled, mono audio and normalised transcripts.

Every source — a JSON-lines manifest folder (the bundled corpora, ``../shared/data/...`` beside the repository), a
`datasets` name or path, or an in-memory :class:`datasets.Dataset` / :class:`datasets.DatasetDict` — goes through the same steps:

1. the audio column is cast to ``Audio(decode=False)`` (file paths or encoded bytes; `datasets`' own decoder would
   need torchcodec/ffmpeg, which hf_supernet does not depend on);
2. ``datasets.map`` (cached on disk for file-backed datasets, ``num_proc`` workers) decodes each file with
   ``soundfile``, averages the channels of multi-channel audio to mono, resamples with ``soxr`` and normalises the
   transcript with :func:`~hf_supernet.data.normalize_text`;
3. utterances with an empty transcript or longer than ``max_duration`` are filtered out, with the count logged.

The decoding cache is keyed on the audio files too (each file's path, size and modification time), so a file
rewritten in place is decoded again, never served stale.

Broken audio is never repaired silently: a missing file raises ``FileNotFoundError``; an undecodable file, an empty
one or one with NaN/Inf samples raises ``ValueError`` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import os
from importlib import resources
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import numpy as np
import soundfile
import soxr
from datasets import Audio, Dataset, DatasetDict, Features, List, Value, load_dataset, load_from_disk
from transformers.utils import logging

from .text import normalize_text

logger = logging.get_logger(__name__)

__all__ = ["BUNDLED_CORPORA", "bundled_data_path", "load_audio", "load_speech_dataset"]

BUNDLED_CORPORA = ("fsdd", "mini_librispeech")
MANIFEST_SUFFIX = ".jsonl"
DURATION_COLUMN = "duration"
DEFAULT_KEEP_COLUMNS = ("id", "speaker")
# Columns every loaded dataset has (plus the kept source columns).
OUTPUT_FEATURES = {
    "audio": {"array": List(Value("float32")), "sampling_rate": Value("int32")},
    "text": Value("string"),
    DURATION_COLUMN: Value("float64"),
}


def bundled_data_path(corpus: str) -> Path:
    """Folder of a corpus subset shipped inside the package (``"fsdd"`` or ``"mini_librispeech"``).

    The folder holds ``{split}.jsonl`` manifests (``id``, ``speaker``, ``file``, ``text``) and the audio they point to;
    see ``hf_supernet/resources/data/README.md`` for contents, licences and attribution.
    """
    if corpus not in BUNDLED_CORPORA:
        raise ValueError(f"Unknown bundled corpus {corpus!r}; choose one of {BUNDLED_CORPORA}.")
    path = Path(str(resources.files("hf_supernet") / "resources" / "data" / corpus))
    if not path.is_dir():
        raise FileNotFoundError(
            f"The bundled corpus folder {path} is missing from this installation; rebuild it with "
            "`python scripts/bundle_data.py` or reinstall hf_supernet."
        )
    return path


# --------------------------------------------------------------------------------------------------------------
# Decoding one utterance
# --------------------------------------------------------------------------------------------------------------


def _check_samples(samples: np.ndarray, name: str) -> None:
    if samples.size == 0:
        raise ValueError(f"Audio {name} contains no samples. Remove it from the dataset (or fix the recording).")
    if not np.isfinite(samples).all():
        raise ValueError(
            f"Audio {name} contains NaN or Inf samples. Remove or re-export the file; hf_supernet does not repair "
            "audio silently."
        )


def _downmix(samples: np.ndarray, channel_axis: int | None, name: str) -> np.ndarray:
    """Average the channels of multi-channel audio to mono (the usual downmix); validate the result."""
    _check_samples(samples, name)
    if samples.ndim == 2:
        if channel_axis is None:
            # In-memory arrays come as (frames, channels) (soundfile) or (channels, frames) (torchaudio): the
            # channel axis is the short one.
            channel_axis = 0 if samples.shape[0] < samples.shape[1] else 1
        samples = samples.mean(axis=channel_axis, dtype=np.float32)
    elif samples.ndim != 1:
        raise ValueError(f"Audio {name} has shape {samples.shape}; expected (frames,) or (frames, channels).")
    return samples


def _read_file(source: str | io.BytesIO, name: str) -> tuple[np.ndarray, int]:
    """Decode with soundfile to mono float32 (channels averaged)."""
    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:
        raise ValueError(
            f"Could not decode audio {name}: {error}. soundfile/libsndfile reads WAV, FLAC, OGG and MP3; convert "
            "other formats first (e.g. `ffmpeg -i in.m4a out.flac`), or drop the file."
        ) from error
    return _downmix(samples, 1, name), rate


def _decode_value(value: Any, audio_root: str | None, example_name: str) -> tuple[np.ndarray, int, str]:
    """Decode one audio-column value to (mono float32 samples, sampling rate, name used in errors).

    Accepts what ``Audio(decode=False)`` yields (``{"bytes", "path"}``), an already decoded ``{"array",
    "sampling_rate"}`` dict, or a bare path string.
    """
    if isinstance(value, str):
        value = {"bytes": None, "path": value}
    if not isinstance(value, dict):
        raise TypeError(
            f"Audio of {example_name} is a {type(value).__name__}; expected a file path, an `Audio(decode=False)` "
            "value or a dict with `array` and `sampling_rate`."
        )
    if "array" in value:
        if value.get("sampling_rate") is None:
            raise ValueError(f"Audio of {example_name} has an `array` but no `sampling_rate`; add it.")
        samples = _downmix(np.asarray(value["array"], dtype=np.float32), None, example_name)
        return samples, int(value["sampling_rate"]), example_name
    path = value.get("path")
    if value.get("bytes") is not None:
        name = f"{path!r} ({example_name})" if path else example_name
        samples, rate = _read_file(io.BytesIO(value["bytes"]), name)
        return samples, rate, name
    if not path:
        raise ValueError(f"Audio of {example_name} has neither bytes nor a path.")
    if audio_root is not None and not os.path.isabs(path):
        path = os.path.join(audio_root, path)
    name = f"file {path!r} ({example_name})"
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Audio {name} does not exist. Manifest `file` entries are relative to the manifest's folder; fix the "
            "path or remove the row."
        )
    samples, rate = _read_file(path, name)
    return samples, rate, name


def _resample(samples: np.ndarray, rate: int, sampling_rate: int) -> np.ndarray:
    if rate == sampling_rate:
        return samples
    return soxr.resample(samples, rate, sampling_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(audio: str | os.PathLike | dict, sampling_rate: int = 16000) -> np.ndarray:
    """Decode one recording to a mono float32 array at ``sampling_rate`` (soundfile + soxr, channels averaged).

    Args:
        audio (`str`, `os.PathLike` or `dict`):
            A file path, an ``Audio(decode=False)`` value (``{"bytes", "path"}``) or ``{"array", "sampling_rate"}``.
        sampling_rate (`int`, *optional*, defaults to 16000):
            Rate of the returned samples; the feature extractor expects 16 kHz.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded, has no samples, or has NaN/Inf samples.
    """
    if isinstance(audio, os.PathLike):
        audio = os.fspath(audio)
    samples, rate, _ = _decode_value(audio, None, "the given audio")
    return _resample(samples, rate, sampling_rate)


def _decode_batch(
    batch: dict[str, list],
    audio_column: str,
    text_column: str,
    sampling_rate: int,
    normalize: bool,
    audio_root: str | None,
    audio_files_stamp: str | None = None,
) -> dict[str, list]:
    """``datasets.map`` function: decoded `audio`, normalised `text` and `duration` for a batch of examples.

    ``audio_files_stamp`` is unused here: it is part of the arguments so that it is part of the cache key."""
    ids = batch.get("id")
    arrays, durations, texts = [], [], []
    for index, (value, text) in enumerate(zip(batch[audio_column], batch[text_column])):
        example_name = f"example id={ids[index]!r}" if ids is not None else "an example"
        samples, rate, name = _decode_value(value, audio_root, example_name)
        samples = _resample(samples, rate, sampling_rate)
        if text is None:
            raise ValueError(f"Transcript of {name} is missing (None); fill column {text_column!r} or drop the row.")
        arrays.append({"array": samples, "sampling_rate": sampling_rate})
        durations.append(len(samples) / sampling_rate)
        texts.append(normalize_text(text) if normalize else text)
    return {"audio": arrays, "text": texts, DURATION_COLUMN: durations}


# --------------------------------------------------------------------------------------------------------------
# Filters (module-level functions so `datasets` can hash them for its cache)
# --------------------------------------------------------------------------------------------------------------


def _has_text(texts: list[str]) -> list[bool]:
    return [bool(text.strip()) for text in texts]


def _not_longer_than(durations: list[float], max_duration: float) -> list[bool]:
    return [duration <= max_duration for duration in durations]


def filter_with_count(dataset: Dataset, function, input_columns, reason: str, fn_kwargs=None, **kwargs) -> Dataset:
    """``dataset.filter(function, batched=True)`` that logs how many rows were dropped and why."""
    kept = dataset.filter(function, input_columns=input_columns, batched=True, fn_kwargs=fn_kwargs, **kwargs)
    dropped = len(dataset) - len(kept)
    if dropped:
        logger.warning(f"Filtered out {dropped} of {len(dataset)} utterances: {reason}.")
    return kept


# --------------------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------------------


def _manifest_splits(folder: Path) -> dict[str, str]:
    return {path.name[: -len(MANIFEST_SUFFIX)]: str(path) for path in sorted(folder.glob(f"*{MANIFEST_SUFFIX}"))}


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _select_split(dataset: Dataset | DatasetDict, split: str | None, source: str) -> Dataset | DatasetDict:
    if split is None or isinstance(dataset, Dataset):
        return dataset
    if split not in dataset:
        raise ValueError(f"Split {split!r} is not in {source}; available splits: {sorted(dataset)}.")
    return dataset[split]


def _load_source(
    source: str | os.PathLike | Dataset | DatasetDict,
    split: str | None,
    cache_dir: str | None,
    load_dataset_kwargs: dict,
) -> tuple[Dataset | DatasetDict, str | None, bool]:
    """Resolve ``source`` to (dataset(s), folder that relative audio paths are relative to, is it a manifest)."""
    if isinstance(source, (Dataset, DatasetDict)):
        return _select_split(source, split, "the given DatasetDict"), None, False
    source = os.fspath(source)
    if source in BUNDLED_CORPORA and not os.path.exists(source):
        source = str(bundled_data_path(source))
    folder = Path(source)
    if folder.is_dir() and _manifest_splits(folder):
        manifests = _manifest_splits(folder)
        if split is not None and split not in manifests:
            raise ValueError(f"No {split}{MANIFEST_SUFFIX} in {folder}; available splits: {sorted(manifests)}.")
        data_files = {split: manifests[split]} if split is not None else manifests
        # The json builder caches an Arrow copy, so the decoding `map` below can cache next to it.
        dataset = load_dataset("json", data_files=data_files, split=split, cache_dir=cache_dir)
        return dataset, str(folder.resolve()), True
    if folder.is_dir() and _is_saved_dataset(folder):
        return _select_split(load_from_disk(source), split, source), None, False
    return load_dataset(source, split=split, cache_dir=cache_dir, **load_dataset_kwargs), None, False


def _check_columns(dataset: Dataset, audio_column: str, text_column: str) -> None:
    for argument, column in (("audio_column", audio_column), ("text_column", text_column)):
        if column not in dataset.column_names:
            raise ValueError(
                f"Column {column!r} not found; the dataset has {dataset.column_names}. Pass "
                f"`{argument}=` the name of its {argument.split('_')[0]} column."
            )


def _audio_files_stamp(dataset: Dataset, audio_column: str, audio_root: str | None) -> str | None:
    """A digest of (path, size, mtime) of every audio file ``dataset`` reads from disk (``None`` when it reads
    none: in-memory or embedded audio is covered by ``datasets``' own fingerprint of the table)."""
    import pyarrow as pa

    column = dataset.data.column(audio_column)
    if pa.types.is_struct(column.type):
        if column.type.get_field_index("path") < 0:
            return None
        has_bytes = column.type.get_field_index("bytes") >= 0
        # Chunk by chunk, children only: embedded audio bytes are never copied.
        chunks = [c.field("path").filter(c.field("bytes").is_null()) if has_bytes else c.field("path") for c in column.chunks]
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        chunks = column.chunks
    else:
        return None
    digest = hashlib.sha256()
    for path in (p for chunk in chunks for p in chunk.to_pylist()):
        if not path:
            continue
        if audio_root is not None and not os.path.isabs(path):
            path = os.path.join(audio_root, path)
        try:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:  # missing: decoding raises FileNotFoundError naming it
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def _prepare_split(
    dataset: Dataset,
    *,
    audio_column: str,
    text_column: str,
    sampling_rate: int,
    max_duration: float | None,
    num_proc: int | None,
    normalize: bool,
    keep_columns: Iterable[str],
    audio_root: str | None,
    load_from_cache_file: bool | None,
) -> Dataset:
    _check_columns(dataset, audio_column, text_column)
    feature = dataset.features[audio_column]
    if isinstance(feature, Audio) or getattr(feature, "dtype", None) in ("string", "large_string"):
        # Paths or encoded bytes; decoding is ours (soundfile), not `datasets`' (torchcodec).
        dataset = dataset.cast_column(audio_column, Audio(decode=False))
    keep = [column for column in dataset.column_names if column in set(keep_columns) - set(OUTPUT_FEATURES)]
    # Explicit output features: otherwise `datasets` casts the new `audio` back to the source's `Audio` type, which
    # means re-encoding it with torchcodec.
    features = Features({**{column: dataset.features[column] for column in keep}, **OUTPUT_FEATURES})
    dataset = dataset.map(
        _decode_batch,
        batched=True,
        batch_size=32,
        num_proc=num_proc,
        remove_columns=[column for column in dataset.column_names if column not in keep],
        features=features,
        fn_kwargs={
            "audio_column": audio_column,
            "text_column": text_column,
            "sampling_rate": sampling_rate,
            "normalize": normalize,
            "audio_root": audio_root,
            # Part of the cache key: a file rewritten in place is decoded again.
            "audio_files_stamp": _audio_files_stamp(dataset, audio_column, audio_root),
        },
        load_from_cache_file=load_from_cache_file,
        desc="Decoding audio",
    )
    dataset = filter_with_count(
        dataset, _has_text, "text", "empty transcript (after normalisation)", load_from_cache_file=load_from_cache_file
    )
    if max_duration is not None:
        dataset = filter_with_count(
            dataset,
            _not_longer_than,
            DURATION_COLUMN,
            f"longer than max_duration={max_duration} s",
            fn_kwargs={"max_duration": max_duration},
            load_from_cache_file=load_from_cache_file,
        )
    return dataset


def load_speech_dataset(
    source: str | os.PathLike | Dataset | DatasetDict,
    split: str | None = None,
    *,
    audio_column: str = "audio",
    text_column: str = "text",
    sampling_rate: int = 16000,
    max_duration: float | None = None,
    num_proc: int | None = None,
    normalize: bool = True,
    keep_columns: Iterable[str] = DEFAULT_KEEP_COLUMNS,
    cache_dir: str | None = None,
    load_from_cache_file: bool | None = None,
    **load_dataset_kwargs,
) -> Dataset | DatasetDict:
    """Load a speech corpus with decoded 16 kHz mono audio and normalised transcripts.

    Args:
        source (`str`, `os.PathLike`, `Dataset` or `DatasetDict`):
            ``"fsdd"`` / ``"mini_librispeech"`` (the subsets bundled with hf_supernet); a folder of ``{split}.jsonl``
            manifests with ``file`` (relative to the folder) and ``text`` per line (e.g. ``../shared/data/fsdd``);
            a folder written by ``save_to_disk``; any name or path `datasets.load_dataset` accepts; or an in-memory
            `Dataset`/`DatasetDict`.
        split (`str`, *optional*):
            Split to load; `None` loads all splits and returns a `DatasetDict`.
        audio_column (`str`, *optional*, defaults to `"audio"`):
            Column with the audio: file paths, `Audio` values (decoded here with soundfile, never by `datasets`) or
            ``{"array", "sampling_rate"}`` dicts. Ignored for manifest folders (their column is ``file``).
        text_column (`str`, *optional*, defaults to `"text"`):
            Column with the transcripts.
        sampling_rate (`int`, *optional*, defaults to 16000):
            Output rate; audio at other rates is resampled with soxr (duration is kept).
        max_duration (`float`, *optional*):
            Drop utterances longer than this many seconds (the count is logged).
        num_proc (`int`, *optional*):
            Worker processes for decoding (`datasets.map`).
        normalize (`bool`, *optional*, defaults to `True`):
            Apply :func:`~hf_supernet.data.normalize_text` to the transcripts.
        keep_columns (`Iterable[str]`, *optional*, defaults to `("id", "speaker")`):
            Source columns carried over to the output when present; all others are dropped.
        cache_dir (`str`, *optional*):
            `datasets` cache folder for manifest and Hub sources. The decoded audio is cached per audio file path,
            size and modification time: a file changed in place is decoded again.
        load_from_cache_file (`bool`, *optional*):
            Passed to `datasets.map`/`filter`; `False` forces decoding again.
        load_dataset_kwargs:
            Extra arguments for `datasets.load_dataset` (e.g. ``name=`` of a Hub configuration).

    Returns:
        `Dataset` (or `DatasetDict` when `split` is `None`) with columns:

        - ``audio``: ``{"array": float32 samples, mono, "sampling_rate": sampling_rate}`` — the layout transformers'
          speech examples read (``example["audio"]["array"]``). In the default Python format ``array`` comes back as a
          list of floats; ``dataset.with_format("numpy")`` returns float32 arrays.
        - ``text``: the transcript, normalised (lower case, see :mod:`hf_supernet.data.text`).
        - ``duration``: seconds, e.g. for ``TrainingArguments(train_sampling_strategy="group_by_length",
          length_column_name="duration")`` when features are computed on the fly by the collator.
        - ``id``, ``speaker`` (and other `keep_columns`) when the source has them.

    Empty transcripts (after normalisation) are filtered out with a logged count rather than kept: CTC would
    train them towards all-blank output, and an empty reference has no defined WER.

    Raises:
        FileNotFoundError: an audio file is missing.
        ValueError: an audio file cannot be decoded, is empty or has NaN/Inf samples; a column or split is missing.
    """
    dataset, audio_root, is_manifest = _load_source(source, split, cache_dir, load_dataset_kwargs)
    if is_manifest:
        audio_column = "file"
    options = dict(
        audio_column=audio_column,
        text_column=text_column,
        sampling_rate=sampling_rate,
        max_duration=max_duration,
        num_proc=num_proc,
        normalize=normalize,
        keep_columns=tuple(keep_columns),
        audio_root=audio_root,
        load_from_cache_file=load_from_cache_file,
    )
    if isinstance(dataset, DatasetDict):
        return DatasetDict({name: _prepare_split(part, **options) for name, part in dataset.items()})
    return _prepare_split(dataset, **options)
