"""HTTP routes, one module per resource; `api_router` gathers them for the app."""

from __future__ import annotations

from fastapi import APIRouter

from service.routes import analyze, health, metrics, model

api_router = APIRouter()
api_router.include_router(analyze.router)
api_router.include_router(model.router)
api_router.include_router(health.router)
api_router.include_router(metrics.router)
