"""Request and response bodies of the HTTP API.

Requests are strict (`extra="forbid"`, `StrictStr`): a misspelt field or a number sent as text is a 422, not
a silently different request. Limits that come from `Settings` (max_chars, batch size, largest summary) are
checked in the routes, since a schema cannot read runtime settings. Responses mirror `Analysis.to_dict()`.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from naba.models.errors import InvalidInputError
from naba.models.results import OperatingPoint, ResultOptions

EXAMPLE_TITLE = "البنك المركزي يرفع سعر الفائدة"
EXAMPLE_TEXT = (
    "أعلن البنك المركزي اليوم رفع سعر الفائدة بنصف نقطة مئوية. "
    "وقال المحافظ إن القرار يهدف إلى كبح التضخم. "
    "وتراجعت أسهم البنوك في البورصة عقب الإعلان."
)
_EXAMPLE_LABEL = {
    "label": "economy",
    "score": 0.94,
    "evidence": ["أعلن البنك المركزي اليوم رفع سعر الفائدة بنصف نقطة مئوية."],
}
_EXAMPLE_ANALYSIS: dict[str, Any] = {
    "labels": [_EXAMPLE_LABEL],
    "scores": {"economy": 0.94, "politics": 0.21, "sports": 0.01},
    "summary": "أعلن البنك المركزي اليوم رفع سعر الفائدة بنصف نقطة مئوية.",
    "summary_indices": [0],
    "model": {"name": "naba-arabert-topics", "version": "1.0.0"},
}

ArticleText = Annotated[
    StrictStr, Field(description="The article body, in Arabic. Evidence and summary quote it verbatim.")
]
ArticleTitle = Annotated[
    StrictStr | None,
    Field(description="The headline. It helps tagging but is never quoted as evidence or summary."),
]
SummarySentences = Annotated[
    StrictInt | None,
    Field(ge=1, description="Sentences in the summary; defaults to the service setting and is capped by it."),
]
SummaryRatio = Annotated[
    StrictFloat | None,
    Field(
        gt=0,
        le=1,
        description="Summary length as a share r of the article's sentences: max(1, ceil(r × sentences)), "
        "at most max_summary_sentences. Give this or summary_sentences, not both.",
    ),
]
OperatingPointOption = Annotated[
    OperatingPoint,
    Field(
        description="Which per-label thresholds decide the tags and their evidence: balanced (F1-optimal on "
        "dev), precision (fewer, surer tags; F0.5) or recall (fewer misses; F2). GET /v1/model lists them."
    ),
]


class AnalyzeOptions(BaseModel):
    """How to analyse: the options a single and a batch request share, checked together."""

    model_config = ConfigDict(extra="forbid")

    summary_sentences: SummarySentences = None
    summary_ratio: SummaryRatio = None
    operating_point: OperatingPointOption = "balanced"
    include_sentences: StrictBool = Field(
        False,
        description="Also return the article's sentences, which summary_indices count and evidence quotes: "
        "what a client needs to mark them in the article (the web page asks for them).",
    )
    truncate: StrictBool = Field(
        False,
        description="Cut a text or title longer than the service's max_chars to that length (at a space when "
        "one is near) instead of refusing it with 413. The result then says truncated: true.",
    )

    @model_validator(mode="after")
    def _one_summary_length(self) -> Self:
        """ResultOptions' rule (not both summary options), refused here as a malformed request."""
        try:
            ResultOptions(self.summary_sentences, self.summary_ratio, operating_point=self.operating_point)
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None
        return self


class AnalyzeRequest(AnalyzeOptions):
    """One article to tag and summarise."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": EXAMPLE_TEXT, "title": EXAMPLE_TITLE, "summary_sentences": 1}]
        },
    )

    text: ArticleText
    title: ArticleTitle = None


class BatchArticle(BaseModel):
    """One article of a batch; `id` is echoed back so clients can match results."""

    model_config = ConfigDict(extra="forbid")

    id: StrictStr | None = Field(None, description="Client's identifier, echoed in the result.")
    text: ArticleText
    title: ArticleTitle = None


class BatchAnalyzeRequest(AnalyzeOptions):
    """Several articles analysed in one call; results come back in the same order."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"articles": [{"id": "a1", "text": EXAMPLE_TEXT, "title": EXAMPLE_TITLE}]}]
        },
    )

    articles: list[BatchArticle] = Field(
        min_length=1, description="The articles; at most the service's max_batch_articles."
    )


class LabelOut(BaseModel):
    """A label the article was tagged with."""

    label: str = Field(description="Topic label.")
    score: float = Field(description="Probability of the label, between 0 and 1.")
    evidence: list[str] = Field(description="Article sentences that support the label, quoted verbatim.")


class ModelRefOut(BaseModel):
    """Which model produced a result."""

    name: str
    version: str


class AnalyzeResponse(BaseModel):
    """Tags, scores and an extractive summary of one article."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_ANALYSIS]})

    labels: list[LabelOut] = Field(description="Labels whose score passes their threshold, best first.")
    scores: dict[str, float] = Field(description="Every label's probability.")
    summary: str = Field(description="Article sentences, in article order; never invented text.")
    summary_indices: list[int] = Field(description="Positions of the summary sentences in the article.")
    model: ModelRefOut
    truncated: bool = Field(
        False, description="True when the request asked for truncate and the text was cut."
    )
    sentences: list[str] | None = Field(
        None, description="The article's body sentences, in order, when the request asked include_sentences."
    )


class BatchItemOut(AnalyzeResponse):
    """The analysis of one batch article, with the client's id."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"id": "a1", **_EXAMPLE_ANALYSIS}]})

    id: str | None = Field(None, description="The id sent with the article.")


class BatchAnalyzeResponse(BaseModel):
    """One result per article, in request order."""

    results: list[BatchItemOut]


class ModelInfo(BaseModel):
    """The served model (as the artifact describes it) and the service's request limits."""

    name: str
    version: str
    description: str | None = Field(None, description="What the model tags, in the artifact's words.")
    labels: list[str]
    thresholds: dict[str, float] = Field(description="Per-label decision thresholds (the balanced point).")
    operating_points: dict[str, dict[str, float]] = Field(
        description="Per-label thresholds of every operating point: balanced, precision and recall."
    )
    max_length: int | None = Field(None, description="Tokens the model reads per article.")
    base_model: str | None = Field(None, description="The pretrained encoder the model was fine-tuned from.")
    metrics: dict[str, Any] | None = Field(None, description="Evaluation metrics saved with the artifact.")
    created: str | None = Field(None, description="When the artifact was written, if recorded.")
    device: str | None = Field(None, description="Where the model runs, e.g. cpu or cuda:0.")
    backend: str | None = Field(None, description="What runs the encoder: torch, onnx or onnx-int8.")
    dtype: str | None = Field(
        None, description="Precision of the torch model: float32, bfloat16 or float16 (NABA_DTYPE)."
    )
    max_chars: int = Field(description="Longest article text accepted, in characters.")
    max_batch_articles: int = Field(description="Most articles in one batch request.")
    max_summary_sentences: int = Field(
        description="Largest summary_sentences a request may ask; also caps summaries by summary_ratio."
    )


class ReloadRequest(BaseModel):
    """Which artifact to serve next; without `path`, the configured model directory is read again."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"path": "artifacts/v2"}]})

    path: StrictStr | None = Field(
        None,
        min_length=1,
        description="Artifact directory on the server (relative to its working directory); default: "
        "NABA_MODEL_DIR.",
    )


class ReloadResponse(BaseModel):
    """The model now served and the one it replaced."""

    model: ModelRefOut = Field(description="The model now serving requests.")
    previous_model: ModelRefOut | None = Field(
        description="The model it replaced; null when none had loaded (a failed start-up load)."
    )
    path: str = Field(description="The artifact directory it was loaded from.")
    seconds: float = Field(description="Time spent loading, warming up and checking the new model.")


class ErrorResponse(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "text is empty: send the article's text in 'text'", "error_type": "empty_input"}
            ]
        }
    )

    error: str = Field(description="What went wrong, in words a client can act on.")
    error_type: str = Field(description="Stable machine-readable kind, e.g. empty_input, model_not_ready.")


class HealthResponse(BaseModel):
    """Liveness: the process is up."""

    status: str = "ok"


class ReadyResponse(BaseModel):
    """Readiness: the model is loaded and answered its warm-up."""

    status: str = "ready"
    model: ModelRefOut


class FeedbackRequest(BaseModel):
    """An analyst's correction of one result: the labels that are right, and per label the sentence that shows
    it. Stored for retraining; labels must be the served model's, evidence sentences quoted from the text."""

    model_config = ConfigDict(extra="forbid")

    text: ArticleText
    title: ArticleTitle = None
    id: StrictStr | None = Field(None, max_length=512, description="The article's id, if it has one.")
    labels: list[StrictStr] = Field(description="Every label the article should carry (none: an empty list).")
    evidence: dict[StrictStr, StrictStr] = Field(
        default_factory=dict, description="Per label of `labels`, the article sentence that shows it."
    )
    summary: StrictStr | None = Field(
        None, description="A reference summary of the article, if the analyst wrote one."
    )
    model: ModelRefOut = Field(description="The model whose result is corrected (the response's `model`).")


class FeedbackResponse(BaseModel):
    """The stored correction's id."""

    id: int
    created: str = Field(description="When it was stored (ISO 8601, UTC).")
