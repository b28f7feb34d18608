"""Losses for multi-exit training (IMTA: Li et al., ICCV 2019) and how they combine with ADN self-distillation (A).

Gradient Equilibrium (GE) is not a loss but a rewiring of the backward pass: ``gradient_rescale``
is the identity going forward and multiplies the gradient going back. After block i of K
(0-indexed) the trunk does ``x = gradient_rescale(x, 1/(K-i))``, feeds exit i, then
``x = gradient_rescale(x, K-i-1)`` before the next block, so the gradient reaching block i is the
*average* of what its own exit and the later exits send back, not their sum (see ``heads.py``).

The exit losses, for exits ``z_0 .. z_{K-1}`` of one forward pass and labels ``y``:

* ``summed_exit_loss``: sum_i CE(z_i, y), the baseline multi-exit loss.
* ``ofa_kd_loss`` (One-for-all KD): CE(z_{K-1}, y) + sum_{i<K-1} [(1-gamma) CE(z_i, y)
  + gamma T^2 KL(softmax(t/T) || softmax(z_i/T))], the teacher ``t`` detached. In one-stage training
  ``t`` is the last exit; in IMTA stage 2 it is the frozen stage-1 network's last classifier, as in
  the official ``main_IMTA.py`` (the IMTA paper writes z_K; the two agree in stage 1). KL is the
  batch mean (the official code uses ``nn.KLDivLoss()``'s element mean, i.e. an extra 1/classes).

Combined with ADN self-distillation (``ondevice train --method exits-*`` on an ADN model), each
step still does the two passes of ADN, with the single classifier replaced by the K exits:

1. super-net pass: ``L_super = alpha * L_exits(z^super, y)`` (L_exits: summed or OFA-KD);
2. base-net pass: ``L_base = (1 - alpha) * sum_i T_adn^2 KL(softmax(t/T_adn) || softmax(z^base_i/T_adn))``
   with ``t`` the super-net pass's teacher, detached: every base-net exit learns from the super-net's
   final prediction and, as in A, the base-net gets no label loss (``adn_exits_distillation_loss``).

Models without gates (MSDNet) do only the first pass, with weight 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "GradientRescale",
    "adn_exits_distillation_loss",
    "check_kd_params",
    "distillation_loss",
    "gradient_rescale",
    "ofa_kd_loss",
    "summed_exit_loss",
]


class GradientRescale(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``scale`` in the backward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)  # a new autograd node over the same values (no copy)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad_output * ctx.scale, None


def gradient_rescale(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged, but the gradient flowing back through it is multiplied by ``scale`` (IMTA's GE)."""
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale >= 0 or scale == float("inf"):
        raise ValueError(f"gradient scale must be a finite number >= 0, got {scale!r}")
    if scale == 1:
        return x
    return GradientRescale.apply(x, float(scale))


def check_kd_params(gamma: float, temperature: float) -> None:
    """Raise a ValueError naming the bad value unless 0 <= gamma <= 1 and temperature > 0."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"OFA-KD gamma must be in [0, 1], got {gamma} (IMTA: 0.9 on CIFAR, 0.1 on ImageNet)")
    if not temperature > 0:
        raise ValueError(f"KD temperature must be > 0, got {temperature} (IMTA: 3 on CIFAR, 1 on ImageNet)")


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), batch mean; the teacher is detached."""
    target = F.softmax(teacher.detach() / temperature, dim=1)
    return temperature**2 * F.kl_div(F.log_softmax(student / temperature, dim=1), target, reduction="batchmean")


def _check_exits(logits: Sequence[Tensor]) -> None:
    if len(logits) == 0:
        raise ValueError("need the logits of at least one exit")


def summed_exit_loss(logits: Sequence[Tensor], labels: Tensor) -> Tensor:
    """sum_i CE(z_i, y): the plain multi-exit loss every exit is trained with in MSDNet (the baseline)."""
    _check_exits(logits)
    return torch.stack([F.cross_entropy(z, labels) for z in logits]).sum()


def ofa_kd_loss(
    logits: Sequence[Tensor],
    labels: Tensor,
    *,
    teacher: Tensor | None = None,
    gamma: float = 0.9,
    temperature: float = 3.0,
) -> Tensor:
    """One-for-all KD: the last exit (or ``teacher``) teaches every earlier exit; see the module docstring."""
    _check_exits(logits)
    check_kd_params(gamma, temperature)
    teacher = logits[-1] if teacher is None else teacher
    loss = F.cross_entropy(logits[-1], labels)
    for z in logits[:-1]:
        loss = loss + (1.0 - gamma) * F.cross_entropy(z, labels)
        loss = loss + gamma * distillation_loss(z, teacher, temperature)
    return loss


def adn_exits_distillation_loss(base_logits: Sequence[Tensor], teacher: Tensor, temperature: float) -> Tensor:
    """Base-net pass of ADN x exits: every base-net exit distils the super-net's (detached) final logits."""
    _check_exits(base_logits)
    if not temperature > 0:
        raise ValueError(f"KD temperature must be > 0, got {temperature}")
    return torch.stack([distillation_loss(z, teacher, temperature) for z in base_logits]).sum()
