"""The installed shape of the source tree, for tools that find modules by walking folders.

pyproject.toml maps the top-level folders onto subpackages (models/ is `naba.models`, ...), which pip and
the import system follow, but import-linter (grimp) and mypy walk directories. This builds the tree the wheel
would install, out of real folders and symlinked `.py` files, so both tools see `naba.models` as a folder
of `naba` and their messages lead, through the links, to the files in the source tree.

    python -m tests.package_tree build/package-tree    # then PYTHONPATH=build/package-tree lint-imports
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def package_dirs(pyproject: Path = REPO / "pyproject.toml") -> dict[str, Path]:
    """Every package of the distribution and the source folder it installs from."""
    setuptools = tomllib.loads(pyproject.read_text("utf-8"))["tool"]["setuptools"]
    mapping = setuptools.get("package-dir", {})
    folders = {}
    for package in setuptools["packages"]:
        # A package's folder is its own mapping, else its parent's folder plus its last name.
        parent, _, name = package.rpartition(".")
        folders[package] = REPO / mapping[package] if package in mapping else folders.get(parent, REPO) / name
    return folders


def build_tree(target: Path) -> Path:
    """Recreate `target` as the installed layout (folders real, `.py` files symlinked); returns `target`."""
    if target.exists():
        shutil.rmtree(target)
    for package, source in package_dirs().items():
        folder = target.joinpath(*package.split("."))
        folder.mkdir(parents=True, exist_ok=True)
        for module in source.glob("*.py"):
            (folder / module.name).symlink_to(module)
    return target


if __name__ == "__main__":
    build_tree(Path(sys.argv[1]))
