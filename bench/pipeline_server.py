"""The baseline server of `bench/serve.py`: a Naba model's weights served "the usual way".

A minimal FastAPI app whose one endpoint calls a `transformers` text-classification pipeline once per request,
in a plain `def` route (FastAPI runs it in its thread pool), with no batching and no queue. Concurrent requests
then run the model on several threads at once, each with the torch intra-op threads, which is what this usual
way does to a CPU; `--serial` runs one request at a time instead (as an `async def` route calling the pipeline
would), for comparison.

What is the same as Naba: the encoder weights, the tokenizer, the label head's weights (as the classifier), the
labels and the tokens per window (`max_length` of the artifact, 512 for the BERT-base bench model), and the
device and torch threads (set by `bench/serve.py` for both servers).
What is not: the pipeline reads the first `max_length` tokens only (`truncation=True`), where Naba reads every
window of a long article; it classifies BERT's pooled [CLS] vector, where Naba pools sentence vectors and also
picks evidence and a summary; it does not normalise the text. So for long articles the baseline does *less*
model work than Naba, which makes the speed ratio conservative.

    python bench/pipeline_server.py --model artifacts/bench/bert-base-random-v1 --port 8100
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification, pipeline  # noqa: E402

from naba.models.artifacts import WEIGHTS, read_config  # noqa: E402


class ClassifyRequest(BaseModel):
    text: str
    title: str | None = None


def build_pipeline(model_dir: Path, device: str = "cpu") -> Any:
    """A text-classification pipeline over a Naba artifact's encoder and label head.

    `BertForSequenceClassification` is built from the artifact's `config.json`; `encoder.*` weights become
    `bert.*` and `label_head.*` becomes `classifier.*` (both are `Linear(hidden, labels)`).

    Raises:
        ValueError: the artifact's weights do not fit (not a BERT encoder, or missing weights).
    """
    naba = read_config(model_dir)
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=False)
    config.num_labels = len(naba.labels)
    config.id2label = dict(enumerate(naba.labels))
    config.label2id = {label: i for i, label in enumerate(naba.labels)}
    config.problem_type = "multi_label_classification"  # the pipeline then applies a sigmoid, as Naba does
    model = BertForSequenceClassification(config)
    state = load_file(str(model_dir / WEIGHTS))
    mapped = {f"bert.{k[len('encoder.') :]}": v for k, v in state.items() if k.startswith("encoder.")}
    mapped |= {
        f"classifier.{k[len('label_head.') :]}": v for k, v in state.items() if k.startswith("label_head.")
    }
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ValueError(
            f"weights of {model_dir} do not fit BERT: missing {missing}, unexpected {unexpected}"
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    return pipeline(
        "text-classification",
        model=model.eval(),
        tokenizer=tokenizer,
        device=torch.device(device),
        top_k=None,
    )


def create_app(model_dir: Path, device: str = "cpu", serial: bool = False) -> FastAPI:
    """The baseline app: `/v1/analyze` runs the pipeline on one article; `/readyz` answers once it loaded.

    Args:
        serial: run one pipeline call at a time (a lock) instead of one per thread-pool thread.
    """
    classify = build_pipeline(model_dir, device)
    lock = threading.Lock() if serial else contextlib.nullcontext()
    max_length = read_config(model_dir).window.max_length
    classify("تجربة", truncation=True, max_length=max_length)  # warm-up, as Naba warms up before /readyz
    app = FastAPI(title="pipeline baseline")

    @app.post("/v1/analyze")
    def analyze(body: ClassifyRequest) -> dict[str, Any]:
        """Score one article's labels with the pipeline."""
        text = f"{body.title}\n{body.text}" if body.title else body.text
        with lock:
            [scores] = classify([text], truncation=True, max_length=max_length)
        return {"scores": {s["label"]: s["score"] for s in scores}}

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        """Ready once the module-level load and warm-up are done (before the server listens)."""
        return {"status": "ready"}

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        description="Serve a Naba artifact's weights through a transformers pipeline."
    )
    parser.add_argument("--model", type=Path, required=True, help="Naba artifact directory.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device", default="cpu", help="cpu or cuda.")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads.")
    parser.add_argument("--serial", action="store_true", help="One request at a time through the model.")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    uvicorn.run(
        create_app(args.model, args.device, args.serial), host=args.host, port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
