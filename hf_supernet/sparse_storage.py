"""Block-sparse storage of a model whose weights hold whole blocks of zeros (e.g. an extracted Omni-sparsity subnet).

A dense checkpoint spends as many bytes on the zeros a pruned subnet bakes in as on its weights. ``save_sparse``
writes each 2-D weight in BSR form (block compressed sparse rows, the layout of ``torch.sparse_bsr`` and fbgemm's
BCSR): the values of the blocks that are not all zero, one column index per kept block and one row pointer per
block row — *only where that takes fewer bytes than the dense tensor*; every other tensor is written as it is.
``load_sparse`` rebuilds the dense tensors exactly (a -0.0 comes back as 0.0), so the loaded model computes what
the saved one did.

Files (in ``save_directory``): ``config.json`` and ``model.block_sparse.safetensors`` holding, per tensor ``name``,
either ``name`` (dense) or ``name.bsr_values`` (kept blocks x rows x cols, the tensor's dtype),
``name.bsr_col_indices`` (int16, or int32 past 32767 block columns) and ``name.bsr_crow_indices`` (int32, block
rows + 1); the metadata names the format, the block shape, the model class and the shapes of the sparse tensors, and holds the
SHA-256 of the tensors (``weights_sha256``), which ``load_sparse`` checks.

:func:`storage_report` gives the numbers behind the choice: parameters, nonzero parameters, bytes dense and
sparse, and the int8 sizes (one byte per stored weight; the sparse int8 size includes the index overhead).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, PreTrainedModel

from . import models
from .atomic import atomic_directory, recover
from .integrity import tensors_sha256
from .slicing import block_grid

SPARSE_WEIGHTS_NAME = "model.block_sparse.safetensors"
FORMAT = "hf_supernet.block_sparse.v1"
DEFAULT_BLOCK_SHAPE = (8, 1)
_SUFFIXES = (".bsr_values", ".bsr_col_indices", ".bsr_crow_indices")


# ---------------------------------------------------------------------------------------------- BSR conversion
def to_block_sparse(tensor: torch.Tensor, block: tuple[int, int]) -> dict[str, torch.Tensor]:
    """BSR parts of a 2-D tensor: the blocks that are not all zero (row-major), their block columns, and the
    number of kept blocks before each block row. A dimension that is not a multiple of the block is padded."""
    rows, cols = block_grid(tuple(tensor.shape), block)
    padded = tensor.new_zeros(rows * block[0], cols * block[1])
    padded[: tensor.shape[0], : tensor.shape[1]] = tensor
    blocks = padded.view(rows, block[0], cols, block[1]).permute(0, 2, 1, 3)  # (rows, cols, R, C)
    kept = blocks.ne(0).flatten(2).any(dim=2)
    index_dtype = torch.int16 if cols <= torch.iinfo(torch.int16).max else torch.int32
    crow = torch.zeros(rows + 1, dtype=torch.int32)
    crow[1:] = kept.sum(dim=1).cumsum(0)
    return {
        "values": blocks[kept].contiguous(),
        "col_indices": kept.nonzero()[:, 1].to(index_dtype),
        "crow_indices": crow,
    }


def from_block_sparse(parts: dict[str, torch.Tensor], shape: tuple[int, int], block: tuple[int, int]) -> torch.Tensor:
    """The dense tensor of :func:`to_block_sparse`'s parts."""
    rows, cols = block_grid(shape, block)
    values = parts["values"]
    block_rows = torch.repeat_interleave(torch.arange(rows), parts["crow_indices"].long().diff())
    blocks = values.new_zeros(rows, cols, block[0], block[1])
    blocks[block_rows, parts["col_indices"].long()] = values
    return blocks.permute(0, 2, 1, 3).reshape(rows * block[0], cols * block[1])[: shape[0], : shape[1]].contiguous()


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _sparse_wins(tensor: torch.Tensor, block: tuple[int, int]) -> dict[str, torch.Tensor] | None:
    """The BSR parts of ``tensor`` if they take fewer bytes than the tensor itself, else ``None``."""
    if tensor.dim() != 2 or not tensor.is_floating_point():
        return None
    parts = to_block_sparse(tensor.detach().cpu(), block)
    return parts if sum(_nbytes(p) for p in parts.values()) < _nbytes(tensor) else None


def _block_shape_of(model, block_shape) -> tuple[int, int]:
    if block_shape is None:
        # An extracted dense subnet records the block shape its pruning used; a supernet (or an old subnet) its own.
        config = model.config
        block_shape = (
            getattr(config, "sparsity_block_shape", None)
            or getattr(config, "omni_sparsity_block_shape", None)
            or DEFAULT_BLOCK_SHAPE
        )
    block_shape = tuple(int(b) for b in block_shape)
    if len(block_shape) != 2 or min(block_shape) < 1:
        raise ValueError(f"block_shape must be (rows, cols) of positive ints, got {block_shape}.")
    return block_shape


# ---------------------------------------------------------------------------------------------------- report
@dataclasses.dataclass(frozen=True)
class StorageReport:
    """What a model takes to store, dense and block-sparse.

    ``params``: every parameter; ``nonzero_params``: weights (2-D and up) counted by their nonzero entries, vectors
    (biases, norms) in full — the convention of ``subnet_costs().params``; ``dense_bytes`` / ``sparse_bytes``:
    tensor bytes of the state dict written dense / by :func:`save_sparse`; ``int8_dense_bytes``: one byte per
    parameter; ``int8_sparse_bytes``: one byte per stored weight value plus the index bytes of the tensors stored
    sparse; ``sparse_tensors``: the tensors :func:`save_sparse` stores in BSR form.
    """

    params: int
    nonzero_params: int
    dense_bytes: int
    sparse_bytes: int
    int8_dense_bytes: int
    int8_sparse_bytes: int
    block_shape: tuple[int, int]
    sparse_tensors: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@torch.no_grad()
def storage_report(model, block_shape: tuple[int, int] | None = None) -> StorageReport:
    """Sizes of ``model`` stored dense and block-sparse (``block_shape`` defaults to the config's
    ``sparsity_block_shape`` (an extracted subnet) or ``omni_sparsity_block_shape`` (a supernet), else 8x1)."""
    block = _block_shape_of(model, block_shape)
    parameter_names = {name for name, _ in model.named_parameters()}
    params = nonzero = dense_bytes = sparse_bytes = int8_dense = int8_sparse = 0
    sparse_names = []
    for name, tensor in model.state_dict().items():
        parts = _sparse_wins(tensor, block)
        dense_bytes += _nbytes(tensor)
        sparse_bytes += _nbytes(tensor) if parts is None else sum(_nbytes(p) for p in parts.values())
        if parts is not None:
            sparse_names.append(name)
        if name not in parameter_names:
            continue
        params += tensor.numel()
        nonzero += int(tensor.count_nonzero()) if tensor.dim() > 1 else tensor.numel()
        int8_dense += tensor.numel()
        if parts is None:
            int8_sparse += tensor.numel()
        else:
            int8_sparse += parts["values"].numel() + _nbytes(parts["col_indices"]) + _nbytes(parts["crow_indices"])
    return StorageReport(
        params, nonzero, dense_bytes, sparse_bytes, int8_dense, int8_sparse, block, tuple(sparse_names)
    )


# ------------------------------------------------------------------------------------------------ save / load
@torch.no_grad()
def save_sparse(model, save_directory: str | os.PathLike, block_shape: tuple[int, int] | None = None) -> StorageReport:
    """Write ``model``'s config and its weights, block-sparse where that saves bytes, to ``save_directory``;
    reload with :func:`load_sparse`. Returns the :class:`StorageReport` of what was written."""
    block = _block_shape_of(model, block_shape)
    tensors, shapes = {}, {}
    for name, tensor in model.state_dict().items():
        if name.endswith(_SUFFIXES):
            raise ValueError(f"Tensor name {name!r} ends like a block-sparse part; it cannot be stored unambiguously.")
        parts = _sparse_wins(tensor, block)
        if parts is None:
            tensors[name] = tensor.detach().cpu().contiguous()
        else:
            shapes[name] = list(tensor.shape)
            tensors.update({f"{name}.bsr_{k}": v for k, v in parts.items()})
    metadata = {
        "format": FORMAT,
        "block_shape": json.dumps(list(block)),
        "model_class": type(model).__name__,
        "sparse_shapes": json.dumps(shapes),
        "weights_sha256": tensors_sha256(tensors),  # load_sparse checks it: a flipped bit is an error
    }
    # Weights and config are swapped in together (other files already in the folder are kept): an interrupted save
    # leaves the previous checkpoint whole, never new weights next to an old or missing config.
    with atomic_directory(save_directory, carry_over=True) as tmp:
        save_file(tensors, str(tmp / SPARSE_WEIGHTS_NAME), metadata=metadata)
        model.config.save_pretrained(tmp)
    return storage_report(model, block)


def load_sparse(directory: str | os.PathLike, model_class=None):
    """The model :func:`save_sparse` wrote to ``directory`` (in eval mode). ``model_class`` defaults to the class
    recorded in the file, looked up among hf_supernet's models."""
    recover(directory)  # a save killed between its two renames: restore the previous checkpoint
    path = os.path.join(directory, SPARSE_WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist; write it with hf_supernet.save_sparse(model, directory).")
    damaged = f"{path} is damaged"
    fix = "Save it again with save_sparse, or copy it again."
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise ValueError(f"{path} is not a {FORMAT} file (format={metadata.get('format')!r}).")
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except SafetensorError as error:
        raise ValueError(f"{damaged}: not a readable safetensors file ({error}). {fix}") from None
    recorded = metadata.get("weights_sha256")
    if recorded is not None and tensors_sha256(tensors) != recorded:
        raise ValueError(f"{damaged}: its tensors do not match the SHA-256 recorded when it was saved. {fix}")
    try:
        block = tuple(int(b) for b in json.loads(metadata["block_shape"]))
        sparse_shapes = {name: tuple(int(d) for d in shape) for name, shape in json.loads(metadata["sparse_shapes"]).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{damaged}: its metadata (block_shape, sparse_shapes) cannot be read ({error!r}). {fix}") from None
    if len(block) != 2 or min(block) < 1:
        raise ValueError(f"{damaged}: block_shape {list(block)} is not two positive ints. {fix}")
    state = {name: t for name, t in tensors.items() if not name.endswith(_SUFFIXES)}
    for name, shape in sparse_shapes.items():
        keys = {k: f"{name}.bsr_{k}" for k in ("values", "col_indices", "crow_indices")}
        missing = [key for key in keys.values() if key not in tensors]
        if missing or len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"{damaged}: sparse tensor {name!r} lacks {missing} or has shape {list(shape)}. {fix}")
        parts = {k: tensors[key] for k, key in keys.items()}
        _check_block_sparse(parts, shape, block, f"{damaged}: sparse tensor {name!r}", fix)
        state[name] = from_block_sparse(parts, shape, block)
    cls = model_class or _model_class(metadata.get("model_class"))
    model = cls(AutoConfig.from_pretrained(directory))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"The weights in {path} do not fit the model of {os.path.join(directory, 'config.json')} ({error}). The "
            f"two files come from different saves; {fix}"
        ) from None
    return model.eval()


def _check_block_sparse(parts: dict[str, torch.Tensor], shape, block, what: str, fix: str) -> None:
    """Refuse BSR parts that do not describe a ``shape`` tensor (tampered or damaged indices)."""
    rows, cols = block_grid(shape, block)
    values, col, crow = parts["values"], parts["col_indices"].long(), parts["crow_indices"].long()
    problem = None
    if values.dim() != 3 or tuple(values.shape[1:]) != block:
        problem = f"values have shape {list(values.shape)}, not (blocks, {block[0]}, {block[1]})"
    elif crow.dim() != 1 or crow.numel() != rows + 1 or col.dim() != 1:
        problem = f"crow_indices have {crow.numel()} entries, not {rows + 1} (block rows + 1)"
    elif crow[0] != 0 or bool((crow.diff() < 0).any()) or crow[-1] != values.shape[0] or col.numel() != values.shape[0]:
        problem = "crow_indices are not a running count of the stored blocks"
    elif col.numel() and (int(col.min()) < 0 or int(col.max()) >= cols):
        problem = f"col_indices leave the {cols} block columns"
    elif col.numel():
        # Within a block row, columns must be strictly increasing (each block stored once, in order).
        row_of = torch.repeat_interleave(torch.arange(rows), crow.diff())
        key = row_of * cols + col
        if bool((key.diff() <= 0).any()):
            problem = "col_indices repeat or are out of order within a block row"
    if problem is not None:
        raise ValueError(f"{what}: {problem}. {fix}")


def _model_class(name: str | None):
    cls = getattr(models, name or "", None)
    if not (isinstance(cls, type) and issubclass(cls, PreTrainedModel)):
        raise ValueError(f"Model class {name!r} is not one of hf_supernet's models; pass model_class= to load_sparse.")
    return cls


__all__ = ["StorageReport", "from_block_sparse", "load_sparse", "save_sparse", "storage_report", "to_block_sparse"]
