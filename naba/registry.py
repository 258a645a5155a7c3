"""A model registry: versioned artifacts in one directory, a `current` pointer swapped atomically, and a history
of what was served when and why.

    <root>/versions/<version>/   artifacts, never changed once added
    <root>/current               a symlink to versions/<version>: what the service serves (NABA_MODEL_DIR)
    <root>/history.jsonl         one line per promotion or rollback: time, action, version, previous, by, reason

Every change is one atomic step, so a process killed at any point leaves the registry as it was or as it is
meant to become, never between: an artifact is copied into a hidden staging directory and renamed into
`versions/`, the pointer is replaced by `os.replace` of a new symlink, and the history line is appended after the
pointer moved (a crash between the two loses a line of history, never the served model). Rollback serves the
version that was current before the current one was promoted, as the history tells.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from naba.models.artifacts import read_config
from naba.models.errors import NabaError

VERSIONS = "versions"
CURRENT = "current"
HISTORY = "history.jsonl"
Action = Literal["promoted", "rolled_back"]


class RegistryError(NabaError):
    """A registry operation that cannot be done: an unknown or duplicate version, nothing to roll back to."""

    error_type = "registry_error"


@dataclass(frozen=True)
class Event:
    """One line of the history."""

    time: str
    action: Action
    version: str
    previous: str | None
    by: str
    reason: str


class Registry:
    """The registry at `root` (created on first use)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def current_link(self) -> Path:
        """The pointer itself: give this path to the service (`NABA_MODEL_DIR`)."""
        return self.root / CURRENT

    def versions(self) -> list[str]:
        """Every version added, oldest first."""
        folder = self.root / VERSIONS
        if not folder.is_dir():
            return []
        return sorted((p.name for p in folder.iterdir() if not p.name.startswith(".")),
                      key=lambda name: (folder / name).stat().st_mtime_ns)  # fmt: skip

    def path(self, version: str) -> Path:
        """The artifact of `version`.

        Raises:
            RegistryError: no such version.
        """
        path = self.root / VERSIONS / version
        if version.startswith(".") or "/" in version or not path.is_dir():
            raise RegistryError(f"no version {version!r} in {self.root}; it has {self.versions()}")
        return path

    def current(self) -> str | None:
        """The version served now; None before the first promotion."""
        link = self.current_link
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def add(self, artifact: str | Path, version: str | None = None) -> str:
        """Copy the artifact into the registry as `version` (default: the version in its card); returns it.

        Raises:
            RegistryError: that version is already there.
            ArtifactError: `artifact` is not a Naba model.
        """
        version = version or read_config(Path(artifact)).version
        target = self.root / VERSIONS / version
        if target.exists() or version.startswith(".") or "/" in version:
            raise RegistryError(f"version {version!r} is already in {self.root} (or not a valid name)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            shutil.copytree(artifact, staging / "artifact", symlinks=False)
            os.replace(staging / "artifact", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return version

    def promote(self, version: str, by: str, reason: str) -> Event:
        """Serve `version`: swap the pointer, then record why."""
        return self._point(version, "promoted", by, reason)

    def rollback(self, by: str, reason: str) -> Event:
        """Serve again what was served before the current version was promoted.

        Raises:
            RegistryError: nothing was served before it.
        """
        current = self.current()
        for event in reversed(list(self.history())):
            if event.version == current and event.previous is not None:
                return self._point(event.previous, "rolled_back", by, reason)
        raise RegistryError(
            f"nothing to roll back to: {current!r} is the first version served from {self.root}"
        )

    def history(self) -> Iterator[Event]:
        """Every promotion and rollback, oldest first."""
        path = self.root / HISTORY
        if path.is_file():
            for line in path.read_text("utf-8").splitlines():
                if line.strip():
                    yield Event(**json.loads(line))

    def clean_staging(self) -> None:
        """Remove what a killed `add` left behind (hidden staging directories)."""
        for stale in (self.root / VERSIONS).glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def _point(self, version: str, action: Action, by: str, reason: str) -> Event:
        self.path(version)  # it must exist
        previous = self.current()
        tmp = self.root / f".{CURRENT}-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path(VERSIONS) / version)  # relative: the registry can move as a whole
        os.replace(tmp, self.current_link)
        event = Event(datetime.now(UTC).isoformat(timespec="seconds"), action, version, previous, by, reason)
        with (self.root / HISTORY).open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(event), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return event
