"""`naba predict --engine ray`: the same run, its batches analysed by a pool of Ray actors.

Only the model calls move: reading, the errors file, the run manifest, resuming and the ordered, fsynced output
stay `naba.batch.run_batch`'s, so a Ray run writes what a local run writes and resumes the same way. Each actor
loads the artifact once (`Predictor.from_dir`, the one predictor) and keeps it for the run; a chunk of articles is
cut into batches that the pool analyses in parallel and hands back in order (`ray.util.ActorPool.map`). On a
cluster the artifact path must be readable by every node (a shared file system), as the input is by the driver.
Ray is an optional extra: `pip install naba[ray]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from naba.models.errors import NabaError
from naba.models.results import DEFAULT_OPTIONS, Analysis, Article, ResultOptions

if TYPE_CHECKING:
    from naba.models.predictor import Backend, DType, Quantize


class _PredictorActor:
    """One Ray actor: a `Predictor` loaded once, on the CPUs (or GPU) Ray gave the actor."""

    def __init__(
        self,
        model_dir: str,
        device: str,
        backend: Backend,
        quantize: Quantize | None,
        dtype: DType,
        threads: int,
    ) -> None:
        import torch

        from naba.models.predictor import Predictor

        torch.set_num_threads(threads)  # the actor's own CPUs, not every core of the node
        self.predictor = Predictor.from_dir(
            model_dir,
            device=device,
            backend=backend,
            quantize=quantize,
            dtype=dtype,
        )

    def describe(self) -> dict[str, str]:
        p = self.predictor
        return {"backend": p.backend, "device": str(p.device), "dtype": str(p.dtype)}

    def analyze(self, articles: list[Article], options: ResultOptions) -> list[Analysis]:
        return self.predictor.analyze(articles, options)


class RayAnalyzer:
    """A `naba.batch.Analyzer` whose `analyze` runs on `actors` Ray actors, `batch_size` articles per call.

    Args:
        address: a running cluster (`auto`, `ray://host:10001`); None starts a local Ray instance.
        cpus_per_actor, gpus_per_actor: what each actor reserves; with a GPU, give `device="cuda"`.
        ready_timeout_s: how long every actor may take to start and load the model.

    Raises:
        NabaError: the actors did not all start in time (the cluster lacks room for them); an actor's own
            error (an `ArtifactError`, say) when loading failed.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        actors: int = 2,
        batch_size: int = 16,
        address: str | None = None,
        device: str = "cpu",
        backend: Backend = "auto",
        quantize: Quantize | None = None,
        dtype: DType = "auto",
        cpus_per_actor: int = 1,
        gpus_per_actor: float = 0,
        ready_timeout_s: float = 300.0,
    ) -> None:
        import ray
        from ray.util import ActorPool

        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        actor = ray.remote(num_cpus=cpus_per_actor, num_gpus=gpus_per_actor)(_PredictorActor)
        self._actors: list[Any] = [  # Ray's actor handles
            actor.remote(str(model_dir), device, backend, quantize, dtype, cpus_per_actor)
            for _ in range(actors)
        ]
        described = [a.describe.remote() for a in self._actors]
        _, waiting = ray.wait(described, num_returns=len(described), timeout=ready_timeout_s)
        if waiting:
            self.close()
            raise NabaError(
                f"{len(waiting)} of {actors} Ray actors ({cpus_per_actor} CPUs, {gpus_per_actor} GPUs each) did "
                f"not start within {ready_timeout_s:g} s: the cluster lacks room for them"
            )
        info = self._get(described[0])
        self.backend, self.device, self.dtype = info["backend"], info["device"], info["dtype"]
        self._pool = ActorPool(self._actors)
        self.batch_size = batch_size

    def analyze(
        self, articles: Sequence[Article], options: ResultOptions = DEFAULT_OPTIONS
    ) -> list[Analysis]:
        """`Predictor.analyze` over the pool, results in input order; a refused article raises its own
        `NabaError` (so `run_batch` retries the batch article by article, as it does locally)."""
        pieces = [list(articles[i : i + self.batch_size]) for i in range(0, len(articles), self.batch_size)]
        try:
            done = list(self._pool.map(lambda a, piece: a.analyze.remote(piece, options), pieces))
        except self._ray.exceptions.RayTaskError as exc:
            raise _cause(exc) from None
        return [analysis for piece in done for analysis in piece]

    def close(self) -> None:
        """Stop the actors, and the local Ray instance if this started it."""
        for actor in self._actors:
            self._ray.kill(actor)
        if self._started:
            self._ray.shutdown()

    def _get(self, ref: Any) -> Any:
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as exc:
            raise _cause(exc) from None


def _cause(exc: Exception) -> Exception:
    """The error an actor raised (an `ArtifactError`, an `InvalidInputError`), rather than Ray's wrapper."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, NabaError) else exc
