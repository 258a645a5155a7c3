"""The `naba` console script end to end on the tiny model: predict (with resume and a bad line), help, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from naba.batch import BatchReport
from naba.cli import EXIT_INCOMPLETE, main
from naba.models.artifacts import read_config
from naba.models.preprocessing import split_sentences
from tests.conftest import NEGATIVES, seed_records, write_jsonl


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_predict_writes_one_result_per_good_line_and_resumes(model_dir: Path, tmp_path: Path) -> None:
    rows = [{"id": r["id"], "text": r["text"]} for r in seed_records()]
    rows += [{"id": f"neg-{i}", "text": t} for i, t in enumerate(NEGATIVES)]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    with data.open("a", encoding="utf-8") as handle:
        handle.write("{not json\n")
    out = tmp_path / "out.jsonl"
    args = ["predict", "--model", str(model_dir), "--input", str(data), "--output", str(out), "--no-progress"]
    assert main([*args, "--device", "cpu", "--summary-sentences", "2"]) == EXIT_INCOMPLETE  # the bad line

    results = _lines(out)
    assert [r["id"] for r in results] == [r["id"] for r in rows]
    assert all(len(r["summary_indices"]) == 2 for r in results)
    assert set(results[0]) == {"id", "labels", "scores", "summary", "summary_indices", "model"}
    errors = _lines(tmp_path / "out.errors.jsonl")
    assert [e["line"] for e in errors] == [len(rows) + 1]

    # A run killed mid-write leaves a torn last line; the rerun repairs it and writes each id once.
    text = out.read_text("utf-8")
    out.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 20], "utf-8")
    assert main([*args, "--device", "cpu", "--summary-sentences", "2"]) == EXIT_INCOMPLETE
    again = [r["id"] for r in _lines(out)]
    assert sorted(again) == sorted(r["id"] for r in rows)


def test_predict_operating_point_and_summary_ratio(model_dir: Path, tmp_path: Path) -> None:
    rows = [{"id": r["id"], "text": r["text"]} for r in seed_records()]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = ["predict", "--model", str(model_dir), "--input", str(data), "--output", str(out), "--no-progress"]
    assert main([*args, "--device", "cpu", "--operating-point", "recall", "--summary-ratio", "0.2"]) == 0

    config = read_config(model_dir)
    recall = dict(zip(config.labels, config.operating_points["recall"], strict=True))
    for row, result in zip(rows, _lines(out), strict=True):
        tagged = {lbl for lbl, p in result["scores"].items() if p >= recall[lbl]}
        assert {label["label"] for label in result["labels"]} == tagged
        n = len(split_sentences(row["text"]))
        assert len(result["summary_indices"]) == max(1, math.ceil(0.2 * n))


def test_predict_passes_dtype_to_the_predictor(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from naba.models.predictor import Predictor

    loaded = []
    real = Predictor.from_dir.__func__  # type: ignore[attr-defined]

    def spy(cls: type[Predictor], *args: object, **kwargs: object) -> Predictor:
        loaded.append(real(cls, *args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(Predictor, "from_dir", classmethod(spy))
    rows = [{"id": r["id"], "text": r["text"]} for r in seed_records()[:2]]
    data = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = ["predict", "--model", str(model_dir), "--input", str(data), "--output", str(out), "--no-progress"]
    assert main([*args, "--device", "cpu", "--dtype", "bfloat16"]) == 0
    assert [str(p.dtype) for p in loaded] == ["torch.bfloat16"] and len(_lines(out)) == 2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (["--summary-sentences", "2", "--summary-ratio", "0.5"], "not allowed with argument"),
        (["--summary-ratio", "0"], "0 is not in (0, 1]"),
        (["--summary-ratio", "half"], "'half' is not a number"),
        (["--operating-point", "lenient"], "invalid choice: 'lenient'"),
        (["--summary-sentences", "0"], "0 is not a positive whole number"),
        (["--summary-sentences", "-1"], "-1 is not a positive whole number"),
        (["--batch-size", "0"], "0 is not a positive whole number"),
        (["--chunk-size", "0"], "0 is not a positive whole number"),
        (["--chunk-size", "x"], "'x' is not a whole number"),
    ],
)
def test_predict_refuses_bad_options(
    tmp_path: Path, bad: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": NEGATIVES[0]}])
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--input", str(data), "--output", str(tmp_path / "o.jsonl"), *bad])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if a test loads a model: its arguments must be refused first."""
    from naba.models.predictor import Predictor

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(Predictor, "from_dir", refuse)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("nowhere/out.jsonl", "does not exist"),
        ("adir", "adir is a directory"),
        ("out.jsonl.gz", "write plain JSONL"),
        ("in.jsonl", "must be four different files"),
    ],
)
def test_predict_refuses_bad_paths_before_loading_the_model(
    tmp_path: Path, output: str, message: str, capsys: pytest.CaptureFixture, no_model_load: None
) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": NEGATIVES[0]}])
    (tmp_path / "adir").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--input", str(data), "--output", str(tmp_path / output), "--no-progress"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "in.jsonl"]


def test_predict_refuses_a_missing_input_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture, no_model_load: None
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--input", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o.jsonl")])
    assert exit_.value.code == 2
    assert "none.jsonl: no such file" in capsys.readouterr().err


def test_predict_wires_errors_batch_size_and_max_chars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NABA_BATCH_SIZE is the default batch size, NABA_MAX_CHARS the length limit, --errors the errors file;
    the exit code says whether every line has its result."""
    import naba.batch
    import naba.cli.predict
    from naba.settings import get_settings

    class Loaded:
        backend, device, dtype = "torch", "cpu", "torch.float32"

    calls: list[dict] = []
    errors = [0, 2]

    def spy(predictor: object, input_path: Path, output_path: Path, **kwargs: object) -> BatchReport:
        calls.append(kwargs)
        return BatchReport(output_path, tmp_path / "e.jsonl", total_lines=2, written=2, errors=errors.pop(0))

    monkeypatch.setattr(naba.batch, "run_batch", spy)
    monkeypatch.setattr(naba.cli.predict, "load_predictor", lambda args: Loaded())
    monkeypatch.setenv("NABA_BATCH_SIZE", "7")
    monkeypatch.setenv("NABA_MAX_CHARS", "1234")
    get_settings.cache_clear()  # settings are read once per process; read them again, and after the test
    try:
        data = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": NEGATIVES[0]}])
        args = ["predict", "--input", str(data), "--output", str(tmp_path / "o.jsonl"), "--no-progress"]
        assert main([*args, "--errors", str(tmp_path / "bad.jsonl")]) == 0
        assert main([*args, "--batch-size", "3"]) == EXIT_INCOMPLETE
    finally:
        get_settings.cache_clear()
    assert calls[0]["errors_path"] == tmp_path / "bad.jsonl"
    assert (calls[0]["batch_size"], calls[0]["max_chars"]) == (7, 1234)
    assert (calls[1]["errors_path"], calls[1]["batch_size"]) == (None, 3)


def test_predict_puts_lone_surrogates_in_the_errors_file(model_dir: Path, tmp_path: Path) -> None:
    """One `\\ud83d` escape in a title crashed the tokenizer, and in an id the output writer, at every rerun."""
    good = [{"id": f"neg-{i}", "text": t} for i, t in enumerate(NEGATIVES[:2])]
    bad = [
        json.dumps({"id": "t", "title": "عنوان X", "text": NEGATIVES[2]}, ensure_ascii=False),
        json.dumps({"id": "iX", "text": NEGATIVES[3]}, ensure_ascii=False),
        json.dumps({"id": "x", "text": NEGATIVES[4] + "X"}, ensure_ascii=False),
    ]
    data = tmp_path / "in.jsonl"
    data.write_text(
        "\n".join(
            [json.dumps(good[0], ensure_ascii=False), *bad, json.dumps(good[1], ensure_ascii=False)]
        ).replace("X", "\\ud83d")
        + "\n",
        "utf-8",
    )
    out = tmp_path / "out.jsonl"
    args = ["predict", "--model", str(model_dir), "--input", str(data), "--output", str(out), "--no-progress"]
    for _ in range(2):  # a rerun too
        assert main([*args, "--device", "cpu"]) == EXIT_INCOMPLETE
        assert [r["id"] for r in _lines(out)] == ["neg-0", "neg-1"]
        errors = _lines(tmp_path / "out.errors.jsonl")
        assert [(e["line"], e["id"]) for e in errors] == [(2, "t"), (3, "i\\ud83d"), (4, "x")]


def test_predict_refuses_to_resume_with_other_settings(model_dir: Path, tmp_path: Path, caplog) -> None:
    data = write_jsonl(
        tmp_path / "in.jsonl", [{"id": f"n{i}", "text": t} for i, t in enumerate(NEGATIVES[:2])]
    )
    out = tmp_path / "out.jsonl"
    args = ["predict", "--model", str(model_dir), "--input", str(data), "--output", str(out), "--no-progress"]
    assert main([*args, "--device", "cpu"]) == 0
    manifest = json.loads((tmp_path / "out.run.json").read_text("utf-8"))
    assert manifest["settings"]["model"]["name"] == read_config(model_dir).name
    assert len(manifest["settings"]["model"]["weights_sha256"]) == 64
    before = out.read_bytes()

    with pytest.raises(SystemExit) as exit_:
        main([*args, "--device", "cpu", "--operating-point", "recall"])
    assert exit_.value.code == 2
    assert out.read_bytes() == before
    assert main([*args, "--device", "cpu"]) == 0  # the same settings resume (nothing left to do)
    assert out.read_bytes() == before


def test_csv_input(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text(
        "id,title,text\n" + "".join(f'c{i},عنوان,"{t}"\n' for i, t in enumerate(NEGATIVES)), "utf-8"
    )
    out = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "predict",
                "--model",
                str(model_dir),
                "--input",
                str(data),
                "--output",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert [r["id"] for r in _lines(out)] == [f"c{i}" for i in range(len(NEGATIVES))]


def test_a_missing_model_is_a_clear_error(tmp_path: Path, caplog) -> None:
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": NEGATIVES[0]}])
    code = main(
        ["predict", "--model", str(tmp_path / "none"), "--input", str(data), "--output", str(tmp_path / "o")]
    )
    assert code == 1
    assert "does not exist" in caplog.text


def test_help_and_unknown_commands(capsys) -> None:
    assert main(["--help"]) == 0
    assert main(["frobnicate"]) == 2
    assert "naba train" in capsys.readouterr().err


def test_build_encoder_makes_a_loadable_base_model(tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    data = write_jsonl(
        tmp_path / "corpus.jsonl", [{"id": r["id"], "text": r["text"]} for r in seed_records()]
    )
    out = tmp_path / "enc"
    args = ["build-encoder", "--corpus", str(data), "--output", str(out), "--vocab-size", "300"]
    assert (
        main([*args, "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--max-length", "64"])
        == 0
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == 300
    assert AutoModel.from_pretrained(out).config.hidden_size == 32


def test_serve_passes_its_settings_to_uvicorn(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[tuple[object, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    monkeypatch.setenv("NABA_KEEP_ALIVE_S", "30")
    main(["serve", "--model", str(model_dir), "--host", "0.0.0.0", "--port", "9001"])
    ((app, kwargs),) = calls
    assert kwargs == {"host": "0.0.0.0", "port": 9001, "log_level": "info", "timeout_keep_alive": 30}
    assert app.state.settings.model_dir == model_dir


def test_serve_refuses_an_invalid_port(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: pytest.fail(f"served with {kwargs}"))
    with pytest.raises(SystemExit) as caught:
        main(["serve", "--model", str(model_dir), "--port", "0"])
    assert caught.value.code == 2 and "port" in capsys.readouterr().err
