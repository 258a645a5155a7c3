"""`naba serve` (a model over HTTP, `naba.service`) and `naba export` (its encoder to ONNX, for the CPU fast
path the service's default backend takes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from naba.cli.command import Command, NabaArgumentParser, UsageError


@dataclass
class ServeArguments:
    """What to serve, and where; each left out comes from the settings (NABA_*)."""

    model: Path | None = field(
        default=None, metadata={"help": "Artifact directory (default: NABA_MODEL_DIR)."}
    )
    host: str | None = None
    port: int | None = None


def run_serve(args: ServeArguments) -> None:
    import uvicorn
    from pydantic import ValidationError

    from naba.service.app import create_app
    from naba.settings import Settings

    overrides: dict[str, Any] = {
        k: v
        for k, v in {"model_dir": args.model, "host": args.host, "port": args.port}.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise UsageError(str(exc)) from exc
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_s,
    )


SERVE = Command("serve", (ServeArguments,), run_serve, description="Serve a model over HTTP.")


@dataclass
class ExportArguments:
    """Which artifact to export, and whether to quantize it; both default to the settings (NABA_*)."""

    model: Path = field(metadata={"help": "Naba artifact; the export goes to <model>/onnx."})
    quantize: Literal["int8"] | None = field(default=None, metadata={"help": "Also write an int8 encoder."})


def export_defaults(parser: NabaArgumentParser) -> None:
    from naba.settings import get_settings

    settings = get_settings()
    parser.set_option("model", required=False)
    parser.set_defaults(model=settings.model_dir, quantize=settings.quantize)


def run_export(args: ExportArguments) -> None:
    from naba.models.onnx_backend import export_onnx

    export_onnx(args.model, quantize=args.quantize == "int8")


EXPORT = Command(
    "export",
    (ExportArguments,),
    run_export,
    description="Export a model's encoder to ONNX for the CPU fast path.",
    configure=export_defaults,
)
