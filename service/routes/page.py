"""The analysts' page: `GET /` and its static files (`/static`), plain HTML, CSS and JS served offline.

The page is open like the docs: it holds no data, and asks for an API key itself when the service has keys
(the key then goes only into the Authorization header of its API calls).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(str(files("naba.service") / "static"))  # package data, in the wheel too

router = APIRouter(tags=["page"])


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The page itself; everything it needs comes from `/static` and the API."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def static_files() -> StaticFiles:
    """The page's scripts, styles and fonts, mounted at `/static`."""
    return StaticFiles(directory=STATIC_DIR)
