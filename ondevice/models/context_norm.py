"""Entry norms whose statistics follow the gate of the previous stage.

The first norms of a stage (after the convs that read the stage's input) see a different input
distribution when the stage before it ran or skipped its skippable sub-path. A
:class:`ContextBatchNorm2d` keeps one set of running statistics for each case; the model picks one
around each stage call (:func:`entry_context`), so tracing a fixed gate setting bakes plain buffers
into the graph and XNNPACK still folds the norm into its conv.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CONTEXTS", "ContextBatchNorm2d", "entry_context"]

CONTEXTS = ("after_run", "after_skip")  # the previous stage ran / skipped its skippable sub-path


class ContextBatchNorm2d(nn.BatchNorm2d):
    """A stage's entry BatchNorm with one set of running statistics per gate of the stage before.

    ``previous`` (set by :meth:`AdnModel.run_stage` around the stage call) picks ``running_*_after_run``
    or ``running_*_after_skip`` in eval mode; ``None`` falls back to the averaged ``running_mean/var``.
    Weight and bias are shared by both contexts. The extra buffers are additions to the state dict; the
    official keys are unchanged.
    """

    previous: bool | None = None
    collect: bool = False  # recalibrate_norms: accumulate batch statistics into the previous-gate buffers

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        for context in CONTEXTS:
            self.register_buffer(f"running_mean_{context}", torch.zeros(num_features))
            self.register_buffer(f"running_var_{context}", torch.ones(num_features))
            self.register_buffer(f"batches_{context}", torch.tensor(0, dtype=torch.long))

    @classmethod
    def from_batch_norm(cls, bn: nn.BatchNorm2d) -> ContextBatchNorm2d:
        """A copy of ``bn`` whose context statistics start as its averaged ones."""
        if not (bn.affine and bn.track_running_stats):
            raise ValueError("entry norms need affine BatchNorms that track running statistics")
        new = cls(bn.num_features, eps=bn.eps, momentum=bn.momentum).to(bn.running_mean.device)
        new.load_state_dict(bn.state_dict(), strict=False)
        for context in CONTEXTS:
            getattr(new, f"running_mean_{context}").copy_(bn.running_mean)
            getattr(new, f"running_var_{context}").copy_(bn.running_var)
        return new.train(bn.training)

    def _context(self) -> str:
        return CONTEXTS[int(bool(self.previous))]

    def forward(self, x: Tensor) -> Tensor:
        if self.training or self.previous is None:
            if self.training and self.collect and self.previous is not None:
                self._accumulate(x)
            return super().forward(x)
        context = self._context()
        mean, var = getattr(self, f"running_mean_{context}"), getattr(self, f"running_var_{context}")
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)

    @torch.no_grad()
    def _accumulate(self, x: Tensor) -> None:
        """Cumulative average of the batch mean and unbiased variance, as BatchNorm with momentum=None."""
        context = self._context()
        count = getattr(self, f"batches_{context}")
        count += 1
        dims = [0, *range(2, x.dim())]
        for name, value in (("mean", x.mean(dims)), ("var", x.var(dims, unbiased=True))):
            running = getattr(self, f"running_{name}_{context}")
            running += (value - running) / count

    @torch.no_grad()
    def fill_unseen_contexts(self) -> None:
        """A context no calibration batch came through keeps the averaged statistics, not a reset."""
        for context in CONTEXTS:
            if int(getattr(self, f"batches_{context}")) == 0:
                getattr(self, f"running_mean_{context}").copy_(self.running_mean)
                getattr(self, f"running_var_{context}").copy_(self.running_var)

    def reset_context_stats(self) -> None:
        for context in CONTEXTS:
            getattr(self, f"running_mean_{context}").zero_()
            getattr(self, f"running_var_{context}").fill_(1.0)
            getattr(self, f"batches_{context}").zero_()


@contextmanager
def entry_context(model: nn.Module, index: int, previous: bool | None) -> Iterator[None]:
    """Stage ``index``'s entry norms use the statistics of ``previous`` (the gate of stage index-1) inside."""
    norms = [model.get_submodule(name) for name in model.entry_norms(index)] if index else []
    norms = [m for m in norms if isinstance(m, ContextBatchNorm2d)]
    for m in norms:
        m.previous = previous
    try:
        yield
    finally:
        for m in norms:
            m.previous = None
