"""ExecuTorch's CPU-probe log lines stay off stderr; Python's own stderr is untouched."""

from __future__ import annotations

import subprocess
import sys

import pytest

RAW = "from executorch.extension.pybindings import portable_lib; portable_lib._threadpool_get_thread_count()"
QUIET = "import sys; from ondevice.runtime import thread_count; thread_count(); print('still here', file=sys.stderr)"


def _stderr(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stderr


def test_the_threadpool_starts_without_its_cpu_probe_lines():
    if "cpuinfo" not in _stderr(RAW):
        pytest.skip("the ExecuTorch threadpool logs nothing on this machine")
    quiet = _stderr(QUIET)
    assert "cpuinfo" not in quiet and "still here" in quiet
