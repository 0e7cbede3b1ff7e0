"""Deploying a subnet without hf_supernet: the plain dense model with its remote code, ``torch.export`` programs
(``.pt2``), ONNX, and dynamic int8.

- :func:`load_deployable` reads a subnet folder as a plain dense model: a ``ConformerForCTC`` folder as is, an
  older ``SupernetConformerForCTC`` subnet folder converted (:func:`~hf_supernet.models.conformer
  .dense_conformer_from_subnet`), and any stock transformers CTC model (e.g. a foldable path's ``Wav2Vec2ForCTC``).
- :func:`save_deployable` writes model + processor so that ``AutoModelForCTC`` / ``AutoProcessor``
  ``.from_pretrained(folder, trust_remote_code=True)`` load them where hf_supernet is not installed (publishing
  writes each subnet's folder the same way, :func:`write_deployable`).
- :func:`export_program` / :func:`export_model` export with a dynamic batch and time dimension; ``int8=True``
  quantizes the linear layers (torchao's dynamic int8 for PyTorch, onnxruntime's ``quantize_dynamic`` for ONNX).

The export dependencies (onnx, onnxscript, onnxruntime, torchao) are the ``[export]`` extra; they are imported only
when used.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForCTC, PreTrainedModel

from ..atomic import atomic_directory, atomic_file, recover
from ..models.supernet_conformer import SupernetConformerConfig, SupernetConformerForCTC, dense_conformer_from_subnet

FORMATS = ("pt2", "onnx")
_PROCESSOR_AUTO_CLASSES = {"processor": "AutoProcessor", "feature_extractor": "AutoFeatureExtractor", "tokenizer": "AutoTokenizer"}


def to_deployable(model: PreTrainedModel) -> PreTrainedModel:
    """The plain dense model of ``model``: a ``SupernetConformerForCTC`` subnet becomes a ``ConformerForCTC``;
    plain models (``ConformerForCTC``, stock transformers CTC models) are returned as they are."""
    return dense_conformer_from_subnet(model) if isinstance(model, SupernetConformerForCTC) else model


def load_deployable(folder: str | os.PathLike) -> PreTrainedModel:
    """The model saved in ``folder`` as a plain dense model, in eval mode (see :func:`to_deployable`). A folder
    write killed between its two renames (``save_deployable``, publishing) is restored first."""
    recover(folder)
    config = AutoConfig.from_pretrained(folder)
    if isinstance(config, SupernetConformerConfig):
        return to_deployable(SupernetConformerForCTC.from_pretrained(folder)).eval()
    return AutoModelForCTC.from_pretrained(folder).eval()


@contextlib.contextmanager
def processor_as_remote_code(processor) -> Iterator[None]:
    """While active, ``processor.save_pretrained`` writes ``auto_map`` entries and copies the processor's own
    module (and the modules it imports relatively) next to it, as ``register_for_auto_class`` does, so that
    ``AutoProcessor.from_pretrained(folder, trust_remote_code=True)`` needs no hf_supernet. Marked per class for the
    duration only, so other saves of these classes stay as they were."""
    parts = {"processor": processor}
    parts.update((name, getattr(processor, name, None)) for name in ("feature_extractor", "tokenizer"))
    # Classes of stock transformers load without remote code: only hf_supernet's own travel with the folder.
    classes = {
        type(obj): _PROCESSOR_AUTO_CLASSES[name]
        for name, obj in parts.items()
        if obj is not None and not is_stock_transformers_class(type(obj))
    }
    before = {cls: cls.__dict__.get("_auto_class") for cls in classes}
    try:
        for cls, auto_class in classes.items():
            cls._auto_class = auto_class
        yield
    finally:
        for cls, value in before.items():
            if value is None:
                del cls._auto_class
            else:
                cls._auto_class = value


def is_stock_transformers_class(cls: type) -> bool:
    """Whether ``cls`` is a class of stock transformers (which loads without remote code)."""
    return getattr(transformers, cls.__name__, None) is cls


def write_deployable(model: PreTrainedModel, folder: str | os.PathLike, processor=None) -> PreTrainedModel:
    """Write the plain dense model of ``model`` (and ``processor``) into the existing ``folder``, hf_supernet's
    classes as remote code, so that they load with ``trust_remote_code=True`` without hf_supernet. Not atomic by
    itself: :func:`save_deployable` and publishing write into a temporary folder that replaces the target whole.
    Returns the dense model."""
    dense = to_deployable(model)
    dense.save_pretrained(folder)
    if processor is not None:
        with processor_as_remote_code(processor):
            processor.save_pretrained(folder)
    return dense


def save_deployable(model: PreTrainedModel, folder: str | os.PathLike, processor=None) -> PreTrainedModel:
    """:func:`write_deployable` to ``folder``, replaced atomically. Returns the dense model."""
    with atomic_directory(Path(folder)) as tmp:
        return write_deployable(model, tmp, processor)


class LogitsModule(nn.Module):
    """``model`` as a function of (main input, attention_mask) -> logits: the signature an exported program or ONNX
    graph has."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model
        self.input_name = model.main_input_name

    def forward(self, inputs: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(**{self.input_name: inputs}, attention_mask=attention_mask, return_dict=True).logits


def example_inputs(model: PreTrainedModel, seconds: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch of two (the second utterance 3/4 as long) of ``model``'s main input, for tracing."""
    config = model.config
    if model.main_input_name == "input_features":
        frames = int(seconds * 16000 / getattr(config, "feature_hop_length", 160))
        inputs = torch.randn(2, frames, config.num_mel_bins)
    else:
        frames = int(seconds * 16000)
        inputs = torch.randn(2, frames)
    mask = torch.ones(2, frames, dtype=torch.long)
    mask[1, frames * 3 // 4 :] = 0
    inputs[1, frames * 3 // 4 :] = 0
    return inputs, mask


def _dynamic_shapes():
    dynamic = torch.export.Dim.DYNAMIC
    return ({0: dynamic, 1: dynamic}, {0: dynamic, 1: dynamic})


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """A copy of ``model`` with every linear layer in dynamic int8 (int8 weights, activations quantized per token
    at run time) through torchao's ``quantize_(model, Int8DynamicActivationInt8WeightConfig())``, PyTorch's current
    path for what the deprecated ``torch.ao.quantization.quantize_dynamic`` did."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantized = copy.deepcopy(model).eval()
    quantize_(quantized, Int8DynamicActivationInt8WeightConfig())
    return quantized


def export_program(model: PreTrainedModel, int8: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` (eval mode; int8 with ``int8=True``) as (inputs, attention_mask) -> logits, with
    dynamic batch and time dimensions."""
    model = quantize_int8(model) if int8 else model.eval()
    return torch.export.export(LogitsModule(model).eval(), example_inputs(model), dynamic_shapes=_dynamic_shapes())


def export_onnx(model: PreTrainedModel, path: Path, int8: bool = False) -> None:
    """ONNX graph of ``model`` (torch.onnx's dynamo exporter) written to ``path``; with ``int8=True`` its MatMul /
    Gemm weights are quantized to int8 (per output channel) by onnxruntime's ``quantize_dynamic``."""
    module = LogitsModule(model.eval()).eval()
    program = torch.onnx.export(
        module,
        example_inputs(model),
        input_names=[module.input_name, "attention_mask"],
        output_names=["logits"],
        dynamic_shapes=_dynamic_shapes(),
        dynamo=True,
        verbose=False,
    )
    import onnx

    proto = program.model_proto
    for node in proto.graph.node:
        del node.metadata_props[:]  # the exporter's per-node stack traces: a fifth of a small model's file
    # Shapes of intermediate values: optional (onnxruntime infers them when it loads the graph), and ~4% of a small
    # model's int8 file.
    del proto.graph.value_info[:]
    if not int8:
        onnx.save(proto, str(path))
        return
    with tempfile.TemporaryDirectory() as folder:
        fp32 = Path(folder) / "model.onnx"
        onnx.save(proto, str(fp32))
        quantize_onnx(fp32, path)


def quantize_onnx(fp32_path: str | os.PathLike, int8_path: str | os.PathLike) -> None:
    """onnxruntime's dynamic int8 of an fp32 ONNX graph: MatMul / Gemm weights int8 per output channel, activations
    quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        Path(fp32_path), Path(int8_path), weight_type=QuantType.QInt8, per_channel=True,
        op_types_to_quantize=["MatMul", "Gemm"],
    )


def export_model(
    model: PreTrainedModel, output: str | os.PathLike, format: str, int8: bool = False, overwrite: bool = False
) -> Path:
    """Export the plain dense model of ``model`` to ``output`` (``format`` "pt2" or "onnx"), written atomically;
    an existing ``output`` is replaced only with ``overwrite=True``."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}.")
    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True (--overwrite) to replace it.")
    model = to_deployable(model)
    with atomic_file(output) as tmp:
        if format == "pt2":
            buffer = io.BytesIO()  # torch.export.save wants a name ending in .pt2, which the temporary file lacks
            torch.export.save(export_program(model, int8=int8), buffer)
            tmp.write_bytes(buffer.getvalue())
        else:
            export_onnx(model, tmp, int8=int8)
    return output


__all__ = [
    "FORMATS",
    "LogitsModule",
    "example_inputs",
    "export_model",
    "export_onnx",
    "export_program",
    "is_stock_transformers_class",
    "load_deployable",
    "processor_as_remote_code",
    "quantize_int8",
    "quantize_onnx",
    "save_deployable",
    "to_deployable",
    "write_deployable",
]
