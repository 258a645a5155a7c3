"""Tag and summarise articles, one at a time or in a batch.

Every article is checked here, before it is queued for the model, so a bad request costs no inference time
and a batch with one bad article is refused whole, with the article's index in the message.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from naba.models.errors import BatchTooLargeError, InvalidInputError, NabaError
from naba.models.preprocessing import check_unicode, truncate_text, validate_text, validate_title
from naba.models.results import Article, ResultOptions
from naba.service.deps import EngineDep, SettingsDep
from naba.service.errors import error_responses
from naba.service.schemas import (
    AnalyzeOptions,
    AnalyzeRequest,
    AnalyzeResponse,
    BatchAnalyzeRequest,
    BatchAnalyzeResponse,
    BatchItemOut,
)
from naba.settings import Settings

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/analyze", tags=["analyze"])


def resolve_summary_sentences(requested: int | None, settings: Settings) -> int:
    """The request's summary length, or the default; refuse more than the service allows."""
    if requested is None:
        return settings.summary_sentences
    if requested > settings.max_summary_sentences:
        raise InvalidInputError(
            f"summary_sentences is {requested}; the most allowed is {settings.max_summary_sentences}"
        )
    return requested


def analysis_options(body: AnalyzeOptions, settings: Settings) -> ResultOptions:
    """The request's options for the engine: its summary length (a count, or a ratio that the predictor turns
    into one, never more than `max_summary_sentences`) and its operating point."""
    count = None
    if body.summary_ratio is None:
        count = resolve_summary_sentences(body.summary_sentences, settings)
    return ResultOptions(count, body.summary_ratio, settings.max_summary_sentences, body.operating_point)


def checked_article(
    text: str, title: str | None, settings: Settings, article_id: str | None = None, truncate: bool = False
) -> tuple[Article, bool]:
    """Validate one article's text (empty, too long, not Arabic), title and id, and build the Article.

    The title reaches the tokenizer and the id the response, so a lone surrogate in either is refused here (422)
    rather than crashing the model or the response's serialisation (500). With `truncate`, a text or title over
    `max_chars` is cut to fit instead of refused; the flag returned says whether anything was cut.
    """
    if article_id is not None:
        check_unicode(article_id, "id")
    truncated = False
    if truncate:
        cut_text = truncate_text(text, settings.max_chars)
        cut_title = truncate_text(title, settings.max_chars) if title is not None else None
        truncated = cut_text != text or cut_title != title
        text, title = cut_text, cut_title
    validate_text(text, settings.max_chars)
    validate_title(title, settings.max_chars, hint=" (or send truncate: true)")
    return Article(text=text, title=title, id=article_id), truncated


@router.post("", response_model=AnalyzeResponse, responses=error_responses(413, 422, 500, 503, 504))
async def analyze(body: AnalyzeRequest, engine: EngineDep, settings: SettingsDep) -> AnalyzeResponse:
    """Tag one article, quote the evidence for each label and summarise it."""
    options = analysis_options(body, settings)
    article, truncated = checked_article(body.text, body.title, settings, truncate=body.truncate)
    [analysis] = await engine.analyze([article], options)
    sentences = analysis.sentences if body.include_sentences else None
    return AnalyzeResponse.model_validate(
        {**analysis.to_dict(), "truncated": truncated, "sentences": sentences}
    )


@router.post(
    "/batch", response_model=BatchAnalyzeResponse, responses=error_responses(413, 422, 500, 503, 504)
)
async def analyze_batch(
    body: BatchAnalyzeRequest, engine: EngineDep, settings: SettingsDep
) -> BatchAnalyzeResponse:
    """Analyse several articles in one call; results keep the request's order and ids."""
    if len(body.articles) > settings.max_batch_articles:
        raise BatchTooLargeError(
            f"batch has {len(body.articles)} articles; the limit is {settings.max_batch_articles}"
        )
    options = analysis_options(body, settings)
    articles, truncated = [], []
    for index, item in enumerate(body.articles):
        try:
            article, cut = checked_article(item.text, item.title, settings, item.id, truncate=body.truncate)
        except NabaError as exc:
            raise type(exc)(f"articles[{index}]: {exc.message}") from exc
        articles.append(article)
        truncated.append(cut)
    analyses = await engine.analyze(articles, options)
    results = [
        BatchItemOut.model_validate(
            {
                "id": article.id,
                **analysis.to_dict(),
                "truncated": cut,
                "sentences": analysis.sentences if body.include_sentences else None,
            }
        )
        for article, analysis, cut in zip(articles, analyses, truncated, strict=True)
    ]
    return BatchAnalyzeResponse(results=results)
