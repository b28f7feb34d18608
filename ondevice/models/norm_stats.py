"""Norm statistics of a gated model: exact re-estimation ("precise BN"), entry-norm contexts, refinement gap.

A BatchNorm's running statistics are right only for the inputs they were collected on. Training
leaves momentum averages over the sub-networks it visited; a sub-network that training visited
rarely, or never, is then normalised with another sub-network's statistics.

``recalibrate_norms`` replaces them by exact averages over fixed images, run through every gate
setting with the weights frozen. Averaged over every setting that uses it, one set of statistics per
norm is wrong where a stage's input depends on the gate of the stage before it: the first norms of a
stage (those after the convs that read the stage input, its *entry norms*) see two different input
distributions. With ``entry_contexts=True`` each entry norm becomes a :class:`ContextBatchNorm2d` that
keeps one set of statistics per gate of the previous stage; every other norm already has one set per
gate of its own stage (the ``*_skip`` twins). On resnet20_adn this recovers the accuracy of statistics
re-estimated for each of the 2^S sub-networks separately (docs/sub_networks.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .adn import AdnModel
from .context_norm import ContextBatchNorm2d
from .gates import Gates

__all__ = ["CONTEXT_KEY_SUFFIX", "enable_entry_contexts", "has_entry_contexts", "recalibrate_norms", "refinement_gaps"]

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
CONTEXT_KEY_SUFFIX = ".running_mean_after_skip"  # a state dict with this key holds entry-norm contexts


def _entry_norm_names(model: AdnModel) -> list[str]:
    return [name for index in range(1, model.num_stages) for name in model.entry_norms(index)]


def has_entry_contexts(model: nn.Module) -> bool:
    """Whether the model's entry norms keep statistics per gate of the previous stage."""
    return any(isinstance(m, ContextBatchNorm2d) for m in model.modules())


def enable_entry_contexts(model: AdnModel) -> AdnModel:
    """Turn every stage's entry norms (stages 1..S-1) into :class:`ContextBatchNorm2d`, in place; idempotent.

    Call it before loading a state dict that holds context statistics (``load_model`` does).
    """
    for name in _entry_norm_names(model):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        bn = getattr(parent, attr)
        if not isinstance(bn, ContextBatchNorm2d):
            setattr(parent, attr, ContextBatchNorm2d.from_batch_norm(bn))
    return model


@torch.no_grad()
def recalibrate_norms(
    model: AdnModel,
    images: Tensor,
    settings: Sequence[Gates],
    *,
    entry_contexts: bool = False,
    batch_size: int = 200,
) -> AdnModel:
    """Replace every BatchNorm's running mean/var by exact averages over ``images`` run through ``settings``.

    Each batch goes once through every setting, so a norm shared by several settings gets each of them
    with equal weight. ``entry_contexts``: also keep, for each stage's entry norms, separate averages per
    gate of the previous stage (:func:`enable_entry_contexts`). Weights are untouched; the model is
    returned in eval mode. A model without BatchNorms (ViT's LayerNorms have no statistics) is unchanged.
    """
    if len(images) == 0 or not settings:
        raise ValueError("recalibrating norm statistics needs at least one image and one gate setting")
    if entry_contexts:
        enable_entry_contexts(model)
    norms = [m for m in model.modules() if isinstance(m, _BATCH_NORMS) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts the same
        if isinstance(m, ContextBatchNorm2d):
            m.reset_context_stats()
            m.collect = True
    model.eval()
    for m in norms:
        m.train()  # only the norms collect statistics; dropout and the rest stay in eval mode
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            if len(batch) < 2:  # a batch of one has no variance
                continue
            for gates in settings:
                model(batch, gates)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
            if isinstance(m, ContextBatchNorm2d):
                m.collect = False
                m.fill_unseen_contexts()
        model.eval()
    return model


@torch.no_grad()
def refinement_gaps(model: AdnModel, images: Tensor) -> list[float]:
    """Per stage, ||stage(x) - stage_skipped(x)|| / ||stage(x)|| on the super-net's input to that stage.

    ADN assumes a skippable sub-path only refines its stage's features; a large gap means the
    sub-networks that mix skipped and run stages see inputs the later stages were not trained on.
    """
    was_training = model.training
    model.eval()
    try:
        x = model.forward_stem(images)
        gaps = []
        for index in range(model.num_stages):
            previous = False if index else None
            run = model.run_stage(index, x, False, previous)
            skipped = model.run_stage(index, x, True, previous)
            gaps.append(float((run - skipped).norm() / run.norm().clamp_min(1e-12)))
            x = run
    finally:
        model.train(was_training)
    return gaps
