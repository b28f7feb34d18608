"""ExecuTorch program layouts that ``bench_export.py`` compares with the gated program; no app loads them.

multimethod  one method ``subnet_<gates>`` per sub-network in one .pte
chained      per-stage methods ``stage<i>_skip`` / ``stage<i>_run`` that the host calls one after another
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ondevice.export.common import PARITY_ATOL, FixedGates, parity_inputs, subnet_name
from ondevice.export.executorch import (
    _check_delegated,
    _check_parity,
    _load_program,
    _lower_to_edge,
    _segments,
    _share_mode,
    _to_executorch,
    _write,
)
from ondevice.models import AdnModel, Gates, all_gates
from ondevice.models.modes import eval_mode
from ondevice.models.segments import branch_key, segment_name

__all__ = ["export_chained_executorch", "export_multimethod_executorch"]


def export_multimethod_executorch(model: AdnModel, path: str | Path, *, atol: float = PARITY_ATOL) -> dict[str, Any]:
    """One method ``subnet_<gates>`` per sub-network in one .pte: how the gated program compares with methods."""
    with eval_mode(model):
        example = model.example_input()
        settings = all_gates(model.num_stages)
        programs = {
            subnet_name(g): torch.export.export(FixedGates(model, g).eval(), (example,), strict=True) for g in settings
        }
        program = _to_executorch(_lower_to_edge(programs))
        _check_delegated(program, "multi-method program")
        loaded = _load_program(program.buffer)

        def run_method(x: Tensor, gates: Gates) -> Tensor:
            return loaded.load_method(subnet_name(gates)).execute([x])[0]

        worst = _check_parity(settings, parity_inputs(model), model, run_method, atol)
        _write(path, program.buffer)
    return {
        "file": Path(path).name,
        "methods": {str(g): subnet_name(g) for g in settings},
        "size_bytes": len(program.buffer),
        "parity_max_abs_diff": worst,
    }


def export_chained_executorch(
    model: AdnModel, path: str | Path, *, share_weights: bool | str = False, atol: float = PARITY_ATOL
) -> dict[str, Any]:
    """Methods ``stage<i>_skip``/``stage<i>_run`` that the host chains: how the gated program compares with that."""
    with eval_mode(model):
        n = model.num_stages
        segments, _, _ = _segments(model, _share_mode(share_weights), share_contexts=True)
        programs = {
            segment_name(i, key): torch.export.export(m, (segments.examples[i],), strict=True)
            for i, key, m in segments.items()
        }
        program = _to_executorch(_lower_to_edge(programs))
        _check_delegated(program, "chained program")
        loaded = _load_program(program.buffer)

        def run_chain(x: Tensor, gates: Gates) -> Tensor:
            for i in range(n):
                x = loaded.load_method(segment_name(i, branch_key(gates, i, segments.contextual))).execute([x])[0]
            return x

        worst = _check_parity(all_gates(n), parity_inputs(model), model, run_chain, atol)
        _write(path, program.buffer)
    return {
        "file": Path(path).name,
        "methods": sorted(programs),
        "size_bytes": len(program.buffer),
        "parity_max_abs_diff": worst,
    }
