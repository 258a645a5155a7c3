"""Analysts' corrections of the served model's results, kept in Naba's SQL database through SQLAlchemy.

The page (`GET /`) sends one when an analyst ticks or unticks labels, points at the right evidence sentence or
writes a reference summary; `POST /v1/feedback` stores it with the model it corrects and who sent it.
Retraining reads them back as labelled articles (`CorrectionStore.training_rows`). Any SQLAlchemy URL works:
SQLite (the default, one file, in WAL mode) for one machine, PostgreSQL (`postgresql+psycopg://...`) where
several replicas share one database.

One article, several corrections: every correction is kept (the table is the history), and the training export
takes the most recent one per article, an article being its text once folded (`naba.models.preprocessing.
text_key`, so an edited text is a new article). A later correction replaces an earlier one whole — labels,
evidence and summary — rather than merging with it, so two analysts who disagree never produce a row neither
of them sent.

The schema is versioned (`MIGRATIONS`, recorded in `naba_schema`): opening a store brings an older database up
to date in one transaction, and refuses one written by a newer Naba.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from naba.models.errors import NabaError
from naba.models.preprocessing import text_key


class _Base(DeclarativeBase):
    pass


class SchemaVersion(_Base):
    """The one-row table that says which `MIGRATIONS` a database has had."""

    __tablename__ = "naba_schema"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)


class CorrectionRow(_Base):
    """One stored correction: the article as the analyst saw it, the labels they say are right (all of them,
    not a diff), the evidence sentence they chose per label, an optional reference summary, the model whose
    result they corrected and who sent it."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    text_sha256: Mapped[str] = mapped_column(String(64), index=True)
    article_id: Mapped[str | None] = mapped_column(String(512))
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    labels: Mapped[list[str]] = mapped_column(JSON)
    evidence: Mapped[dict[str, str]] = mapped_column(JSON)
    summary: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str] = mapped_column(String(256))
    model_version: Mapped[str] = mapped_column(String(256))
    submitted_by: Mapped[str] = mapped_column(String(256))


def _create_v1(connection: Connection) -> None:
    _Base.metadata.create_all(connection, tables=[CorrectionRow.__table__])  # type: ignore[list-item]


# Schema version N is reached by running MIGRATIONS[N - 1]; append, never edit, once a version has shipped.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_create_v1,)


class StoreError(NabaError):
    """The database holds a schema this Naba does not know (written by a newer one)."""

    error_type = "store_error"


@dataclass(frozen=True)
class Correction:
    """A correction as sent; `id` and `created` are set by the store."""

    text: str
    labels: tuple[str, ...]
    model_name: str
    model_version: str
    evidence: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None
    article_id: str | None = None
    summary: str | None = None
    submitted_by: str = "anonymous"
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
        if self.summary:
            row["summary"] = self.summary
        return row


# What a `Correction` and its `CorrectionRow` hold alike, copied as they are either way.
_SAME_FIELDS = ("text", "title", "article_id", "summary", "model_name", "model_version", "submitted_by")


def article_key(text: str) -> str:
    """What makes two corrections corrections of one article: the same text once folded (`text_key`, the
    comparison training uses between splits), hashed to fit an indexed column."""
    return hashlib.sha256(text_key(text).encode("utf-8")).hexdigest()


class CorrectionStore:
    """The corrections of one database, its schema brought up to date on opening.

    Raises:
        StoreError: the database was migrated by a newer Naba.
        sqlalchemy.exc.SQLAlchemyError: it cannot be reached or written.
    """

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_wal)
        migrate(self.engine)

    def add(self, correction: Correction) -> Correction:
        """Store `correction`; returns it with its id and time."""
        row = CorrectionRow(
            created=datetime.now(UTC),
            text_sha256=article_key(correction.text),
            labels=list(correction.labels),
            evidence=dict(correction.evidence),
            **{name: getattr(correction, name) for name in _SAME_FIELDS},
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

    def latest(self) -> Iterator[Correction]:
        """The most recent correction of each article (the module's rule), oldest article first."""
        newest = select(func.max(CorrectionRow.id)).group_by(CorrectionRow.text_sha256)
        query = select(CorrectionRow).where(CorrectionRow.id.in_(newest)).order_by(CorrectionRow.id)
        with Session(self.engine) as session:
            for row in session.scalars(query):
                yield _correction(row)

    def training_rows(self) -> list[dict[str, Any]]:
        """The training JSONL rows of `latest`: what `naba retrain` learns from."""
        return [c.record() for c in self.latest()]

    def close(self) -> None:
        self.engine.dispose()


def schema_version(connection: Connection) -> int:
    """The version a database is at; 0 for one Naba has never opened."""
    _Base.metadata.create_all(connection, tables=[SchemaVersion.__table__])  # type: ignore[list-item]
    return connection.scalar(select(func.max(SchemaVersion.version))) or 0


def migrate(engine: Engine) -> int:
    """Run the migrations a database lacks, in one transaction; returns its version.

    Raises:
        StoreError: the database is at a version newer than this Naba's `MIGRATIONS`.
    """
    with engine.begin() as connection:
        version = schema_version(connection)
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database is at schema version {version}, newer than this Naba's {len(MIGRATIONS)}: "
                "upgrade Naba"
            )
        for step in MIGRATIONS[version:]:
            step(connection)
        if version < len(MIGRATIONS):
            connection.execute(delete(SchemaVersion))
            connection.execute(insert(SchemaVersion).values(version=len(MIGRATIONS)))
    return len(MIGRATIONS)


def _sqlite_wal(connection: Any, _record: Any) -> None:
    """Write-ahead logging: readers (an export for retraining) never block the service's writes."""
    connection.execute("PRAGMA journal_mode=WAL")


def _correction(row: CorrectionRow) -> Correction:
    return Correction(
        labels=tuple(row.labels),
        evidence=dict(row.evidence),
        id=row.id,
        created=row.created,
        **{name: getattr(row, name) for name in _SAME_FIELDS},
    )
