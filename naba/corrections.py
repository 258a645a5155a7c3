"""Analysts' corrections of the served model's results, kept in a SQL database through SQLAlchemy.

The page (`GET /`) sends one when an analyst ticks or unticks labels, or points at the right evidence sentence;
`POST /v1/feedback` stores it here with the model it corrects. Retraining reads them back as labelled articles
(`Correction.record`). Any SQLAlchemy URL works: SQLite (the default, a file beside the service) for one
machine, PostgreSQL (`postgresql+psycopg://...`) where several replicas share one store.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, Integer, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class _Base(DeclarativeBase):
    pass


class CorrectionRow(_Base):
    """One stored correction: the article as the analyst saw it, the labels they say are right (all of them,
    not a diff), the evidence sentence they chose per label, and the model whose result they corrected."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    article_id: Mapped[str | None] = mapped_column(String(512))
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    labels: Mapped[list[str]] = mapped_column(JSON)
    evidence: Mapped[dict[str, str]] = mapped_column(JSON)
    model_name: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(256))


@dataclass(frozen=True)
class Correction:
    """A correction as stored (`id`, `created` set by the store)."""

    text: str
    labels: tuple[str, ...]
    evidence: Mapping[str, str]
    model_name: str
    model_version: str
    title: str | None = None
    article_id: str | None = None
    id: int | None = None
    created: datetime | None = None

    def record(self) -> dict[str, Any]:
        """The correction as a labelled article row (`naba train`'s JSONL format)."""
        row: dict[str, Any] = {"id": self.article_id or f"correction-{self.id}", "text": self.text}
        if self.title:
            row["title"] = self.title
        row["labels"] = list(self.labels)
        if self.evidence:
            row["evidence"] = dict(self.evidence)
        return row


class CorrectionStore:
    """The corrections table of one database; the table is created when missing."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_wal)
        _Base.metadata.create_all(self.engine)

    def add(self, correction: Correction) -> Correction:
        """Store `correction`; returns it with its id and time."""
        row = CorrectionRow(
            created=datetime.now(UTC),
            article_id=correction.article_id,
            title=correction.title,
            text=correction.text,
            labels=list(correction.labels),
            evidence=dict(correction.evidence),
            model_name=correction.model_name,
            model_version=correction.model_version,
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.flush()
            return _correction(row)

    def all(self, model_names: Sequence[str] | None = None) -> Iterator[Correction]:
        """Every stored correction, oldest first; only those of `model_names` when given."""
        query = select(CorrectionRow).order_by(CorrectionRow.id)
        if model_names is not None:
            query = query.where(CorrectionRow.model_name.in_(model_names))
        with Session(self.engine) as session:
            for row in session.scalars(query):
                yield _correction(row)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_wal(connection: Any, _record: Any) -> None:
    """Write-ahead logging: readers (an export for retraining) never block the service's writes."""
    connection.execute("PRAGMA journal_mode=WAL")


def _correction(row: CorrectionRow) -> Correction:
    return Correction(
        text=row.text,
        labels=tuple(row.labels),
        evidence=dict(row.evidence),
        model_name=row.model_name,
        model_version=row.model_version,
        title=row.title,
        article_id=row.article_id,
        id=row.id,
        created=row.created,
    )
