"""Runtime settings: one pydantic-settings object, read from `NABA_*` environment variables.

The service, `naba predict` and `naba serve` all read this class; nothing else reads `os.environ`. Training
hyperparameters are not here: they are command-line arguments of `naba train`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can set without touching code."""

    model_config = SettingsConfigDict(env_prefix="NABA_", env_ignore_empty=True, extra="ignore")

    model_dir: Path = Field(Path("artifacts/starter"), description="Model artifact directory to serve.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the model runs.")
    data_dir: Path = Field(
        Path("../shared/data"), description="Shared data for starter models and benchmarks."
    )
    max_chars: int = Field(100_000, gt=0, description="Longest article text accepted, in characters.")
    max_batch_articles: int = Field(64, gt=0, description="Most articles in one batch request.")
    summary_sentences: int = Field(3, gt=0, description="Default number of sentences in a summary.")
    max_summary_sentences: int = Field(20, gt=0, description="Largest summary_sentences a request may ask.")
    batch_size: int = Field(16, gt=0, description="Articles per forward pass in batch prediction.")
    torch_threads: int | None = Field(None, gt=0, description="Torch intra-op threads (default: torch's).")
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; tests override them through FastAPI's dependency overrides."""
    return Settings()
