"""The predictor: one call from articles to tags, evidence and summary, the same alone or in a batch."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from naba.models.artifacts import NabaConfig
from naba.models.errors import EmptyInputError, InvalidInputError, NabaError
from naba.models.predictor import (
    WINDOWS_PER_PASS,
    Predictor,
    Scores,
    cpu_has_native_bf16,
    inference_dtype,
    resolve_device,
)
from naba.models.preprocessing import split_sentences
from naba.models.results import OPERATING_POINTS, Article, ResultOptions
from tests.conftest import NEGATIVES, seed_records

SEEDS = [Article(r["text"], id=r["id"]) for r in seed_records()]
LONG = Article(
    " ".join(f"الجملة رقم {i} عن العمليات المشتركة في المحافظة." for i in range(80)), title="عنوان"
)


def test_analysis_has_every_label_score_and_only_labels_over_threshold(predictor: Predictor) -> None:
    for analysis in predictor.analyze(SEEDS):
        assert set(analysis.scores) == set(predictor.labels)
        assert all(0.0 <= s <= 1.0 for s in analysis.scores.values())
        expected = {lbl for lbl, s in analysis.scores.items() if s >= predictor.thresholds[lbl]}
        assert {r.label for r in analysis.labels} == expected
        assert [r.score for r in analysis.labels] == sorted((r.score for r in analysis.labels), reverse=True)


def test_evidence_and_summary_quote_the_article(predictor: Predictor) -> None:
    for article, analysis in zip(SEEDS, predictor.analyze(SEEDS), strict=True):
        sentences = split_sentences(article.text)
        assert analysis.sentences == sentences
        for result in analysis.labels:
            assert 1 <= len(result.evidence) <= predictor.config.evidence_sentences
            assert all(e in sentences for e in result.evidence)
        assert analysis.summary_indices == sorted(analysis.summary_indices)
        assert analysis.summary == " ".join(sentences[i] for i in analysis.summary_indices)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_summary_length_follows_the_request(predictor: Predictor, n: int) -> None:
    analysis = predictor.analyze([SEEDS[1]], ResultOptions(summary_sentences=n))[0]
    assert len(analysis.summary_indices) == n


@pytest.mark.parametrize(
    ("lead_fill", "budget", "expected"),
    [
        (True, 1200, [0, 1, 4]),  # the head's best (4), then the lead in order
        (False, 1200, [2, 3, 4]),  # the head's three best
        (True, 25, [0, 3, 4]),  # sentences 1 and 2 would pass the budget: skipped for the next lead sentence
        (True, 5, [4]),  # the best sentence is kept even alone over the budget
    ],
)
def test_summary_keeps_the_heads_best_sentence_and_fills_with_the_lead(
    predictor: Predictor, lead_fill: bool, budget: int, expected: list[int]
) -> None:
    sentences = ["أول.", "الجملة الثانية طويلة.", "الجملة الثالثة أطول من سابقتها.", "رابعة.", "خامسة."]
    logits = np.array([-3.0, -2.0, 1.0, 2.0, 3.0])
    config = NabaConfig.from_dict({**predictor.config.to_dict(), "summary_lead_fill": lead_fill})
    config.summary_max_chars = budget
    chosen = Predictor(predictor.model, predictor.tokenizer, config, predictor.device)._summary(
        sentences, logits, 3
    )
    assert chosen == expected
    assert sum(len(sentences[i]) + 1 for i in chosen) <= max(budget, len(sentences[4]) + 1)


def test_summary_respects_the_length_budget(predictor: Predictor) -> None:
    analysis = predictor.analyze([SEEDS[1]], ResultOptions(summary_sentences=50))[0]
    assert len(analysis.summary) <= predictor.config.summary_max_chars
    assert len(analysis.summary_indices) >= 1


def test_title_is_never_quoted(predictor: Predictor) -> None:
    title = "عنوان خاص لا يظهر في النص"
    analysis = predictor.analyze([Article(NEGATIVES[0], title=title)], ResultOptions(summary_sentences=5))[0]
    assert title not in analysis.summary
    assert all(title not in e for r in analysis.labels for e in r.evidence)


def test_every_sentence_of_a_long_article_is_scored(predictor: Predictor) -> None:
    encoded = predictor.encode(LONG)
    assert len(encoded.windows) > 3
    scores = predictor.score([encoded])[0]
    assert scores.summary_logits.shape == (80,)
    assert scores.sentence_logits.shape == (80, len(predictor.labels))
    assert np.isfinite(scores.summary_logits).all()


def test_batched_results_equal_single_results(predictor: Predictor) -> None:
    articles = [*SEEDS, LONG, Article(NEGATIVES[1])]
    batched = predictor.analyze(articles)
    small = Predictor(
        predictor.model, predictor.tokenizer, predictor.config, predictor.device, max_windows_per_pass=1
    )
    for article, together in zip(articles, batched, strict=True):
        alone = small.analyze([article])[0]
        assert alone.summary_indices == together.summary_indices
        assert [r.label for r in alone.labels] == [r.label for r in together.labels]
        for label in predictor.labels:
            assert alone.scores[label] == pytest.approx(together.scores[label], abs=1e-5)


def test_empty_batch_gives_empty_result(predictor: Predictor) -> None:
    assert predictor.analyze([]) == []


def test_a_text_of_whitespace_only_is_an_empty_input_error(predictor: Predictor) -> None:
    with pytest.raises(EmptyInputError, match="text is empty"):
        predictor.analyze([Article("\n \t\n")])


def test_info_describes_the_model(predictor: Predictor) -> None:
    info = predictor.info
    assert info["labels"] == predictor.labels
    assert info["version"] == "test-1"
    assert set(info["thresholds"]) == set(predictor.labels)
    assert info["max_length"] == 64


def _with_config(predictor: Predictor, **changes: object) -> Predictor:
    """A predictor over the same model with a copy of its config, changed; the session predictor is shared."""
    config = NabaConfig.from_dict(predictor.config.to_dict())
    for name, value in changes.items():
        setattr(config, name, value)
    return Predictor(predictor.model, predictor.tokenizer, config, predictor.device)


def test_calibration_is_applied_to_the_article_logits(predictor: Predictor) -> None:
    identity = _with_config(predictor, calibration={})
    calibrated = _with_config(
        predictor, calibration={lbl: {"scale": 2.0, "bias": -1.0} for lbl in predictor.labels}
    )
    [raw] = identity.score([identity.encode(SEEDS[0])])
    plain = identity.analyze([SEEDS[0]])[0].scores
    scaled = calibrated.analyze([SEEDS[0]])[0].scores
    for k, label in enumerate(predictor.labels):
        assert plain[label] == pytest.approx(1 / (1 + np.exp(-raw.label_logits[k])), abs=1e-6)
        assert scaled[label] == pytest.approx(1 / (1 + np.exp(-(2 * raw.label_logits[k] - 1))), abs=1e-6)
        assert scaled[label] != pytest.approx(plain[label], abs=1e-4)


def test_operating_point_picks_the_thresholds_for_tags_and_evidence(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = len(predictor.labels)
    tuned = _with_config(
        predictor, thresholds=[0.0] * k, operating_points={"precision": [1.01] * k, "recall": [0.3] * k}
    )
    seen: list[float | None] = []
    evidence_indices = tuned.evidence_indices

    def spy(sentences, scores, label_index, threshold=None):  # type: ignore[no-untyped-def]
        seen.append(threshold)
        return evidence_indices(sentences, scores, label_index, threshold)

    monkeypatch.setattr(tuned, "evidence_indices", spy)
    balanced = tuned.analyze([SEEDS[0]])[0]
    assert {r.label for r in balanced.labels} == set(predictor.labels) and seen == [0.0] * k
    assert tuned.analyze([SEEDS[0]], ResultOptions(operating_point="precision"))[0].labels == []
    seen.clear()
    recall = tuned.analyze([SEEDS[0]], ResultOptions(operating_point="recall"))[0]
    assert {r.label for r in recall.labels} == {lbl for lbl, p in recall.scores.items() if p >= 0.3}
    assert seen == [0.3] * len(recall.labels)
    with pytest.raises(InvalidInputError, match="operating_point"):
        tuned.analyze([SEEDS[0]], ResultOptions(operating_point="lenient"))  # type: ignore[arg-type]


def _scores(sentence_logits: np.ndarray) -> Scores:
    n, k = sentence_logits.shape
    return Scores(np.full(k, 0.9), sentence_logits, np.zeros(n), np.zeros(k))


def test_evidence_ranks_sentences_the_guides_rules_point_at_first(predictor: Predictor) -> None:
    """The sentence with most of the label's rules firing comes first, even where the head scores it
    lowest; then the head's order. A sentence no rule fires in is kept only over the threshold."""
    if "attack" not in predictor.labels:
        pytest.skip("the test model has no attack label")
    k = predictor.labels.index("attack")
    sentences = [
        "وأكد الجانبان أهمية التنسيق بين البلدين.",
        "وشن مسلحون هجوما على حاجز للجيش.",
        "وقال المتحدث إن الوضع هادئ.",
    ]
    logits = np.zeros((len(sentences), len(predictor.labels)), dtype=np.float32)
    logits[:, k] = [3.0, -3.0, 1.0]
    ruled = _with_config(predictor, evidence_rules=True, evidence_sentences=3)
    head = _with_config(predictor, evidence_rules=False, evidence_sentences=3)
    assert head.evidence_indices(sentences, _scores(logits), k, threshold=0.5) == [0, 2]
    assert ruled.evidence_indices(sentences, _scores(logits), k, threshold=0.5) == [1, 0, 2]
    assert ruled.evidence_indices(sentences, _scores(logits), k, threshold=0.99) == [1]
    assert head.evidence_indices(sentences, _scores(logits), k, threshold=0.99) == [0]  # the best, always
    assert _with_config(ruled, evidence_sentences=1).evidence_indices(sentences, _scores(logits), k) == [1]
    assert ruled.evidence_indices([], _scores(np.zeros((0, len(predictor.labels)))), k) == []


def test_artifact_without_operating_points_falls_back_to_balanced(
    predictor: Predictor, caplog: pytest.LogCaptureFixture
) -> None:
    old = _with_config(predictor, operating_points={})
    assert "fall back to the balanced thresholds" in caplog.text
    for point in OPERATING_POINTS:
        assert old.thresholds_for(point) == old.config.thresholds
    assert old.info["operating_points"]["recall"] == old.thresholds


def test_info_lists_every_operating_point(predictor: Predictor) -> None:
    points = predictor.info["operating_points"]
    assert set(points) == set(OPERATING_POINTS)
    assert points["balanced"] == predictor.thresholds
    assert list(points["precision"].values()) == predictor.config.operating_points["precision"]


@pytest.mark.parametrize(
    ("n_sentences", "options", "expected"),
    [
        (10, {}, 3),
        (10, {"summary_sentences": 5}, 5),
        (10, {"summary_ratio": 0.3}, 3),  # not 4: 0.3 * 10 is 3.0000000000000004 in floats
        (7, {"summary_ratio": 0.5}, 4),
        (3, {"summary_ratio": 0.01}, 1),
        (80, {"summary_ratio": 1.0, "max_summary_sentences": 20}, 20),
        (80, {"summary_ratio": 0.05, "max_summary_sentences": 20}, 4),
    ],
)
def test_summary_length_rule(n_sentences: int, options: dict, expected: int) -> None:
    assert ResultOptions(**options).summary_length(n_sentences, 3) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"summary_sentences": 2, "summary_ratio": 0.5}, "not both"),
        ({"summary_ratio": 0.0}, "(0, 1]"),
        ({"summary_ratio": 1.5}, "(0, 1]"),
        ({"operating_point": "lenient"}, "unknown operating_point"),
    ],
)
def test_summary_length_refuses_bad_options(options: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        ResultOptions(**options)


def test_summary_ratio_follows_the_article_length(predictor: Predictor) -> None:
    [four, capped] = [
        predictor.analyze([LONG], ResultOptions(summary_ratio=0.05))[0],
        predictor.analyze([LONG], ResultOptions(summary_ratio=0.5, max_summary_sentences=3))[0],
    ]
    assert len(four.summary_indices) == 4  # ceil(0.05 * 80)
    assert len(capped.summary_indices) == 3
    with pytest.raises(InvalidInputError, match="not both"):
        predictor.analyze([LONG], ResultOptions(summary_sentences=2, summary_ratio=0.5))


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda"}


def test_inference_precision_and_pass_size_follow_the_device(predictor: Predictor) -> None:
    assert inference_dtype(torch.device("cpu")) == torch.float32
    assert predictor.dtype == torch.float32 and predictor.info["dtype"] == "float32"
    assert predictor.max_windows_per_pass == WINDOWS_PER_PASS["cpu"]


def test_a_named_dtype_wins_and_auto_keeps_fp32_on_every_cpu() -> None:
    cpu = torch.device("cpu")
    assert inference_dtype(cpu, "bfloat16") == torch.bfloat16
    assert inference_dtype(cpu, "float16") == torch.float16
    assert inference_dtype(cpu, "float32") == inference_dtype(cpu, "auto") == torch.float32
    assert isinstance(cpu_has_native_bf16(), bool)


def test_bfloat16_on_cpu_runs_torch_in_bf16_and_agrees_with_fp32(model_dir, predictor: Predictor) -> None:
    half = Predictor.from_dir(model_dir, device="cpu", dtype="bfloat16")
    assert half.backend == "torch" and half.dtype == torch.bfloat16 and half.info["dtype"] == "bfloat16"
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert predictor.dtype == torch.float32  # the fp32 predictor's model was loaded apart, and left as it was
    assert next(predictor.model.parameters()).dtype == torch.float32
    # Scores only: the tiny test model's summary logits have near ties that bf16 rounding may reorder.
    for full_result, half_result in zip(predictor.analyze(SEEDS), half.analyze(SEEDS), strict=True):
        for label in predictor.labels:
            assert half_result.scores[label] == pytest.approx(full_result.scores[label], abs=0.06)


def test_half_precision_is_torch_only_and_dtypes_are_checked(model_dir) -> None:
    with pytest.raises(NabaError, match="for the torch backend"):
        Predictor.from_dir(model_dir, device="cpu", backend="onnx", dtype="bfloat16")
    with pytest.raises(NabaError, match="unknown dtype 'int4'"):
        Predictor.from_dir(model_dir, device="cpu", dtype="int4")  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_predictor_runs_in_half_precision_and_agrees_with_cpu(model_dir, predictor: Predictor) -> None:
    gpu = Predictor.from_dir(model_dir, device="cuda")
    assert gpu.dtype in (torch.bfloat16, torch.float16)
    for cpu_result, gpu_result in zip(predictor.analyze(SEEDS), gpu.analyze(SEEDS), strict=True):
        for label in predictor.labels:
            assert gpu_result.scores[label] == pytest.approx(cpu_result.scores[label], abs=0.02)
