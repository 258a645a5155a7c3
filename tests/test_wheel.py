"""The wheel is the product: built from this tree and installed into a clean virtualenv outside it, with no
dev extras, it serves the shipped model and predicts with it, and claims no top-level name but `naba`.

Slow (a minute or two: a venv and the runtime dependencies from the lock file), so `make test-wheel` and CI
run it; `make test` does not.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.service.live_server import wait_until_ready

pytestmark = pytest.mark.slow
LOCK = REPO / "requirements.lock"


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, REPO, cwd=out)
    (built,) = out.glob("naba-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv (no system site-packages) with the wheel and its runtime dependencies, pinned by the lock
    file: the constraints choose versions, they add no package the wheel does not ask for."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    run(sys.executable, "-m", "venv", venv, cwd=venv.parent)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "-c", LOCK, wheel, cwd=venv.parent)
    return venv


def clean_env(home: Path) -> dict[str, str]:
    """No PYTHONPATH, no NABA_* from the caller: what a user's shell would have."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NABA_") and k != "PYTHONPATH"}
    return {**env, "HF_HUB_OFFLINE": "1", "HOME": str(home)}


def test_the_wheel_holds_one_top_level_package_with_its_model_and_seeds(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if not n.startswith("naba-")} == {"naba"}
    assert {"naba/models/default/model.safetensors", "naba/models/default/naba_config.json",
            "naba/seeds/seeds.jsonl", "naba/service/routes/analyze.py", "naba/service/static/index.html",
            "naba/service/static/app.js", "naba/service/static/fonts/OFL.txt"} <= set(names)  # fmt: skip


def test_installed_naba_predicts_and_serves_the_shipped_model(installed: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    python, naba = installed / "bin" / "python", installed / "bin" / "naba"
    where = run(
        python, "-c", "import naba.models, sklearn; print(naba.models.__file__)", cwd=tmp_path, env=env
    )
    assert Path(where.strip()).is_relative_to(installed)  # the venv's copy, not this source tree
    dev_only = run(
        python, "-c", "import importlib.util as u; print(u.find_spec('pytest'))", cwd=tmp_path, env=env
    )
    assert dev_only.strip() == "None"

    articles = tmp_path / "articles.jsonl"
    rows = [json.loads(line) for line in (REPO / "seeds" / "seeds.jsonl").read_text("utf-8").splitlines()]
    articles.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows), "utf-8")
    run(naba, "predict", "--input", articles, "--output", tmp_path / "out.jsonl", "--no-progress", cwd=tmp_path,
        env=env)  # fmt: skip
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert [r["id"] for r in results] == [r["id"] for r in rows]
    assert all(r["summary"] for r in results) and any(r["labels"] for r in results)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [naba, "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, lambda: server.poll() is None, timeout_s=120)
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
            model = client.get("/v1/model").json()
            answer = client.post("/v1/analyze", json={"text": rows[0]["text"]})
            page = client.get("/")
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert answer.status_code == 200, output
    assert page.status_code == 200 and 'dir="rtl"' in page.text
    assert (
        answer.json()["summary"]
        and model["name"]
        == json.loads((REPO / "models" / "default" / "naba_config.json").read_text("utf-8"))["name"]
    )
