"""Runtime settings: one pydantic-settings object, read from `NABA_*` environment variables.

The service, `naba predict` and `naba serve` all read this class; nothing else reads `os.environ`. Training
hyperparameters are not here: they are command-line arguments of `naba train`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A list of keys from the environment: `NoDecode` stops pydantic-settings from insisting on JSON, so the
# validator below accepts a plain comma-separated string as well as a JSON list.
KeyList = Annotated[list[SecretStr], NoDecode]
# The model shipped with Naba (models/default, package data; see its README.md): what the service serves
# unless told otherwise. A path in the source tree under an editable install, in site-packages otherwise.
DEFAULT_MODEL_DIR = Path(str(files("naba.models") / "default"))


class Settings(BaseSettings):
    """Everything an operator can set without touching code."""

    model_config = SettingsConfigDict(env_prefix="NABA_", env_ignore_empty=True, extra="ignore")

    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="Model artifact directory to serve.")
    watch_model_s: float | None = Field(
        None,
        gt=0,
        description="Every this many seconds, check where model_dir points and reload when it moved (a model "
        "registry's `current` pointer); unset, only POST /v1/admin/reload reloads.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the model runs.")
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="What runs the encoder: torch, onnx (CPU; needs `naba export`), or auto: the artifact's "
        "ONNX export on CPU when it has one (int8 first), torch otherwise.",
    )
    quantize: Literal["int8"] | None = Field(None, description="int8: the int8 ONNX encoder (backend onnx).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Precision of the torch backend: auto (bf16/fp16 on a GPU, fp32 on CPU), or named; "
        "bfloat16 on a CPU with bf16 instructions runs torch 2-3x faster than fp32.",
    )
    data_dir: Path = Field(
        Path("../shared/data"), description="Shared data for starter models and benchmarks."
    )
    max_chars: int = Field(
        100_000,
        gt=0,
        description="Longest article text accepted, in characters (longer: 413, or cut on request).",
    )
    max_body_bytes: int = Field(
        16 * 2**20,
        gt=0,
        description="Largest request body, in bytes; a larger one gets 413 before it is read.",
    )
    max_batch_articles: int = Field(
        64,
        gt=0,
        description="Most articles in one batch request; at most max_queue (unset, it defaults to max_queue "
        "when that is below 64).",
    )
    summary_sentences: int = Field(3, gt=0, description="Default number of sentences in a summary.")
    max_summary_sentences: int = Field(
        20, gt=0, description="Largest summary_sentences a request may ask; also caps summary_ratio."
    )
    batch_size: int = Field(16, gt=0, description="Articles per forward pass in batch prediction.")
    torch_threads: int | None = Field(None, gt=0, description="Torch intra-op threads (default: torch's).")
    max_concurrent_requests: int = Field(
        128,
        gt=0,
        description="Analysis requests in the service at once; more get 503 before their body is read.",
    )
    max_queue: int = Field(256, gt=0, description="Articles in progress beyond which requests get 503.")
    max_batch_tokens: int = Field(16_384, gt=0, description="Window tokens per model batch in the service.")
    max_wait_ms: float = Field(5.0, ge=0, description="How long a request waits for others to batch with.")
    request_timeout_s: float = Field(60.0, gt=0, description="Longest a request may take before 504.")
    keep_alive_s: int = Field(
        75,
        gt=0,
        description="Idle keep-alive connections are kept this long; longer than clients' pool expiry (httpx 5 s) "
        "so the server never closes a connection a client is about to reuse (uvicorn's 5 s default equals "
        "httpx's and races, giving clients ReadError).",
    )
    database_url: str = Field(
        "sqlite:///naba-corrections.sqlite3",
        description="SQLAlchemy URL of Naba's database, which holds the analysts' corrections (POST /v1/feedback): "
        "SQLite by default, a file in the working directory; postgresql+psycopg://... for a shared one.",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_keys: KeyList = Field(
        default_factory=list,
        description="Bearer keys for the inference endpoints, comma-separated; empty leaves them open.",
    )
    admin_keys: KeyList = Field(
        default_factory=list,
        description="Bearer keys for /v1/admin (they also open inference); empty disables admin endpoints.",
    )

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """Read `a,b` or `["a", "b"]` from the environment.

        Surrounding spaces are stripped and blanks dropped, so `a, b,` is two keys, not three with one empty
        key that a bare `Authorization: Bearer ` would match.
        """
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list | tuple):
            value = [item.strip() if isinstance(item, str) else item for item in value]
            return [item for item in value if item != ""]
        return value

    @model_validator(mode="after")
    def _batch_fits_the_queue(self) -> Self:
        """Refuse a batch limit above the queue: a batch that large could never be admitted, and would get 503
        with Retry-After forever, even from an idle server.

        Left unset, the batch limit follows a queue set below its default, so that lowering NABA_MAX_QUEUE
        alone does not stop the service from starting.
        """
        if self.max_batch_articles > self.max_queue:
            if "max_batch_articles" in self.model_fields_set:
                raise ValueError(
                    f"max_batch_articles ({self.max_batch_articles}) is more than max_queue ({self.max_queue}): "
                    "such a batch could never be admitted; set NABA_MAX_BATCH_ARTICLES to at most NABA_MAX_QUEUE"
                )
            self.max_batch_articles = self.max_queue
        return self


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once; tests override them through FastAPI's dependency overrides."""
    return Settings()
