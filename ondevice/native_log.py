"""Log lines of the native libraries that a user cannot act on, kept off stderr.

ExecuTorch's threadpool probes the CPU when it starts and logs every ``/sys`` file it cannot read (on most
machines that are not Arm phones); it starts once per process, so starting it here, quietly, is enough.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

__all__ = ["native_stderr_silenced", "start_executorch_threadpool"]


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 (what C++ code writes to) to /dev/null for the block; Python's stderr is flushed."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@cache
def start_executorch_threadpool() -> None:
    """Start ExecuTorch's threadpool once per process without its CPU-probe log lines."""
    from executorch.extension.pybindings import portable_lib

    with native_stderr_silenced():
        portable_lib._threadpool_get_thread_count()
