"""scripts/transcribe.py and hf_supernet.transcription: any readable file, any rate, mono or stereo, a supernet at a
budget; the same transcripts as transformers' pipeline on the same arrays."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from transformers import pipeline

from hf_supernet import SupernetConformerForCTC
from hf_supernet.data import build_processor, bundled_data_path, load_audio, train_tokenizer
from hf_supernet.transcription import load_recognizer, transcribe_file

from .conftest import tiny_conformer_config

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "transcribe.py"


def run_script(argv, capsys):
    spec = importlib.util.spec_from_file_location("transcribe_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    status = module.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A tiny untrained supernet (80 mel bins, as the processor makes) with its processor, and its smallest subnet."""
    root = tmp_path_factory.mktemp("models")
    tokenizer = train_tokenizer(["zero one two three four five six seven eight nine"] * 10, model_type="char")
    processor = build_processor(tokenizer)
    torch.manual_seed(0)
    supernet = SupernetConformerForCTC(tiny_conformer_config(num_mel_bins=80, vocab_size=len(tokenizer),
                                                             pad_token_id=tokenizer.pad_token_id)).eval()
    supernet.save_pretrained(root / "supernet")
    processor.save_pretrained(root / "supernet")
    supernet.extract_subnet(supernet.subnet_space.smallest()).save_pretrained(root / "small")
    processor.save_pretrained(root / "small")
    return root


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    clip = bundled_data_path("fsdd") / "recordings" / "7_george_0.flac"  # 8 kHz mono FLAC
    samples, rate = soundfile.read(clip, dtype="float32")
    stereo = np.stack([samples, 0.5 * samples], axis=1)
    soundfile.write(root / "stereo.wav", stereo, rate)
    soundfile.write(root / "clip.ogg", samples, rate, format="OGG", subtype="VORBIS")
    (root / "broken.wav").write_text("not audio")
    return {"flac": clip, "stereo": root / "stereo.wav", "ogg": root / "clip.ogg", "broken": root / "broken.wav"}


def test_script_matches_the_pipeline_on_every_readable_file(folders, recordings, capsys):
    asr = pipeline("automatic-speech-recognition", model=str(folders / "small"))
    files = [recordings["flac"], recordings["stereo"], recordings["ogg"]]
    status, out, err = run_script([*map(str, files), "--model", str(folders / "small")], capsys)
    assert status == 0 and "error:" not in err
    lines = out.strip().split("\n")
    assert len(lines) == 3
    for path, line in zip(files, lines):
        name, text = line.split("\t")
        assert name == str(path)
        assert text == asr(load_audio(str(path), 16000))["text"].strip()


def test_an_unreadable_file_is_named_and_the_others_still_transcribed(folders, recordings, capsys):
    files = [recordings["broken"], recordings["flac"], recordings["flac"].with_name("missing.flac")]
    status, out, err = run_script([*map(str, files), "--model", str(folders / "small")], capsys)
    assert status == 1
    assert out.count("\n") == 1 and out.startswith(str(recordings["flac"]))
    assert "Could not decode audio" in err and "broken.wav" in err and "missing.flac" in err


def test_a_supernet_folder_at_a_budget_serves_that_subnet(folders, recordings):
    recognizer = load_recognizer(folders / "supernet", subnet_budget=0.5)
    chosen = SupernetConformerForCTC.from_pretrained(folders / "supernet", subnet_budget=0.5)
    assert recognizer.model.num_parameters() == chosen.num_parameters() < SupernetConformerForCTC.from_pretrained(
        folders / "supernet").num_parameters()
    reference = pipeline("automatic-speech-recognition", model=chosen,
                         tokenizer=recognizer.tokenizer, feature_extractor=recognizer.feature_extractor)
    audio = load_audio(str(recordings["flac"]), 16000)
    assert transcribe_file(recognizer, recordings["flac"]) == reference(audio)["text"].strip()
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    Wav2Vec2ForCTC(Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                                  conv_dim=(8,), conv_stride=(5,), conv_kernel=(10,), num_conv_pos_embeddings=4,
                                  vocab_size=12)).save_pretrained(folders / "stock")
    with pytest.raises(ValueError, match="'wav2vec2' model, not a supernet"):
        load_recognizer(folders / "stock", subnet_budget=0.5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_recognizer(folders / "nowhere")


def test_long_files_are_chunked(folders, tmp_path, monkeypatch):
    recognizer = load_recognizer(folders / "small")
    long_file = tmp_path / "long.wav"
    soundfile.write(long_file, 0.1 * np.random.default_rng(0).standard_normal(16000 * 25).astype(np.float32), 16000)
    calls = []
    original = type(recognizer).__call__

    def recording(self, inputs, **kwargs):
        calls.append(kwargs)
        return original(self, inputs, **kwargs)

    monkeypatch.setattr(type(recognizer), "__call__", recording)
    transcribe_file(recognizer, long_file, chunk_length_s=10)
    transcribe_file(recognizer, long_file, chunk_length_s=None)
    assert calls[0]["chunk_length_s"] == 10 and "chunk_length_s" not in calls[1]
