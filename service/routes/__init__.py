"""HTTP routes, one module per resource; `api_router` gathers them for the app.

Access is decided here, where the guarded and the open routers sit side by side: inference needs an API key
once `NABA_API_KEYS` is set, the admin router guards itself with an admin key, and probes, metrics and docs
stay open for orchestrators and scrapers, and the page (`GET /`) for browsers: it asks for a key itself.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from naba.service.auth import require_api_key
from naba.service.errors import error_responses
from naba.service.routes import admin, analyze, feedback, health, metrics, model, page

API_KEY = [Depends(require_api_key)]

api_router = APIRouter()
api_router.include_router(analyze.router, dependencies=API_KEY, responses=error_responses(401))
api_router.include_router(model.router, dependencies=API_KEY, responses=error_responses(401))
api_router.include_router(feedback.router, dependencies=API_KEY, responses=error_responses(401))
api_router.include_router(admin.router)
api_router.include_router(health.router)
api_router.include_router(metrics.router)
api_router.include_router(page.router)
