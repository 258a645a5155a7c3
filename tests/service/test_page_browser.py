"""The analysts' page in a real browser: Playwright drives Debian's Chromium (headless) against a live server.

Skipped, with the reason, where Chromium or Playwright is missing; `.ci/run` and `make test` install Chromium
so that CI runs them. The fake predictor makes tags predictable (keyword labels score 0.9, the precision point
tags nothing); one test analyses with the tiny trained model through the same page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from naba.corrections import CorrectionStore
from naba.models.predictor import Predictor
from naba.service.app import create_app
from naba.settings import Settings
from tests.conftest import seed_records
from tests.service.fakes import ECONOMY_TEXT, FakePredictor
from tests.service.live_server import live_server

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")

# What Chromium needs to run headless as root on a machine with no network (see the env notes).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page_settings(tmp_path: Path) -> Settings:
    return Settings(
        model_dir=tmp_path / "no-model",
        max_batch_articles=2,
        database_url=f"sqlite:///{tmp_path / 'corrections.sqlite3'}",
    )


@pytest.fixture
def page(browser: sync_api.Browser, page_settings: Settings) -> Iterator[sync_api.Page]:
    """The page over a live server with the fake predictor."""
    with live_server(create_app(page_settings, predictor=FakePredictor())) as url:
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_function("document.getElementById('model-name').textContent.length > 0")
        yield page
        context.close()


def analyse(page: sync_api.Page, text: str) -> None:
    page.fill("#text", text)
    page.click("#analyze")
    page.wait_for_selector("#result:not([hidden])")


def tagged(page: sync_api.Page) -> list[str]:
    return page.eval_on_selector_all("#label-bars li.tagged", "els => els.map(e => e.dataset.label)")


def test_analyse_shows_tags_evidence_and_summary(page: sync_api.Page) -> None:
    assert page.evaluate("[document.documentElement.dir, document.documentElement.lang]") == ["rtl", "ar"]
    analyse(page, ECONOMY_TEXT)
    assert tagged(page) == ["economy"]
    evidence = page.eval_on_selector_all("#article .sentence.evidence", "els => els.map(e => e.textContent)")
    assert evidence and all(sentence in ECONOMY_TEXT for sentence in evidence)
    assert page.locator("#article .sentence.in-summary").count() >= 1
    assert page.text_content("#summary")
    page.hover("#label-bars li[data-label='politics']")  # a label without evidence: nothing highlighted
    assert page.locator("#article .sentence.evidence").count() == 0
    page.hover("#tab-single")
    assert page.locator("#article .sentence.evidence").count() == len(evidence)
    assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith('"Noto Naskh Arabic"')


def test_the_operating_point_changes_the_tags(page: sync_api.Page) -> None:
    analyse(page, ECONOMY_TEXT)
    page.select_option("#operating-point", "precision")
    page.wait_for_function("document.querySelectorAll('#label-bars li.tagged').length === 0")
    page.select_option("#operating-point", "recall")
    page.wait_for_function("document.querySelectorAll('#label-bars li.tagged').length === 3")


def test_a_422_shows_a_message_and_keeps_what_was_typed(page: sync_api.Page) -> None:
    page.fill("#title", "عنوان")
    analyse_text = "no Arabic letters at all"
    page.fill("#text", analyse_text)
    page.click("#analyze")
    page.wait_for_selector("#message:not([hidden])")
    assert "لا يمكن تحليل" in page.text_content("#message")
    assert page.input_value("#text") == analyse_text and page.input_value("#title") == "عنوان"
    page.click("#lang-toggle")
    page.click("#analyze")
    page.wait_for_function("document.getElementById('message').textContent.includes('cannot be analysed')")
    assert page.evaluate("document.documentElement.dir") == "ltr"


def test_a_file_with_a_bad_line_is_analysed_and_downloads(page: sync_api.Page, tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "text": ECONOMY_TEXT}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "b", "text": "no Arabic here"}),  # refused by the service: only it fails
        json.dumps({"text": "عقد البرلمان جلسة طارئة."}, ensure_ascii=False),
    ]
    upload = tmp_path / "articles.jsonl"
    upload.write_text("\n".join(lines) + "\n", "utf-8")
    page.click("#tab-batch")
    page.set_input_files("#batch-file", str(upload))
    page.click("#batch-run")
    page.wait_for_selector("#batch-results:not([hidden])")
    errors = page.eval_on_selector_all("#batch-error-list li", "els => els.map(e => e.textContent)")
    assert [e.split(":")[0] for e in errors] == ["السطر 2", "السطر 3"]
    assert page.locator("#batch-table tr").count() == 2
    page.select_option("#batch-filter", "politics")
    assert page.locator("#batch-table tr").count() == 1

    with page.expect_download() as download:
        page.click("#download-jsonl")
    rows = [json.loads(line) for line in Path(download.value.path()).read_text("utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "line-4"]
    assert [[lbl["label"] for lbl in r["labels"]] for r in rows] == [["economy"], ["politics"]]
    with page.expect_download() as download:
        page.click("#download-csv")
    csv_lines = Path(download.value.path()).read_text("utf-8").splitlines()
    assert csv_lines[0].startswith("id,labels,score_") and csv_lines[1].startswith("a,economy,")


def test_a_correction_is_sent_and_stored(page: sync_api.Page, page_settings: Settings) -> None:
    analyse(page, ECONOMY_TEXT)
    page.click("#correct summary")
    page.check("#correct-labels input[value='politics']")
    page.click("#correct-labels li:has(input[value='politics']) .pick")
    page.click("#article .sentence >> nth=1")
    page.fill("#correct-summary", "رفع البنك المركزي سعر الفائدة.")
    page.click("#send-correction")
    page.wait_for_function("document.getElementById('correction-status').textContent.length > 0")
    [stored] = CorrectionStore(page_settings.database_url).all()
    assert stored.labels == ("economy", "politics")
    assert stored.evidence == {"politics": "وقال المحافظ إن القرار يكبح التضخم."}
    assert stored.summary == "رفع البنك المركزي سعر الفائدة."


def test_with_keys_the_page_asks_for_one_and_refuses_a_wrong_one(
    browser: sync_api.Browser, page_settings: Settings
) -> None:
    settings = Settings(
        model_dir=page_settings.model_dir, database_url=page_settings.database_url, api_keys="right-key"
    )
    with live_server(create_app(settings, predictor=FakePredictor())) as url:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("#key-panel:not([hidden])")
        page.fill("#api-key", "wrong-key")
        page.click("#key-form button")
        page.wait_for_selector("#key-panel:not([hidden])")
        assert "المفتاح" in page.text_content("#message")
        page.fill("#api-key", "right-key")
        page.click("#key-form button")
        page.wait_for_function("document.getElementById('model-name').textContent.length > 0")
        analyse(page, ECONOMY_TEXT)
        assert tagged(page) == ["economy"]
        assert page.evaluate("sessionStorage.getItem('naba-key')") is None  # not kept without consent
        assert "right-key" not in page.url
        context.close()


def test_the_tiny_model_analyses_a_seed_article_through_the_page(
    browser: sync_api.Browser, model_dir: Path, page_settings: Settings
) -> None:
    predictor = Predictor.from_dir(model_dir, device="cpu")
    with live_server(create_app(page_settings, predictor=predictor)) as url:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_function("document.getElementById('model-name').textContent.length > 0")
        analyse(page, seed_records()[0]["text"])
        bars = page.eval_on_selector_all("#label-bars li", "els => els.map(e => e.dataset.label)")
        assert sorted(bars) == sorted(predictor.labels)
        assert page.locator("#article .sentence").count() > 1 and page.text_content("#summary")
        page.close()


def test_a_csv_file_with_quoted_cells_and_no_ids(page: sync_api.Page, tmp_path: Path) -> None:
    """Quoted cells may hold commas, quotes and newlines; a row without an id is named by its line, as
    `naba predict` names it."""
    upload = tmp_path / "articles.csv"
    upload.write_text(
        "id,title,text\n"
        ',عنوان,"أعلن البنك المركزي رفع سعر الفائدة، وقال ""المحافظ"" إن القرار يكبح التضخم.\nوتراجعت الأسهم."\n'
        "x2,,عقد البرلمان جلسة طارئة.\n",
        "utf-8",
    )
    page.click("#tab-batch")
    page.set_input_files("#batch-file", str(upload))
    page.click("#batch-run")
    page.wait_for_selector("#batch-results:not([hidden])")
    assert page.locator("#batch-error-list li").count() == 0
    with page.expect_download() as download:
        page.click("#download-jsonl")
    rows = [json.loads(line) for line in Path(download.value.path()).read_text("utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["line-2", "x2"]
    assert [[lbl["label"] for lbl in r["labels"]] for r in rows] == [["economy"], ["politics"]]
