"""Checksums of the weights hf_supernet writes, verified when they are loaded: a bit flip or a damaged copy is an
error naming the file, never a silently different model.

- ``save_pretrained`` of an hf_supernet model (supernets, extracted and published subnets) writes
  :data:`CHECKSUM_FILE` next to the weights: the SHA-256 of each ``*.safetensors`` file; ``from_pretrained`` of a
  local folder checks them (:func:`verify_checksums`).
- ``save_sparse`` records the SHA-256 of its tensors in the safetensors metadata; ``load_sparse`` checks it
  (:func:`tensors_sha256`).

Folders without a checksum file (written by older versions or other tools) load unverified.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import torch

from .atomic import atomic_file

CHECKSUM_FILE = "hf_supernet_checksums.json"
ALGORITHM = "sha256"


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, ALGORITHM).hexdigest()


def forget_checksums(directory: str | os.PathLike) -> None:
    """Remove the checksum file before the weights are rewritten, so a save killed midway leaves no stale record
    (the folder then loads unverified rather than failing a check its new weights cannot pass)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(directory, CHECKSUM_FILE))


def write_checksums(directory: str | os.PathLike) -> dict[str, str]:
    """Record the SHA-256 of every ``*.safetensors`` file of ``directory`` in its :data:`CHECKSUM_FILE`."""
    directory = Path(directory)
    files = {p.name: file_sha256(p) for p in sorted(directory.glob("*.safetensors"))}
    with atomic_file(directory / CHECKSUM_FILE) as tmp:
        tmp.write_text(json.dumps({"algorithm": ALGORITHM, "files": files}, indent=1, sort_keys=True) + "\n")
    return files


def verify_checksums(directory: str | os.PathLike) -> bool:
    """Check the weights of ``directory`` against its :data:`CHECKSUM_FILE`; ``False`` when it has none. Raises
    ``ValueError`` naming the file whose bytes changed since it was saved."""
    record = Path(directory) / CHECKSUM_FILE
    if not record.is_file():
        return False
    try:
        data = json.loads(record.read_text())
        files = data["files"] if data.get("algorithm") == ALGORITHM else None
        if not isinstance(files, dict):
            raise ValueError("no sha256 'files' table")
    except (ValueError, TypeError, AttributeError, KeyError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{record} is damaged ({error}); it records the checksums of the weights next to it. Save the model "
            "again, or delete that file to load the weights unverified."
        ) from None
    for name, expected in files.items():
        path = Path(directory) / name
        if path.is_file() and file_sha256(path) != expected:
            raise ValueError(
                f"{path} is corrupt or truncated: it does not match the SHA-256 recorded in {record} when it was "
                "saved (a flipped bit, an incomplete copy or download, or a change). Copy or save it again (if you "
                f"replaced it on purpose, delete {CHECKSUM_FILE})."
            )
    return True


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, dtypes, shapes and bytes, in name order): independent of how the file that
    holds them is laid out."""
    digest = hashlib.new(ALGORITHM)
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the bytes, without a copy
    return digest.hexdigest()
