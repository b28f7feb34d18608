"""Atomic writes: build a temp file or directory beside the target, then rename, so a killed process loses nothing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_path", "write_json_atomic"]


def _target(path: str | Path) -> Path:
    """Where the output goes: through a symbolic link to its target (the link stays a link, and points at the
    new output); the parent folders are created."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the target's directory; on success it replaces ``path``, on error it is removed.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not the temp file's 0600.
    """
    path = _target(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a scratch directory beside ``path``; build the output at ``scratch / path.name``.

    On success that output replaces ``path`` (a file or a directory) by renames, so a killed export leaves the
    previous one whole; on error the scratch directory is removed and ``path`` is untouched.
    """
    name = Path(path).name  # the caller builds under the name it gave, also when ``path`` is a link
    path = _target(path)
    scratch = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield scratch
        built = scratch / name
        if not built.exists():
            raise FileNotFoundError(f"export wrote nothing at {built}")
        if path.is_dir():
            old = scratch / ".previous"
            os.replace(path, old)  # a directory cannot be replaced by rename while it has files
        os.replace(built, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_json_atomic(path: str | Path, payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
    return Path(path)
