"""Checksums of the weights hf_supernet writes, verified when they are loaded: a bit flip or a damaged copy is an
error naming the file, never a silently different model.

- ``save_pretrained`` of an hf_supernet model (supernets, and the dense ``ConformerForCTC`` of extracted and
  published subnets) writes :data:`CHECKSUM_FILE` next to the weights: the SHA-256 of each ``*.safetensors`` file;
  ``from_pretrained`` of a local folder checks them (:func:`verify_checksums`). The functions are those of
  :mod:`hf_supernet.models.conformer.checksums`, which travels as remote code with a deployed subnet, so its check
  runs where hf_supernet is not installed too.
- ``save_sparse`` records the SHA-256 of its tensors in the safetensors metadata; ``load_sparse`` checks it
  (:func:`tensors_sha256`).

Folders without a checksum file (written by older versions or other tools) load unverified.
"""

from __future__ import annotations

import hashlib

import torch

# The folder checksums live with the dense model, whose remote code carries them (stdlib only).
from .models.conformer.checksums import (
    ALGORITHM,
    CHECKSUM_FILE,
    file_sha256,
    forget_checksums,
    verify_checksums,
    write_checksums,
)


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


__all__ = [
    "ALGORITHM",
    "CHECKSUM_FILE",
    "file_sha256",
    "forget_checksums",
    "tensors_sha256",
    "verify_checksums",
    "write_checksums",
]
