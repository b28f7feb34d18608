"""Latency of each piece of a bundle's exits.pte, timed on the ExecuTorch runtime in the app's calling order."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from ..contract.manifest import load_manifest
from ..profile import interleaved_latency
from ..runtime import set_threads
from .costs import PieceCosts

__all__ = ["measure_piece_latency"]


def measure_piece_latency(bundle: str | Path, *, threads: int = 1, runs: int = 50, warmup: int = 5) -> PieceCosts:
    """Median milliseconds of every method of a bundle's exits.pte on the ExecuTorch runtime (batch 1).

    The inputs are what the app feeds each method when it chains them on one random image; every method
    is timed once per round over ``runs`` interleaved rounds (``profile.interleaved_latency``). An exit
    method includes its ISC link, so with ISC ``exits_chained`` is set and ``isc`` is 0. The result is a
    ``PieceCosts`` in ms: ``costs.chain_costs`` sums it along a chain.
    """
    from ..export.executorch import _load_program  # executorch is imported on first use

    manifest = load_manifest(bundle)
    if "exits" not in manifest:
        raise ValueError(f"{bundle} has no exits program; write one with `ondevice exits export CKPT --out {bundle}`")
    exits = manifest["exits"]
    isc = "logits" in exits["exit_inputs"]
    set_threads(threads)
    data = (Path(bundle) / exits["file"]).read_bytes()  # the runtime reads from this buffer: keep it alive
    program = _load_program(data)
    names = [m[flag] for table in ("stage_methods", "exit_methods") for m in exits[table] for flag in ("run", "skip")]
    methods = {name: program.load_method(name) for name in names}

    calls = []  # (method name, its inputs), in the app's order
    x = torch.randn(manifest["input"]["shape"], generator=torch.Generator().manual_seed(0))
    prev = None
    for stage, head in zip(exits["stage_methods"], exits["exit_methods"]):
        calls += [(stage["run"], [x]), (stage["skip"], [x])]
        x = methods[stage["run"]].execute([x])[0]
        args = [x, prev] if isc and prev is not None else [x]
        calls += [(head["run"], args), (head["skip"], args)]
        prev = methods[head["run"]].execute(args)[0]

    timed = {name: partial(methods[name].execute, args) for name, args in calls}
    ms = {name: row["median_ms"] for name, row in interleaved_latency(timed, runs=runs, warmup=warmup).items()}

    def per_flag(table: str) -> tuple[tuple[float, float], ...]:
        return tuple((ms[m["run"]], ms[m["skip"]]) for m in exits[table])

    return PieceCosts(
        segment=per_flag("stage_methods"),
        head=per_flag("exit_methods"),
        isc=(0.0,) * len(exits["exit_methods"]),
        exits_chained=isc,
    )
