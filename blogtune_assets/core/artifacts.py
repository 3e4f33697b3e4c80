"""Versioned, atomically published artifact folders.

Every asset writes into ``<home>/<asset>/.tmp-*`` and only a finished folder is
renamed to ``<home>/<asset>/<version>/``; ``current`` is a symlink swapped with
one ``os.replace``. A crash therefore leaves at most a ``.tmp-*`` folder, which
no reader ever follows; the next publish of that asset deletes those whose
writing process is gone (each holds an ``.owner`` file: host and pid).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

CURRENT = "current"
OWNER = ".owner"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class ArtifactNotFound(FileNotFoundError):
    pass


class ArtifactStore:
    def __init__(self, home: str | os.PathLike, keep_versions: int = 3):
        self.home = Path(home).expanduser().resolve()
        self.keep_versions = keep_versions

    def asset_dir(self, asset: str) -> Path:
        return self.home / asset

    @contextmanager
    def new_version(self, asset: str, tag: str = "") -> Iterator[Path]:
        """Yield an empty folder; publish it as a new version only if the block succeeds."""
        root = self.asset_dir(asset)
        root.mkdir(parents=True, exist_ok=True)
        self._remove_orphans(root)
        tmp = root / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        (tmp / OWNER).write_text(f"{socket.gethostname()} {os.getpid()}")
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / OWNER).unlink()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        final = root / (f"{stamp}-{tag}" if tag else stamp)
        os.replace(tmp, final)
        self._point_current(root, final.name)
        self._prune(root)

    def current(self, asset: str) -> Path:
        link = self.asset_dir(asset) / CURRENT
        if not link.exists():
            raise ArtifactNotFound(
                f"no published version of '{asset}' under {self.asset_dir(asset)}; materialize it first"
            )
        return link.resolve()

    def current_or_none(self, asset: str) -> Path | None:
        """The published version, or None before the first: for callers to whom "none yet" is an answer."""
        try:
            return self.current(asset)
        except ArtifactNotFound:
            return None

    def versions(self, asset: str) -> list[Path]:
        root = self.asset_dir(asset)
        if not root.exists():
            return []
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))

    def _point_current(self, root: Path, name: str) -> None:
        tmp_link = root / f".{CURRENT}-{uuid.uuid4().hex[:8]}"
        os.symlink(name, tmp_link)
        os.replace(tmp_link, root / CURRENT)

    @staticmethod
    def _remove_orphans(root: Path) -> None:
        """Temporary folders of killed writers (SIGKILL skips their cleanup) on this host.

        Another host's writer (a shared volume on Kubernetes) cannot be checked, so it is left alone.
        """
        for tmp in root.glob(".tmp-*"):
            try:
                host, pid = (tmp / OWNER).read_text().split()
            except (OSError, ValueError):
                continue
            if host == socket.gethostname() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)

    def _prune(self, root: Path) -> None:
        current = (root / CURRENT).resolve()
        old = [p for p in self.versions(root.name) if p.resolve() != current]
        for stale in old[: max(0, len(old) - (self.keep_versions - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
