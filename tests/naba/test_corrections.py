"""The corrections store on the databases it is meant for: SQLite here, and a real PostgreSQL server when
Debian's `postgresql` is installed (started by the fixture in a temporary directory, stopped after)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from naba.corrections import MIGRATIONS, Correction, CorrectionStore, StoreError, migrate

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def _run_as_postgres(command: list[str]) -> None:
    """Run a PostgreSQL tool as the `postgres` user when this is root (the server refuses to run as root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if PG_BIN is None:
        pytest.skip("no PostgreSQL server here (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver) is not installed")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
    base = Path(tempfile.mkdtemp(prefix="naba-pg-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data = base / "data"
    try:
        _run_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"])
        _run_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                          f"-p {port} -k {base} -c listen_addresses=''", "start"])  # fmt: skip
        yield f"postgresql+psycopg://postgres@/postgres?host={base}&port={port}"
    finally:
        if (data / "postmaster.pid").exists():
            _run_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"])
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def correction(text: str, labels: tuple[str, ...], **more: object) -> Correction:
    return Correction(text=text, labels=labels, model_name="m", model_version="1", **more)  # type: ignore[arg-type]


def test_the_latest_correction_of_each_article_is_what_training_reads(url: str) -> None:
    store = CorrectionStore(url)
    with store.engine.begin() as connection:  # the PostgreSQL database is shared by the module: start empty
        connection.exec_driver_sql("DELETE FROM corrections")
    first = store.add(correction("نص أول.", ("attack",), article_id="a"))
    store.add(correction("نص ثان.", ()))
    last = store.add(correction("نص أول.", ("joint_operation",), evidence={"joint_operation": "نص"},
                                submitted_by="key:abc"))  # fmt: skip
    assert [c.id for c in store.all()] == [first.id, first.id + 1, last.id]  # the history is kept
    assert store.training_rows() == [
        {"id": f"correction-{first.id + 1}", "text": "نص ثان.", "labels": []},
        {"id": f"correction-{last.id}", "text": "نص أول.", "labels": ["joint_operation"],
         "evidence": {"joint_operation": "نص"}},
    ]  # fmt: skip
    assert next(store.all(["other-model"]), None) is None
    store.close()


def test_opening_again_migrates_nothing_and_a_newer_schema_is_refused(url: str) -> None:
    store = CorrectionStore(url)
    assert migrate(store.engine) == len(MIGRATIONS)  # idempotent
    with store.engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE naba_schema SET version = {len(MIGRATIONS) + 1}")
    try:
        with pytest.raises(StoreError, match="newer than this Naba"):
            CorrectionStore(url)
    finally:
        with store.engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE naba_schema SET version = {len(MIGRATIONS)}")
        store.close()
