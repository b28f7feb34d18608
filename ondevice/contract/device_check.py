"""device_check.json: the logits a bundle's program must give on a phone, so the first run there proves the export.

The input needs no image and no file: element ``i`` of the flattened NCHW input is
``float32((i * 7919 + 13) % 256) / 127.5 - 1`` in float32 arithmetic, the same in Python, Kotlin and Swift. The file
holds its first values and its sum, so an app checks its own input before it checks the program. The expected
logits are what the ExecuTorch runtime gives here for every sub-network of the catalog; a phone's CPU may round
differently, hence the tolerance: ``|got - expected| <= atol`` for every logit (which keeps the top class unless
two classes are within ``2 * atol`` of each other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEVICE_CHECK_NAME = "device_check.json"
DEVICE_CHECK_FORMAT = "ondevice-device-check"
DEVICE_CHECK_VERSION = 1
INPUT_RULE = "x[i] = float32((i * 7919 + 13) % 256) / 127.5 - 1 over the flattened NCHW input"
HEAD = 8
# per logit, relative to the largest |logit| of the file (at least 1): float programs differ in the last bits
# between CPUs and delegates' kernels; integer programs can differ by a rounding step of a requantization
ATOL_RELATIVE = {"fp32": 1e-4, "quantized": 2e-2}


def check_input(shape: list[int]) -> np.ndarray:
    """The device check's input of ``shape``, float32."""
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    values = ((i * 7919 + 13) % 256).astype(np.float32) / np.float32(127.5) - np.float32(1)
    return values.reshape(shape)


def device_check(
    program: str, sha256: str, shape: list[int], logits: dict[str, np.ndarray], quantized: bool
) -> dict[str, Any]:
    """The device_check.json document for ``logits`` (gates -> [num_classes] float32) computed on ``check_input``."""
    x = check_input(shape)
    largest = max(1.0, max(float(np.abs(v).max()) for v in logits.values()))
    return {
        "format": DEVICE_CHECK_FORMAT,
        "version": DEVICE_CHECK_VERSION,
        "program": program,
        "sha256": sha256,
        "input": {
            "shape": list(shape),
            "rule": INPUT_RULE,
            "head": [float(v) for v in x.reshape(-1)[:HEAD]],
            "sum": float(x.astype(np.float64).sum()),
        },
        "atol": ATOL_RELATIVE["quantized" if quantized else "fp32"] * largest,
        "logits": {g: [float(v) for v in np.asarray(row, dtype=np.float32).reshape(-1)] for g, row in logits.items()},
    }


def mismatch(check: dict[str, Any], gates: str, got: np.ndarray) -> str | None:
    """Why ``got`` (the logits of ``gates``) fails the check, or None when it passes; the apps implement the same."""
    expected = np.asarray(check["logits"][gates], dtype=np.float32)
    got = np.asarray(got, dtype=np.float32).reshape(-1)
    if got.shape != expected.shape:
        return f"{gates}: {got.size} logits, expected {expected.size}"
    worst = float(np.abs(got - expected).max())
    if not worst <= check["atol"]:  # NaN fails too
        return f"{gates}: a logit is {worst:.3g} off (tolerance {check['atol']:.3g})"
    return None
