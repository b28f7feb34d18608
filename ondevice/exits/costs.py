"""What each piece of a multi-exit chain costs (segment, exit head, ISC link) and what a chain of them costs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models.modes import eval_mode
from .heads import MultiExitNet

__all__ = ["Node", "PieceCosts", "chain_costs", "piece_costs"]

Node = tuple[tuple[bool, ...], int]  # (skip flag per segment, exit index)


@dataclass(frozen=True)
class PieceCosts:
    """Cost at batch 1 of each piece (FLOPs from ``piece_costs``, or measured milliseconds):
    ``segment[k][skip]``, ``head[k][skip]`` (exit head incl. its plain classifier; the last one is the
    model's own head) and ``isc[k]`` (ISC classifier and link, 0 without ISC or when the head includes it).
    ``exits_chained``: exit k needs every earlier exit's logits (ISC), so a chain computes all of them."""

    segment: tuple[tuple[float, float], ...]
    head: tuple[tuple[float, float], ...]
    isc: tuple[float, ...]
    exits_chained: bool = False


def _flops(fn: Any, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    with FlopCounterMode(display=False) as counter:
        out = fn(*args, **kwargs)
    return int(counter.get_total_flops()), out


@torch.no_grad()
def piece_costs(model: MultiExitNet) -> PieceCosts:
    """Count every piece once per skip flag (a piece's FLOPs depend only on its own segment's flag)."""
    with eval_mode(model):
        h: Any = torch.zeros(model.input_spec.shape(1))
        segments, heads, isc = [], [], []
        prev = None
        flags = (False, True) if model.num_stages else (False,)
        for k in range(model.num_exits):
            seg, head = {}, {}
            for skip in flags:
                seg[skip], out = _flops(model.segment, k, h, skip)
                head[skip], (feat, _) = _flops(model.exit_head, k, out, skip, with_features=model.isc is not None)
                if not skip:
                    h_next, feat_next = out, feat
            segments.append((seg[False], seg.get(True, seg[False])))
            heads.append((head[False], head.get(True, head[False])))
            if model.isc is not None:
                cost, prev = _flops(model.isc, k, feat_next, prev)
                isc.append(cost)
            else:
                isc.append(0)
            h = h_next
    return PieceCosts(tuple(segments), tuple(heads), tuple(isc), exits_chained=model.isc is not None)


def chain_costs(pieces: PieceCosts, nodes: Sequence[Node]) -> list[float]:
    """Cumulative cost of stopping at each node of a chain, computing every piece at most once.

    Segment j of a node depends on its skip flags 0..j (reused across sub-networks that share them);
    an ISC exit also needs every earlier exit of its own gate prefix.
    """
    done: set[tuple[str, tuple[bool, ...]]] = set()
    total, out = 0, []
    for skips, k in nodes:
        for j in range(k + 1):
            if ("segment", skips[: j + 1]) not in done:
                done.add(("segment", skips[: j + 1]))
                total += pieces.segment[j][skips[j]]
        for j in range(k + 1) if pieces.exits_chained else (k,):
            if ("exit", skips[: j + 1]) not in done:
                done.add(("exit", skips[: j + 1]))
                total += pieces.head[j][skips[j]] + pieces.isc[j]
        out.append(float(total))
    return out
