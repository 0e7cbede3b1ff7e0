"""Deploying a subnet: remote code that loads without hf_supernet, torch.export / ONNX round trips, int8."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCTC, AutoProcessor, pipeline

from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC
from hf_supernet.data import build_processor, bundled_data_path, load_audio, train_tokenizer
from hf_supernet.models.conformer import ConformerConfig, ConformerForCTC
from hf_supernet.models.supernet_conformer import dense_conformer_from_subnet
from hf_supernet.publishing.export import (
    export_model,
    export_program,
    load_deployable,
    quantize_int8,
    save_deployable,
)

from .conftest import flip_a_weight_bit, old_style_subnet, padded_batch, run_without_hf_supernet, tiny_conformer_config
from .test_dense_conformer import MODELS
from .test_foldable import foldable, waveforms
from .test_masks_orthosoftmax import set_scores

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "oh"]


# Loads a saved folder as remote code and runs it (under conftest.run_without_hf_supernet: no hf_supernet).
REMOTE_LOADER = """
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCTC, AutoProcessor, pipeline

    folder, out = sys.argv[1], sys.argv[2]
    model = AutoModelForCTC.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    rng = np.random.default_rng(0)
    batch = processor(audio=[rng.normal(0, 0.1, 16000).astype(np.float32), rng.normal(0, 0.1, 9000).astype(np.float32)],
                      sampling_rate=16000)
    with torch.no_grad():
        logits = model(**batch).logits
    text = processor.batch_decode(logits.argmax(-1))
    asr = pipeline("automatic-speech-recognition", model=folder, trust_remote_code=True)
    rng = np.random.default_rng(0)
    assert asr(rng.normal(0, 0.1, 16000).astype(np.float32))["text"] == text[0]
    assert not any(m.startswith("hf_supernet") for m in sys.modules)
    tensors = {"logits": logits, "features": batch["input_features"], "mask": batch["attention_mask"]}
    save_file({k: v.contiguous() for k, v in tensors.items()}, out)
    print(type(model).__module__, type(model).__name__, type(processor).__name__)
"""


def test_saved_subnet_and_processor_load_as_remote_code_without_hf_supernet(tmp_path):
    model = MODELS["orthosoftmax"]
    set_scores(model.mask, seed=1, frozen=True)
    subnet = model.extract_subnet(model.subnet_space.smallest())  # already the plain dense ConformerForCTC
    processor = build_processor(train_tokenizer(DIGITS, model_type="char"), feature_size=16)
    folder = tmp_path / "subnet"
    dense = save_deployable(subnet, folder, processor)
    assert dense is subnet and type(dense) is ConformerForCTC
    names = {p.name for p in folder.iterdir()}
    assert {"modeling_conformer.py", "configuration_conformer.py", "checksums.py", "processing.py", "text.py"} <= names
    result = run_without_hf_supernet(REMOTE_LOADER, [folder, tmp_path / "out.safetensors"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # The classes came from the folder's own files (transformers' dynamic modules), not from hf_supernet.
    assert "transformers_modules" in result.stdout and "ConformerForCTC SupernetSpeechProcessor" in result.stdout
    remote = load_file(tmp_path / "out.safetensors")
    rng = np.random.default_rng(0)  # the loader's audio
    batch = processor(audio=[rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 9000)], sampling_rate=16000)
    torch.testing.assert_close(remote["features"], batch["input_features"], atol=1e-6, rtol=0)
    assert torch.equal(remote["mask"], batch["attention_mask"])
    with torch.no_grad():
        expected = dense(**batch).logits
    torch.testing.assert_close(remote["logits"], expected, atol=1e-5, rtol=0)
    # In this process (hf_supernet imported) the folder loads without trust_remote_code, as the registered classes.
    assert type(AutoModelForCTC.from_pretrained(folder)) is ConformerForCTC
    assert type(AutoProcessor.from_pretrained(folder)) is type(processor)
    # The remote code checks the weights against their recorded SHA-256 too: a flipped bit is an error there.
    flip_a_weight_bit(folder / "model.safetensors")
    result = run_without_hf_supernet(
        "from transformers import AutoModelForCTC\nAutoModelForCTC.from_pretrained(sys.argv[1], trust_remote_code=True)\n",
        [folder], tmp_path,
    )
    assert result.returncode != 0 and "does not match the SHA-256" in result.stderr


def test_load_deployable_converts_an_old_subnet_folder(tmp_path):
    model = MODELS["layer_width"]
    spec = model.subnet_space.smallest()
    old_style_subnet(model.extract_subnet(spec)).save_pretrained(tmp_path)  # a subnet folder of earlier versions
    dense = load_deployable(tmp_path)
    assert type(dense) is ConformerForCTC and not dense.training
    features = torch.randn(1, 40, 16)
    with torch.no_grad(), model.use_subnet(spec):
        torch.testing.assert_close(dense(features).logits, model(features).logits, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------------ export
LENGTHS = ([57, 40], [9], [123, 77, 100])  # three time lengths (and batch sizes) unlike the traced example


def assert_program_matches_eager(program, model, batches):
    for inputs, mask in batches:
        with torch.no_grad():
            expected = model(inputs, attention_mask=mask).logits
        torch.testing.assert_close(program(inputs, mask), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_export_of_every_mask_types_subnet_has_a_dynamic_time_dimension(name):
    model = MODELS[name]
    if name == "orthosoftmax":
        set_scores(model.mask, seed=2, frozen=True)
    dense = dense_conformer_from_subnet(model, model.subnet_space.sample(torch.Generator().manual_seed(4)))
    program = export_program(dense).module()
    assert_program_matches_eager(program, dense, [padded_batch(lengths, seed=i) for i, lengths in enumerate(LENGTHS)])


@pytest.mark.parametrize("family", ["wav2vec2", "hubert"])
def test_torch_export_of_a_foldable_path_stock_model(family):
    model = foldable(family)
    stock = model.extract_subnet(model.subnet_space.sample(torch.Generator().manual_seed(1)))
    program = export_program(stock).module()
    batches = [waveforms([n * 400 for n in lengths], seed=i) for i, lengths in enumerate(LENGTHS)]
    assert_program_matches_eager(program, stock, batches)


def test_onnx_export_runs_under_onnxruntime_like_eager(tmp_path):
    import onnx
    import onnxruntime

    model = MODELS["layer_width_uneven_sub8"]
    dense = dense_conformer_from_subnet(model, model.subnet_space.sample(torch.Generator().manual_seed(2)))
    path = export_model(dense, tmp_path / "model.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_features", "attention_mask"]

    def run(features, mask):
        return torch.from_numpy(session.run(None, {"input_features": features.numpy(), "attention_mask": mask.numpy()})[0])

    assert_program_matches_eager(run, dense, [padded_batch(lengths, seed=i) for i, lengths in enumerate(LENGTHS)])
    with pytest.raises(FileExistsError, match="overwrite"):
        export_model(dense, path, "onnx")
    # What the file needs and nothing else: no per-node stack traces, no optional intermediate shapes.
    graph = onnx.load(str(path)).graph
    assert not graph.value_info and not any(node.metadata_props for node in graph.node)


def test_export_script_writes_a_pt2_of_a_subnet_folder_and_keeps_existing_outputs(tmp_path, capsys):
    model = MODELS["omni_sparsity"]
    spec = model.subnet_space.sample(torch.Generator().manual_seed(3))
    model.extract_subnet(spec).save_pretrained(tmp_path / "subnet")
    output = tmp_path / "subnet.pt2"
    script = runpy.run_path(str(SCRIPTS / "export.py"))
    assert script["main"]([str(tmp_path / "subnet"), "--format", "pt2", "--output", str(output)]) == 0
    assert "wrote" in capsys.readouterr().out
    program = torch.export.load(output).module()
    features, mask = padded_batch([70, 33])
    with torch.no_grad(), model.use_subnet(spec):
        expected = model(features, attention_mask=mask).logits
    torch.testing.assert_close(program(features, mask), expected, atol=1e-4, rtol=0)
    before = output.read_bytes()
    with pytest.raises(SystemExit):
        script["main"]([str(tmp_path / "subnet"), "--format", "pt2", "--output", str(output)])
    assert output.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subnet", "subnet.pt2"]  # no temporary files left


# -------------------------------------------------------------------------------------------------- int8
@pytest.fixture(scope="module")
def trained_tiny():
    """A tiny dense model fitted for a few dozen steps (peaked logits, weights moved off their init)."""
    torch.manual_seed(0)
    config = ConformerConfig(
        num_mel_bins=16, subsampling_conv_channels=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, conv_kernel_size=5, vocab_size=12,
    )
    model = ConformerForCTC(config)
    features, mask = padded_batch([80, 64, 72, 50], seed=1)
    labels = torch.randint(1, config.vocab_size, (4, 6), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = model(features, attention_mask=mask, labels=labels).loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    return model.eval()


def assert_close_to_fp32(logits, reference):
    """int8 logits off fp32's by 5% of the logits' spread on average (25% at worst), and the same greedy token on
    >= 90% of frames."""
    valid = reference.output_attention_mask
    expected = reference.logits[valid]
    error = (logits[valid] - expected).abs()
    assert error.mean() <= 0.05 * expected.std() and error.max() <= 0.25 * expected.std()
    assert (logits[valid].argmax(-1) == expected.argmax(-1)).float().mean() >= 0.9


def test_torchao_dynamic_int8_quantizes_every_linear_and_stays_close_to_fp32(trained_tiny):
    quantized = quantize_int8(trained_tiny)
    linears = [m for m in quantized.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m.weight).__name__ == "Int8Tensor" for m in linears)
    assert all(type(m.weight) is torch.nn.Parameter for m in trained_tiny.modules() if isinstance(m, torch.nn.Linear))
    features, mask = padded_batch([80, 61], seed=2)
    with torch.no_grad():
        assert_close_to_fp32(quantized(features, attention_mask=mask).logits, trained_tiny(features, attention_mask=mask))


def test_onnx_int8_stores_every_linear_weight_in_int8_and_stays_close_to_fp32(trained_tiny, tmp_path):
    import onnx
    import onnxruntime

    fp32 = export_model(trained_tiny, tmp_path / "fp32.onnx", "onnx")
    int8 = export_model(trained_tiny, tmp_path / "int8.onnx", "onnx", int8=True)
    assert int8.stat().st_size < fp32.stat().st_size
    graph = onnx.load(str(int8)).graph
    int8_weights = sum(
        int(np.prod(t.dims)) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2
    )
    linear_weights = sum(m.weight.numel() for m in trained_tiny.modules() if isinstance(m, torch.nn.Linear))
    assert int8_weights == linear_weights
    session = onnxruntime.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    features, mask = padded_batch([80, 61], seed=2)
    logits = session.run(None, {"input_features": features.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.no_grad():
        assert_close_to_fp32(torch.from_numpy(logits), trained_tiny(features, attention_mask=mask))



def test_cost_model_int8_size_is_within_10_percent_of_the_onnx_int8_file(tmp_path):
    """At the quickstart's size (the smallest subnet of a 4 x 144 supernet, weights moved off their init as by
    training), the cost model's int8_mb (linear weights in one byte, a scale and a zero point per output channel, the
    rest fp32, the graph's bytes per linear layer) is the int8 ONNX file's size; one byte per parameter was 19% short.
    (scripts/bench_int8_size.py: more sizes.)"""
    torch.manual_seed(0)
    supernet = SupernetConformerForCTC(SupernetConformerConfig(
        vocab_size=30, hidden_size=144, num_hidden_layers=4, intermediate_size=576, subsampling_conv_channels=96,
        conv_kernel_size=15,
    ))
    spec = supernet.subnet_space.smallest()
    costs = supernet.subnet_costs(spec)
    dense = supernet.extract_subnet(spec)
    with torch.no_grad():
        for p in dense.parameters():
            p.add_(0.01 * torch.randn_like(p))  # fresh LayerNorm weights are equal constants, which ONNX stores once
    size = export_model(dense, tmp_path / "int8.onnx", "onnx", int8=True).stat().st_size / 1e6
    assert abs(costs.int8_mb / size - 1) <= 0.1
    assert abs(costs.params / 1e6 / size - 1) > 0.1  # the old estimate, one byte per parameter, was not


# ------------------------------------------------------------------------------------------------ pipeline
@pytest.fixture(scope="module")
def fsdd_clips():
    """About 60 s of bundled FSDD test clips and their transcripts."""
    root = bundled_data_path("fsdd")
    clips, texts = [], []
    with open(root / "test.jsonl") as manifest:
        for line in manifest:
            row = json.loads(line)
            clips.append(load_audio(root / row["file"]))
            texts.append(row["text"])
            if sum(map(len, clips)) >= 60 * 16000:
                break
    return clips, texts


@pytest.fixture(scope="module")
def fsdd_minute(fsdd_clips):
    """The clips concatenated, and their transcripts."""
    clips, texts = fsdd_clips
    return np.concatenate(clips), texts


def recording_pipeline(folder):
    """The ASR pipeline of ``folder``, and the list of the token ids it decodes (every logit frame it keeps, in
    order; one entry per call)."""
    asr = pipeline("automatic-speech-recognition", model=str(folder))
    decoded, decode = [], asr.tokenizer.decode

    def recording_decode(ids, **kwargs):
        decoded.append(np.asarray(ids))
        return decode(ids, **kwargs)

    asr.tokenizer.decode = recording_decode
    return asr, decoded


def test_asr_pipeline_transcribes_with_and_without_chunking(fsdd_minute, tmp_path):
    audio, texts = fsdd_minute
    tokenizer = train_tokenizer(texts, model_type="char")
    processor = build_processor(tokenizer)
    torch.manual_seed(0)
    config = ConformerConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128, subsampling_conv_channels=16,
                             vocab_size=len(tokenizer))
    save_deployable(ConformerForCTC(config), tmp_path, processor)
    asr, decoded = recording_pipeline(tmp_path)
    assert asr.type == "ctc" and asr.model.config.inputs_to_logits_ratio == 640
    whole = asr(audio)["text"]
    # Unchunked, the pipeline's transcript is the model's greedy CTC transcript of the whole recording.
    with torch.no_grad():
        logits = asr.model(**processor(audio=audio, sampling_rate=16000)).logits
    assert whole == processor.batch_decode(logits.argmax(-1))[0]
    chunked = asr(audio, chunk_length_s=10, stride_length_s=2)["text"]
    # Chunks of 10 s overlap by 2 s on each side; with the model's 640 samples per output frame the pipeline keeps
    # each frame of the recording once: as many frames as the unchunked pass (up to one per chunk edge).
    chunks = -(-len(audio) // ((10 - 2 * 2) * 16000))
    assert abs(len(decoded[1]) - len(decoded[0])) <= chunks
    assert abs(len(decoded[0]) - len(audio) / 640) <= 1
    assert isinstance(chunked, str) and chunked


def test_chunked_pipeline_gives_the_unchunked_transcript_where_every_chunk_sees_what_the_whole_sees(fsdd_clips, tmp_path):
    """`chunk_length_s` reproduces the unchunked transcript where each chunk's logits, on the frames the pipeline
    keeps of it, are the whole recording's: a model whose receptive field fits in the 2 s stride (an extracted subnet
    without self-attention: self-attention sees the whole input, so chunks change its context), on audio whose
    per-utterance feature normalisation finds the same statistics in every 10 s chunk as in the whole (a 2 s period of
    silence, three digits, silence, repeated 29 times: every chunk holds 5 periods). Tolerance: none (the feature
    extractor drops the centred STFT's trailing frame, which the unchunked pipeline would decode and chunking drops)."""
    clips, texts = fsdd_clips
    period = np.zeros(2 * 16000, dtype=np.float32)
    speech = np.concatenate(clips[:3])[: len(period) - 3200]
    period[1600 : 1600 + len(speech)] = speech
    audio = np.tile(period, 29)  # 58 s: chunks start every 6 s, the last one ends with the audio
    tokenizer = train_tokenizer(texts, model_type="char")
    processor = build_processor(tokenizer)
    torch.manual_seed(1)
    supernet = SupernetConformerForCTC(
        tiny_conformer_config(num_mel_bins=80, num_hidden_layers=2, layer_attention_heads=[0, 0], vocab_size=len(tokenizer))
    )
    save_deployable(supernet.extract_subnet(supernet.subnet_space.largest()), tmp_path, processor)
    asr, decoded = recording_pipeline(tmp_path)
    assert type(asr.model) is ConformerForCTC

    whole = asr(audio)["text"]
    chunked = asr(audio, chunk_length_s=10, stride_length_s=2)["text"]
    whole_ids, chunked_ids = decoded
    assert len(set(chunked_ids.tolist())) > 3  # a transcript worth comparing (not all blanks)
    np.testing.assert_array_equal(chunked_ids, whole_ids)
    assert chunked == whole
    with torch.no_grad():  # every logit frame of the recording is a valid one
        out = asr.model(**processor(audio=audio, sampling_rate=16000))
    assert out.logits.shape[1] == len(whole_ids) and bool(out.output_attention_mask.all())
