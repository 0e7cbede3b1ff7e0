"""Connected spoken digits built on the fly from isolated digit recordings (a PIN, a phone number, with pauses,
silence and noise around them).

Isolated, tightly trimmed clips (FSDD) teach a model neither silence, nor noise, nor a second word: a model trained
only on them fails on the first recording a person makes. :class:`ConnectedDigits` turns a set of isolated digit
recordings into utterances of several digits, each drawn reproducibly from ``(seed, epoch, index)``:

1. ``min_digits``–``max_digits`` recordings drawn with replacement from the given recordings only (so a set built from
   the test recordings never contains a training recording, and the other way round);
2. joined with random pauses, random leading and trailing silence;
3. speed perturbation (resampling, as Kaldi's speed perturbation: tempo and pitch change together);
4. synthetic additive noise (white, pink or brown, over the whole utterance, silences included) at a random SNR
   measured against the speech samples; no noise corpus is needed;
5. a random gain, with the peak kept below full scale.

The text is the digits' words joined by spaces, so every transformation keeps the label. Items are
``{"audio": {"array", "sampling_rate"}, "text", "id", "sources"}`` — what
:class:`~hf_supernet.data.DataCollatorCTCWithPadding` takes as raw examples — so training computes features per batch
and never sees the same utterance twice (give the dataset more items than the run draws).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import soxr
import torch

__all__ = ["ConnectedDigits", "ConnectedDigitsConfig", "colored_noise"]

NOISE_COLORS = ("white", "pink", "brown")
# Peak amplitude a generated utterance may reach after the gain (below full scale, so nothing clips).
MAX_PEAK = 0.99


def _check_range(name: str, value, low: float, high: float | None = None) -> tuple[float, float]:
    try:
        start, stop = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"ConnectedDigitsConfig.{name} must be a (min, max) pair, got {value!r}.") from None
    if start > stop or start < low or (high is not None and stop > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"ConnectedDigitsConfig.{name} must be (min, max) with min <= max, both {bound}; got {value!r}.")
    return start, stop


@dataclass(frozen=True)
class ConnectedDigitsConfig:
    """How connected-digit utterances are built. Ranges are ``(min, max)`` pairs drawn uniformly.

    Args:
        min_digits (`int`, *optional*, defaults to 1), max_digits (`int`, *optional*, defaults to 7):
            Digits per utterance, drawn uniformly.
        pause_seconds (`tuple[float, float]`, *optional*, defaults to `(0.05, 0.5)`): silence between digits.
        edge_silence_seconds (`tuple[float, float]`, *optional*, defaults to `(0.0, 1.0)`): silence before the first
            and after the last digit (each drawn separately).
        snr_db (`tuple[float, float]`, *optional*, defaults to `(5.0, 30.0)`): signal-to-noise ratio of the noise.
        noise_probability (`float`, *optional*, defaults to 0.9): share of utterances that get noise at all.
        noise_colors (`tuple[str, ...]`, *optional*, defaults to `("white", "pink", "brown")`): spectral colours the
            noise is drawn from, uniformly (see :func:`colored_noise`).
        gain_db (`tuple[float, float]`, *optional*, defaults to `(-12.0, 6.0)`): gain of the whole utterance.
        speed (`tuple[float, float]`, *optional*, defaults to `(0.9, 1.1)`): speed-perturbation factor.
        clean_probability (`float`, *optional*, defaults to 0.0): share of utterances left as recorded: the clips
            with their pauses only, no silence around them, noise, gain or speed change (e.g. to keep a corpus's
            trimmed clean clips in the mix).
        sampling_rate (`int`, *optional*, defaults to 16000): rate of the generated audio (recordings at another
            rate are resampled once, on construction).
    """

    min_digits: int = 1
    max_digits: int = 7
    pause_seconds: tuple[float, float] = (0.05, 0.5)
    edge_silence_seconds: tuple[float, float] = (0.0, 1.0)
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_probability: float = 0.9
    noise_colors: tuple[str, ...] = NOISE_COLORS
    gain_db: tuple[float, float] = (-12.0, 6.0)
    speed: tuple[float, float] = (0.9, 1.1)
    clean_probability: float = 0.0
    sampling_rate: int = 16000

    def __post_init__(self):
        if not 1 <= self.min_digits <= self.max_digits:
            raise ValueError(
                f"ConnectedDigitsConfig needs 1 <= min_digits <= max_digits, got {self.min_digits}, {self.max_digits}."
            )
        for name, low, high in (
            ("pause_seconds", 0.0, None),
            ("edge_silence_seconds", 0.0, None),
            ("snr_db", -20.0, None),
            ("gain_db", -60.0, 20.0),
            ("speed", 0.5, 2.0),
        ):
            object.__setattr__(self, name, _check_range(name, getattr(self, name), low, high))
        for name in ("noise_probability", "clean_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"ConnectedDigitsConfig.{name} must be in [0, 1], got {getattr(self, name)}.")
        colors = (self.noise_colors,) if isinstance(self.noise_colors, str) else tuple(self.noise_colors)
        if not colors or set(colors) - set(NOISE_COLORS):
            raise ValueError(
                f"ConnectedDigitsConfig.noise_colors must be a non-empty selection of {NOISE_COLORS}, got {self.noise_colors!r}."
            )
        object.__setattr__(self, "noise_colors", colors)
        if self.sampling_rate <= 0:
            raise ValueError(f"ConnectedDigitsConfig.sampling_rate must be > 0, got {self.sampling_rate}.")

    def to_dict(self) -> dict:
        return asdict(self)


def colored_noise(num_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise of a spectral ``color``: ``"white"`` (flat), ``"pink"`` (1/f power) or ``"brown"`` (1/f²)."""
    if color not in NOISE_COLORS:
        raise ValueError(f"Unknown noise color {color!r}; choose one of {NOISE_COLORS}.")
    white = rng.standard_normal(num_samples)
    if color == "white" or num_samples < 2:
        noise = white
    else:
        # Shape the spectrum: amplitude ~ f^(-1/2) (pink) or f^(-1) (brown); the DC bin is dropped.
        spectrum = np.fft.rfft(white)
        freqs = np.arange(spectrum.size, dtype=np.float64)
        freqs[0] = 1.0
        spectrum = spectrum / (np.sqrt(freqs) if color == "pink" else freqs)
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=num_samples)
    power = float(np.mean(noise**2))
    return (noise / np.sqrt(power) if power > 0 else noise).astype(np.float32)


class ConnectedDigits(torch.utils.data.Dataset):
    """Utterances of several spoken digits with pauses, silence, noise, gain and speed perturbation.

    Args:
        recordings: isolated digit recordings with an ``audio`` column (``{"array", "sampling_rate"}``, as
            :func:`~hf_supernet.data.load_speech_dataset` returns) and a ``text`` column (one word each), e.g. FSDD's
            train split. Only these recordings are ever used.
        num_utterances (`int`): number of items (for training, more than the run will draw: each index is a new
            utterance).
        config ([`ConnectedDigitsConfig`], *optional*): how utterances are built.
        seed (`int`, *optional*, defaults to 0): item ``i`` is the same for the same seed (and epoch), in any process.
        id_column (`str`, *optional*, defaults to `"id"`): column naming each recording (kept in ``sources``);
            the row index is used when the column is missing.

    Item ``i`` is ``{"audio": {"array", "sampling_rate"}, "text", "id", "sources", "conditions"}``; ``sources`` lists
    the recordings it is made of, ``conditions`` what was drawn for it (see :meth:`compose`), so that errors can be
    read by noise level, speed or gain. :meth:`set_epoch` changes every item (for training loops that call it); a fixed
    evaluation set keeps epoch 0.
    """

    def __init__(self, recordings, num_utterances: int, config: ConnectedDigitsConfig | None = None, *, seed: int = 0,
                 id_column: str = "id"):
        self.config = config if config is not None else ConnectedDigitsConfig()
        if num_utterances < 1:
            raise ValueError(f"num_utterances must be >= 1, got {num_utterances}.")
        missing = {"audio", "text"} - set(recordings.column_names)
        if missing:
            raise ValueError(
                f"ConnectedDigits needs `audio` and `text` columns (as load_speech_dataset returns); missing "
                f"{sorted(missing)}."
            )
        if len(recordings) == 0:
            raise ValueError("ConnectedDigits needs at least one recording; the given dataset is empty.")
        ids = recordings[id_column] if id_column in recordings.column_names else [str(i) for i in range(len(recordings))]
        self.sources: list[str] = [str(i) for i in ids]
        self.words: list[str] = []
        self.arrays: list[np.ndarray] = []
        for source, example in zip(self.sources, recordings):
            words = str(example["text"]).split()
            if len(words) != 1:
                raise ValueError(
                    f"Recording {source!r} has the transcript {example['text']!r}; ConnectedDigits joins recordings "
                    "of one word each (isolated digits)."
                )
            array = np.asarray(example["audio"]["array"], dtype=np.float32)
            rate = int(example["audio"]["sampling_rate"])
            if rate != self.config.sampling_rate:
                array = soxr.resample(array, rate, self.config.sampling_rate).astype(np.float32)
            self.words.append(words[0])
            self.arrays.append(array)
        self.num_utterances = int(num_utterances)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_utterances

    def set_epoch(self, epoch: int) -> None:
        """Draw other utterances from now on (Trainer calls it at each epoch where its sampler does not)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        if not -self.num_utterances <= index < self.num_utterances:
            raise IndexError(f"ConnectedDigits index {index} out of range for {self.num_utterances} utterances.")
        index %= self.num_utterances
        rng = np.random.default_rng([self.seed, self.epoch, index])
        picks = rng.integers(0, len(self.arrays), rng.integers(self.config.min_digits, self.config.max_digits + 1))
        conditions = {}
        array = self.compose([self.arrays[p] for p in picks], rng, conditions)
        return {
            "audio": {"array": array, "sampling_rate": self.config.sampling_rate},
            "text": " ".join(self.words[p] for p in picks),
            "id": f"connected-{self.seed}-{self.epoch}-{index}",
            "sources": [self.sources[p] for p in picks],
            "conditions": conditions,
        }

    def compose(self, clips: list[np.ndarray], rng: np.random.Generator, conditions: dict | None = None) -> np.ndarray:
        """One utterance from ``clips`` (in order) with this config's pauses, silence, speed, noise and gain.

        ``conditions``, when given, is filled with what was drawn: ``clean`` (left as recorded), ``speed``,
        ``snr_db`` and ``noise_color`` (``None`` without noise) and ``gain_db``. Recording them draws nothing, so
        an utterance is the same with or without it."""
        config, rate = self.config, self.config.sampling_rate
        drawn = conditions if conditions is not None else {}
        drawn.update(clean=False, speed=1.0, snr_db=None, noise_color=None, gain_db=0.0)

        def silence(seconds_range) -> np.ndarray:
            return np.zeros(int(round(rng.uniform(*seconds_range) * rate)), dtype=np.float32)

        # Drawn only when asked for, so configs without it keep their random stream (and fixed test sets their strings).
        if config.clean_probability and rng.uniform() < config.clean_probability:
            drawn["clean"] = True
            pieces = [clips[0]]
            for clip in clips[1:]:
                pieces += [silence(config.pause_seconds), clip]
            return np.concatenate(pieces).astype(np.float32)
        # (samples, is speech) in order; the speech flags say where the SNR's signal power is measured.
        parts = [(silence(config.edge_silence_seconds), False)]
        for i, clip in enumerate(clips):
            if i:
                parts.append((silence(config.pause_seconds), False))
            parts.append((clip, True))
        parts.append((silence(config.edge_silence_seconds), False))
        audio = np.concatenate([samples for samples, _ in parts])
        speech_mask = np.concatenate([np.full(samples.size, is_speech) for samples, is_speech in parts])
        speed = drawn["speed"] = float(rng.uniform(*config.speed))
        if abs(speed - 1.0) > 1e-6:
            # Played back at `rate`, samples resampled from rate to rate/speed run `speed` times faster.
            audio = soxr.resample(audio, rate, rate / speed).astype(np.float32)
            speech_mask = speech_mask[np.minimum((np.arange(audio.size) * speed).astype(int), speech_mask.size - 1)]
        if rng.uniform() < config.noise_probability:
            speech_power = float(np.mean(audio[speech_mask] ** 2)) if speech_mask.any() else 0.0
            color = config.noise_colors[rng.integers(len(config.noise_colors))]
            noise = colored_noise(audio.size, color, rng)
            snr = rng.uniform(*config.snr_db)
            drawn.update(snr_db=float(snr), noise_color=str(color))
            audio = audio + noise * np.float32(np.sqrt(speech_power / 10 ** (snr / 10)))
        gain_db = drawn["gain_db"] = float(rng.uniform(*config.gain_db))
        audio = audio * np.float32(10 ** (gain_db / 20))
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        if peak > MAX_PEAK:
            audio = audio * np.float32(MAX_PEAK / peak)
        return audio.astype(np.float32)
