"""SHA-256 checksums of a saved model's weights files, verified when the folder is loaded: a bit flip or a damaged
copy is an error naming the file, never a silently different model.

This file imports only the standard library: it travels as remote code with ``modeling_conformer.py`` (which imports
it relatively), so a deployed subnet checks its weights where hf_supernet is not installed too. hf_supernet's own
models use the same functions (:mod:`hf_supernet.integrity`).
"""

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

CHECKSUM_FILE = "hf_supernet_checksums.json"
ALGORITHM = "sha256"


def file_sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, ALGORITHM).hexdigest()


def forget_checksums(directory) -> None:
    """Remove the checksum file before the weights are rewritten, so a save killed midway leaves no stale record
    (the folder then loads unverified rather than failing a check its new weights cannot pass)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(directory, CHECKSUM_FILE))


def write_checksums(directory) -> dict:
    """Record the SHA-256 of every ``*.safetensors`` file of ``directory`` in its :data:`CHECKSUM_FILE` (written to a
    hidden temporary file that replaces it whole, named as :mod:`hf_supernet.atomic` names its temporaries)."""
    directory = Path(directory)
    files = {p.name: file_sha256(p) for p in sorted(directory.glob("*.safetensors"))}
    text = json.dumps({"algorithm": ALGORITHM, "files": files}, indent=1, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{CHECKSUM_FILE}.tmp-{os.getpid()}-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, directory / CHECKSUM_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return files


def verify_checksums(directory) -> bool:
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


class ChecksummedModelMixin:
    """For a ``PreTrainedModel``: ``save_pretrained`` also records the SHA-256 of the weights files in
    :data:`CHECKSUM_FILE`, and ``from_pretrained`` of a local folder checks them first (a folder without the record
    loads unverified, as other tools' folders do)."""

    def save_pretrained(self, save_directory, *args, **kwargs):
        main = kwargs.get("is_main_process", args[0] if args else True)
        if main:
            forget_checksums(save_directory)
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if main and os.path.isdir(save_directory):
            write_checksums(save_directory)
        return result

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        local = os.path.join(str(pretrained_model_name_or_path), kwargs.get("subfolder") or "")
        if os.path.isdir(local):
            verify_checksums(local)  # a damaged weights file is an error, not a different model
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
