"""Properties of the repository as a whole."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Paths of one machine (a workspace, a home directory, a scratch folder) mean nothing on another.
MACHINE_PATH = re.compile(rb"(?<![\w.~-])/(work|home|root|tmp|Users)\b")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_absolute_machine_paths_in_tracked_files():
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (audio, images)
        for number, line in enumerate(data.splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.decode(errors='replace').strip()[:120]}")
    assert not found, "absolute machine paths (write them relative, e.g. ../shared/data/fsdd):\n" + "\n".join(found)


def test_pyproject_lists_every_package_of_the_tree():
    """pyproject.toml lists the packages by hand (the top-level model_cards/ folder is mapped into the package, which
    automatic discovery cannot express): a package added to the tree but not to the list would be missing from the
    wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    in_tree = {
        ".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "hf_supernet").rglob("__init__.py")
    }
    mapped = {name: REPO / folder for name, folder in setuptools["package-dir"].items()}
    assert all((folder / "__init__.py").is_file() for folder in mapped.values())
    assert sorted(setuptools["packages"]) == sorted(in_tree | set(mapped))
