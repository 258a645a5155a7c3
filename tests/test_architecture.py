"""The layers of docs/architecture.md hold: import-linter over the installed layout, and proof that it would
notice a module importing upwards."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.package_tree import build_tree, package_dirs

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    command = [str(LINT_IMPORTS), "--no-cache", str(REPO / "pyproject.toml")]
    return subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=120)


def test_every_source_folder_is_a_package_of_naba() -> None:
    folders = package_dirs()
    assert (
        folders["naba.models"] == REPO / "models"
        and folders["naba.service.routes"] == REPO / "service" / "routes"
    )
    top_level = {folder.name for folder in folders.values() if folder.parent == REPO}
    assert {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()} - {"tests", "bench"} == top_level


def test_no_import_runs_against_the_layers(tmp_path: Path) -> None:
    done = lint_imports(build_tree(tmp_path / "tree"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_model_module_importing_the_service_breaks_them(tmp_path: Path) -> None:
    tree = build_tree(tmp_path / "tree")
    (tree / "naba" / "models" / "upwards.py").write_text("import naba.service.app\n", "utf-8")
    (tree / "naba" / "training" / "bare.py").write_text("import models.predictor\n", "utf-8")
    done = lint_imports(tree)
    assert done.returncode == 1
    assert "naba.models.upwards -> naba.service.app" in done.stdout
    assert "naba.training.bare -> models (l.1)" in done.stdout
