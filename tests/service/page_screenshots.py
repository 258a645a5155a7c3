"""Screenshots of the page with the shipped model on a seed article, at desktop and phone width.

    python -m tests.service.page_screenshots docs/    # writes page-desktop.jpg and page-phone.jpg

The README shows the desktop one; rerun this when the page changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from naba.models.predictor import Predictor
from naba.service.app import create_app
from naba.settings import DEFAULT_MODEL_DIR, Settings
from tests.conftest import seed_records
from tests.service.live_server import live_server
from tests.service.test_page_browser import CHROMIUM, CHROMIUM_ARGS

SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


def take(out_dir: Path, seed: int = 0) -> list[Path]:
    article = seed_records()[seed]
    predictor = Predictor.from_dir(DEFAULT_MODEL_DIR, device="cpu")
    written = []
    settings = Settings(database_url=f"sqlite:///{out_dir / '.screenshots.sqlite3'}")
    with live_server(create_app(settings, predictor=predictor)) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for name, (width, height) in SIZES.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_function("document.getElementById('model-name').textContent.length > 0")
            page.fill("#title", article.get("title") or "")
            page.fill("#text", article["text"])
            page.click("#analyze")
            page.wait_for_selector("#result:not([hidden])")
            path = out_dir / f"page-{name}.jpg"
            page.screenshot(path=str(path), full_page=True, quality=80)
            written.append(path)
            page.close()
        browser.close()
    (out_dir / ".screenshots.sqlite3").unlink(missing_ok=True)
    return written


if __name__ == "__main__":
    for path in take(Path(sys.argv[1])):
        print(path)  # noqa: T201
