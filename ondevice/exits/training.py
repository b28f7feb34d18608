"""Multi-exit training methods for ``ondevice train``, registered with ``ondevice.train.register_method``.

    ondevice train --model resnet20_adn --method exits-sum --out runs/sum            # baseline
    ondevice train --model resnet20_adn --method exits-ge  --out runs/ge             # IMTA stage 1
    ondevice train --model resnet20_adn --method exits-imta --init-from runs/ge/checkpoint.pt --out runs/imta

=============  ===  ===  =========  =====================================================
method         GE   ISC  exit loss  trains
=============  ===  ===  =========  =====================================================
exits-sum      no   no   summed     everything (the plain multi-exit baseline)
exits-ge       yes  no   summed     everything (IMTA stage 1)
exits-ofa      no   no   OFA-KD     everything (OFA-KD alone, one stage)
exits-isc      no   yes  summed     new ISC classifiers on a frozen ``--init-from`` network
exits-imta     no   yes  OFA-KD     new ISC classifiers on a frozen ``--init-from`` network (IMTA stage 2)
=============  ===  ===  =========  =====================================================

The IMTA recipe is ``exits-ge`` then ``exits-imta``. ISC is a stage-2 technique here as in the
official code: its classifiers read the frozen stage-1 heads' pooled features, so it always starts
from a trained checkpoint. ``--model`` is any ADN model (exits after its stages, both ADN passes per
step; see ``losses.py`` for how the losses combine) or ``msdnet_tiny``/``msdnet_cifar`` (one pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..checkpoint import load_checkpoint, register_model_loader
from ..models import base_net, build_model, list_models, super_net
from ..train import StepFn, TrainConfig, TrainingMethod, register_method
from .heads import ExitOutput, MultiExitModel, MultiExitNet
from .losses import adn_exits_distillation_loss, ofa_kd_loss, summed_exit_loss
from .msdnet import MSDNET_BUILDERS, build_msdnet

__all__ = ["EXIT_METHODS", "RECIPES", "ExitRecipe", "build_exit_model", "is_exit_method"]


@dataclass(frozen=True)
class ExitRecipe:
    """What one multi-exit method changes: GE in the trunk, ISC classifiers, the exit loss, a frozen trunk."""

    gradient_equilibrium: bool
    isc: bool
    loss: str  # "sum" or "ofa"
    stage2: bool  # starts from --init-from and trains only the ISC classifiers


RECIPES: dict[str, ExitRecipe] = {
    "exits-sum": ExitRecipe(False, False, "sum", False),
    "exits-ge": ExitRecipe(True, False, "sum", False),
    "exits-ofa": ExitRecipe(False, False, "ofa", False),
    "exits-isc": ExitRecipe(False, True, "sum", True),
    "exits-imta": ExitRecipe(False, True, "ofa", True),
}
EXIT_METHODS: tuple[str, ...] = tuple(RECIPES)


def is_exit_method(method: str | None) -> bool:
    """True for the multi-exit training methods (their checkpoints hold a multi-exit model)."""
    return method in RECIPES


def _check_recipe(method: str) -> ExitRecipe:
    if method not in RECIPES:
        raise ValueError(f"unknown multi-exit method {method!r}; choose one of {list(EXIT_METHODS)}")
    return RECIPES[method]


def build_exit_model(
    name: str, model_kwargs: dict[str, Any], method: str, *, init_from: str | Path | None = None, freeze: bool = True
) -> MultiExitNet:
    """The multi-exit network a method trains: an ADN model with exits, or an MSDNet; stage 2 loads ``init_from``.

    Stage 2 (``exits-isc``, ``exits-imta``) adds ISC classifiers, loads every other weight from the
    stage-1 checkpoint ``init_from`` (when given; a resumed or evaluated run has them in its own
    checkpoint) and, with ``freeze`` (for training), freezes all but the ISC classifiers.
    """
    recipe = _check_recipe(method)
    ge = recipe.gradient_equilibrium
    if name in MSDNET_BUILDERS:
        model: MultiExitNet = build_msdnet(name, gradient_equilibrium=ge, **model_kwargs)
    elif name in list_models():
        model = MultiExitModel(build_model(name, **model_kwargs), gradient_equilibrium=ge)
    else:
        raise ValueError(
            f"unknown model {name!r} for {method}; choose an ADN model {list_models()} or {sorted(MSDNET_BUILDERS)}"
        )
    if recipe.stage2:
        model.add_isc()
        if init_from is not None:
            _load_stage1(model, name, init_from, method)
        if freeze:
            model.freeze_trunk()
    elif init_from is not None:
        raise ValueError(f"--init-from is for the stage-2 methods exits-isc and exits-imta, not {method}")
    return model


def _load_stage1(model: MultiExitNet, name: str, path: str | Path, method: str) -> None:
    state = load_checkpoint(path)
    stage1 = state.get("train_config", {}).get("method")
    if not is_exit_method(stage1) or RECIPES[stage1].stage2:
        raise ValueError(
            f"--init-from {path}: {method} needs a stage-1 multi-exit checkpoint (exits-ge for the IMTA recipe, "
            f"or exits-sum / exits-ofa), not one trained with --method {stage1}"
        )
    if state["model_name"] != name:
        raise ValueError(f"--init-from {path} holds a {state['model_name']!r}, but --model is {name!r}")
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    missing = [k for k in missing if not k.startswith("isc.")]
    if missing or unexpected:
        raise ValueError(
            f"--init-from {path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )


def _exits_step(cfg: TrainConfig, num_stages: int) -> StepFn:
    """One batch of a multi-exit method: the exit loss; for ADN models, the super-net and base-net passes."""
    recipe = _check_recipe(cfg.method)

    def exit_loss(out: ExitOutput, y: Tensor) -> Tensor:
        if recipe.loss == "sum":
            return summed_exit_loss(out.logits, y)
        return ofa_kd_loss(out.logits, y, teacher=out.teacher, gamma=cfg.ofa_gamma, temperature=cfg.ofa_temperature)

    if num_stages == 0:  # no depth gates (MSDNet): one pass

        def step(model: nn.Module, x: Tensor, y: Tensor, _: torch.Generator) -> dict[str, float]:
            loss = exit_loss(model(x, None, exits=True), y)
            loss.backward()
            return {"loss": loss.item()}

        return step

    full, base = super_net(num_stages), base_net(num_stages)

    def adn_step(model: nn.Module, x: Tensor, y: Tensor, _: torch.Generator) -> dict[str, float]:
        out = model(x, full, exits=True)
        loss_super = cfg.alpha * exit_loss(out, y)
        loss_super.backward()
        out_base = model(x, base, exits=True)
        loss_base = (1.0 - cfg.alpha) * adn_exits_distillation_loss(out_base.logits, out.teacher, cfg.temperature)
        loss_base.backward()
        return {"loss_super": loss_super.item(), "loss_base": loss_base.item()}

    return adn_step


def _train_build(cfg: TrainConfig, model_kwargs: dict[str, Any]) -> MultiExitNet:
    return build_exit_model(cfg.model, model_kwargs, cfg.method, init_from=cfg.init_from)


for _method, _recipe in RECIPES.items():
    register_method(
        _method, TrainingMethod(_exits_step, build=_train_build, gated=False, needs_init_from=_recipe.stage2)
    )
    register_model_loader(_method, partial(build_exit_model, method=_method, freeze=False))
