"""Atomic writes: a file or folder is replaced whole or not at all, so an interrupted run never leaves it half-written.

Temporary files and folders are hidden siblings of the target named ``.{name}.tmp-{pid}-*`` (and, while a folder is
swapped, ``.{name}.old-{pid}-*``). A process killed outright (SIGKILL, power loss) cannot clean them up, so every
write — and :func:`recover` for readers — first repairs what a dead writer left: a folder killed between the two
renames of the swap is restored from its ``.old-`` copy, and the dead writer's temporaries are removed. Temporaries of
a writer that is still running (its pid is alive) are left alone.

``test_hook`` (set only by tests) is called with the name of each step (``"written"``, ``"moved_aside"``) so that a
test can kill the process exactly between two steps and check what survives.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)
test_hook: Callable[[str], None] | None = None
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-")


def _step(name: str) -> None:
    if test_hook is not None:
        test_hook(name)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def recover(target: str | os.PathLike) -> None:
    """Repair what a writer of ``target`` that died mid-write left next to it.

    If ``target`` is missing but a dead writer's ``.{name}.old-*`` folder holds it (killed between moving the old
    folder aside and moving the new one in), the old one is moved back; then the dead writers' hidden temporaries of
    ``target`` are removed. Cheap (one listing of the parent folder); safe to call before every read or write."""
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return
    leftovers = []
    for entry in parent.iterdir():
        match = _LEFTOVER.match(entry.name)
        if match and match["name"] == target.name and not _pid_alive(int(match["pid"])):
            leftovers.append((match["kind"], entry))
    for kind, entry in sorted(leftovers, key=lambda ke: ke[0] != "old"):  # restore before cleaning
        if kind == "old" and (entry / target.name).exists() and not target.exists():
            os.replace(entry / target.name, target)
        _remove(entry)


def _prefix(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-{os.getpid()}-"


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target`` to write to; on success it replaces ``target``.

    An interrupted write leaves ``target`` as it was and removes the temporary file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_prefix(target, "tmp"))
    os.close(fd)
    try:
        yield Path(tmp)
        _step("written")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_texts(folder: str | os.PathLike, texts: dict[str, str]) -> None:
    """Write each ``name -> text`` of ``texts`` into ``folder`` (created if missing), each file atomically (e.g. a
    benchmark's JSON and markdown results)."""
    for name, text in texts.items():
        with atomic_file(Path(folder) / name) as tmp:
            tmp.write_text(text)


def append_json_line(path: str | os.PathLike, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` (created with its folder if missing) with a single write, synced
    to disk: a resumable benchmark's log of finished runs, where an interrupted append loses at most that run."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        # After an append cut short by a crash, the new record starts on a line of its own.
        cut = False
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            cut = f.read(1) != b"\n"
        f.write((("\n" if cut else "") + json.dumps(record) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def read_json_lines(path: str | os.PathLike) -> list[dict]:
    """The records :func:`append_json_line` wrote to ``path`` (none if it does not exist yet); a line that is not a
    whole record (an append cut short by a crash) is skipped with a warning."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # A record cut short by a crash (the last line, or one a later append closed): its run is not counted
                # as finished, so a resumable benchmark runs it again.
                logger.warning("%s, line %d: not a whole JSON record (an append cut short?); skipped", path, number)
    return records


def _carry_over(old: Path, new: Path) -> None:
    """Put every entry of ``old`` that ``new`` does not have into ``new`` (hard links where possible, else copies),
    so that replacing ``old`` by ``new`` deletes nothing the writer did not write itself."""
    for entry in old.iterdir():
        destination = new / entry.name
        if destination.exists() or destination.is_symlink():
            if entry.is_dir() and destination.is_dir() and not entry.is_symlink():
                _carry_over(entry, destination)
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), destination)
        elif entry.is_dir():
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, destination)


def _link_or_copy(source, destination) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, carry_over: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``target``; on success it replaces ``target``.

    An interrupted write leaves ``target`` as it was, never half-written (a hard kill leaves hidden temporaries that
    the next write or :func:`recover` cleans, restoring ``target`` if the kill fell between the two renames).

    With ``carry_over``, the files of the existing ``target`` that the new contents do not replace are kept (hard
    linked into the new folder), so the write adds and replaces files but deletes none.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} is a file, not a folder; it is not replaced by one. Move it, or choose another path.")
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target, "tmp"), dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; the published folder is meant to be read by others
    try:
        yield tmp
        if carry_over and target.is_dir():
            _carry_over(target, tmp)
        _step("written")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        # Directories cannot be renamed over non-empty ones: move the old one aside, then swap.
        old = Path(tempfile.mkdtemp(prefix=_prefix(target, "old"), dir=target.parent))
        os.replace(target, old / target.name)
        try:
            _step("moved_aside")
            os.replace(tmp, target)
        except BaseException:
            os.replace(old / target.name, target)
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
