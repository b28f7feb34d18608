"""Training: ADN self-distillation and the two baselines it is compared with.

One process:      ondevice train --model resnet20_adn --data mnist --epochs 8 --out runs/adn
Two CPU workers:  torchrun --standalone --nproc_per_node=2 -m ondevice train --out runs/adn-ddp
Resume a killed run from its last epoch:  ondevice train --out runs/adn --resume

Methods (``--method``):
  adn          each step: super-net CE (weight alpha), backward; base-net KD from the detached
               super-net logits (weight (1-alpha) T^2), backward; one optimizer step.
  static       plain CE on one fixed gate setting (``--gates``; default the super-net): an
               individually trained network of that depth.
  random-skip  LayerDrop-style: each step every stage is skipped with probability ``skip_prob``
               (with its *_skip norms), plain CE on that sub-network.
Other methods register themselves with ``register_method``: ``ondevice.exits`` adds the multi-exit
methods ``exits-*`` (exits after every stage, combined with the two ADN passes; also MSDNet).
The official code distils on the teacher's top-k logits (k=500 of 1000 ImageNet classes); with the
few classes of the data sets here all logits are used.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .data import DataSpec, DataSplits, load_data, sample_images
from .metrics import accuracy
from .models import AdnModel, Gates, all_gates, base_net, build_model, covering_gates, super_net
from .models.norm_stats import has_entry_contexts, recalibrate_norms

__all__ = [
    "METHODS",
    "StepFn",
    "TrainConfig",
    "TrainingMethod",
    "add_train_args",
    "add_train_parsers",
    "adn_distillation_loss",
    "config_from_args",
    "feature_distillation_loss",
    "norm_settings",
    "precise_norms",
    "recalibrate_checkpoint",
    "register_method",
    "run_epoch",
    "step_function",
    "train",
]

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in its checkpoint so ``--resume`` rebuilds the same run."""

    model: str = "resnet20_adn"
    data: str = "mnist"
    data_root: str | None = None
    image_size: int | None = None
    limit: int | None = None
    method: str = "adn"
    gates: str | None = None  # static: the gate setting trained (default super-net)
    skip_prob: float = 0.5  # random-skip: probability that a stage skips its skippable sub-path
    alpha: float = 0.5  # adn: weight of the super-net's label loss; the base-net's KD gets 1 - alpha
    temperature: float = 1.0  # adn: KD temperature T
    sandwich: int = 1  # adn: mixed sub-networks per step, each distilled from the super-net (0: the paper's 2 passes)
    feature_kd: float = 0.0  # adn: weight of the stage-output distillation towards the super-net's (official --fpn)
    norm_images: int = 2000  # training images for exact norm statistics after training (0: keep momentum averages)
    entry_contexts: bool = True  # entry norms keep statistics per gate of the previous stage (with norm_images)
    ofa_gamma: float = 0.9  # exits-ofa/imta: weight of the KD term of OFA-KD (IMTA: 0.9 CIFAR, 0.1 ImageNet)
    ofa_temperature: float = 3.0  # exits-ofa/imta: OFA-KD temperature (IMTA: 3 CIFAR, 1 ImageNet)
    init_from: str | None = None  # exits-isc/imta: the stage-1 checkpoint whose frozen network gets ISC heads
    epochs: int = 6
    batch_size: int = 64
    lr: float = 0.1  # ADN halves each trained sub-network's gradient (alpha, 1 - alpha): 0.05 left it short (docs)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown training method {self.method!r}; choose one of {list(METHODS)}")
        if self.gates is not None and self.method != "static":
            raise ValueError(f"--gates is for --method static, not {self.method!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.sandwich < 0 or self.feature_kd < 0 or self.norm_images < 0:
            raise ValueError(
                f"sandwich, feature_kd and norm_images must be >= 0, got {self.sandwich}, {self.feature_kd}, "
                f"{self.norm_images}"
            )
        if not 0.0 <= self.skip_prob <= 1.0:
            raise ValueError(f"skip_prob must be in [0, 1], got {self.skip_prob}")
        if not 0.0 <= self.ofa_gamma <= 1.0 or not self.ofa_temperature > 0:
            raise ValueError(
                f"need 0 <= ofa_gamma <= 1 and ofa_temperature > 0, got {self.ofa_gamma}, {self.ofa_temperature}"
            )
        needs_init = [name for name, method in METHODS.items() if method.needs_init_from]
        if (self.init_from is not None) != (self.method in needs_init):
            raise ValueError(f"--init-from STAGE1_CHECKPOINT is required by {needs_init}, and only by them")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (0.0 <= self.momentum < 1.0) or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"need 0 <= momentum < 1 and weight_decay >= 0, got {self.momentum}, {self.weight_decay}")
        if self.gates is not None and not self.gates.strip():
            raise ValueError("--gates '' names no gate setting; give one letter per stage, e.g. --gates TTF")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def adn_distillation_loss(z_base: Tensor, z_super: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(softmax(z_super / T) || softmax(z_base / T)), batch mean; the teacher is detached."""
    teacher = F.softmax(z_super.detach() / temperature, dim=1)
    student = F.log_softmax(z_base / temperature, dim=1)
    return temperature**2 * F.kl_div(student, teacher, reduction="batchmean")


# One function per method: forward(s) and backward(s) of one batch; the loop does the optimizer step.
StepFn = Callable[[nn.Module, Tensor, Tensor, torch.Generator], dict[str, float]]


@dataclass(frozen=True)
class TrainingMethod:
    """What ``--method`` chooses: the per-batch step, the network it trains, and what follows training."""

    step: Callable[[TrainConfig, int], StepFn]
    # the network trained, from (config, model kwargs); None: the registry's gated ADN model
    build: Callable[[TrainConfig, dict[str, Any]], nn.Module] | None = None
    gated: bool = True  # an ADN model whose norm statistics are made exact after training
    needs_init_from: bool = False  # starts from another run's checkpoint (--init-from)


METHODS: dict[str, TrainingMethod] = {}


def register_method(name: str, method: TrainingMethod) -> None:
    """Make ``name`` a choice of ``--method`` (``ondevice.exits`` registers its multi-exit methods)."""
    if name in METHODS and METHODS[name] != method:
        raise ValueError(f"training method {name!r} is already registered")
    METHODS[name] = method


def feature_distillation_loss(stages: list[Tensor], teacher: list[Tensor]) -> Tensor:
    """Mean over stages of MSE(student stage output, detached super-net stage output)."""
    return torch.stack([F.mse_loss(s, t.detach()) for s, t in zip(stages, teacher, strict=True)]).mean()


def _adn_step(cfg: TrainConfig, num_stages: int) -> StepFn:
    """The paper's two passes (super-net CE, base-net KD), then ``cfg.sandwich`` mixed sub-networks with KD.

    The mixed passes are the sandwich rule of universally slimmable networks: the sub-networks ADN never
    trains still get gradients, so every norm learns the inputs of every gate context it meets.
    """
    full, base = super_net(num_stages), base_net(num_stages)
    mixed = [g for g in all_gates(num_stages) if not (g.is_super_net or g.is_base_net)]

    def forward(model: nn.Module, x: Tensor, gates: Gates, stages: list[Tensor]) -> Tensor:
        # Only a model asked for feature distillation needs to report stage outputs (QAT chains segments).
        return model(x, gates, stage_outputs=stages) if cfg.feature_kd else model(x, gates)

    def distil(model: nn.Module, x: Tensor, gates: Gates, z_super: Tensor, f_super: list[Tensor]) -> Tensor:
        stages: list[Tensor] = []
        z = forward(model, x, gates, stages)
        loss = (1.0 - cfg.alpha) * adn_distillation_loss(z, z_super, cfg.temperature)
        if cfg.feature_kd:
            loss = loss + cfg.feature_kd * feature_distillation_loss(stages, f_super)
        loss.backward()
        return loss

    def step(model: nn.Module, x: Tensor, y: Tensor, rng: torch.Generator) -> dict[str, float]:
        f_super: list[Tensor] = []
        z_super = forward(model, x, full, f_super)
        loss_super = cfg.alpha * F.cross_entropy(z_super, y)
        loss_super.backward()
        losses = {"loss_super": loss_super.item(), "loss_base": distil(model, x, base, z_super, f_super).item()}
        if cfg.sandwich and mixed:
            picks = torch.randint(len(mixed), (cfg.sandwich,), generator=rng).tolist()
            mixed_loss = sum(distil(model, x, mixed[i], z_super, f_super).item() for i in picks)
            losses["loss_mixed"] = mixed_loss / cfg.sandwich
        return losses

    return step


def _static_step(cfg: TrainConfig, num_stages: int) -> StepFn:
    gates = Gates.parse(cfg.gates, num_stages) if cfg.gates else super_net(num_stages)

    def step(model: nn.Module, x: Tensor, y: Tensor, _: torch.Generator) -> dict[str, float]:
        loss = F.cross_entropy(model(x, gates), y)
        loss.backward()
        return {"loss": loss.item()}

    return step


def _random_skip_step(cfg: TrainConfig, num_stages: int) -> StepFn:
    def step(model: nn.Module, x: Tensor, y: Tensor, rng: torch.Generator) -> dict[str, float]:
        skip = torch.rand(num_stages, generator=rng) < cfg.skip_prob
        loss = F.cross_entropy(model(x, Gates(tuple(skip.tolist()))), y)
        loss.backward()
        return {"loss": loss.item()}

    return step


register_method("adn", TrainingMethod(_adn_step))
register_method("static", TrainingMethod(_static_step))
register_method("random-skip", TrainingMethod(_random_skip_step))


def step_function(cfg: TrainConfig, num_stages: int) -> StepFn:
    """Forward(s) and backward(s) of one batch for ``cfg.method``, on any ``net(x, gates)``; the caller steps."""
    return METHODS[cfg.method].step(cfg, num_stages)


def _check_resume_options(cfg: TrainConfig, stored: TrainConfig, out_dir: Path) -> None:
    """A resumed run keeps its checkpoint's configuration: options set away from their defaults must agree."""
    default = TrainConfig()
    changed = [
        f"{f.name}={getattr(cfg, f.name)!r} (run: {getattr(stored, f.name)!r})"
        for f in fields(TrainConfig)
        if f.name != "model_kwargs"
        and getattr(cfg, f.name) != getattr(default, f.name)
        and getattr(cfg, f.name) != getattr(stored, f.name)
    ]
    if changed:
        raise ValueError(
            f"--resume continues the run in {out_dir} as its checkpoint configures it; these options differ: "
            f"{', '.join(changed)}. Start a new run (another --out) to change them"
        )


def run_epoch(
    net: nn.Module,
    loader: DataLoader,
    step_fn: StepFn,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    gate_rng: torch.Generator,
    *,
    desc: str,
    device: torch.device | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """One pass over ``loader``, one optimizer and scheduler step per batch (``ondevice train`` and QAT);
    returns seconds, images per second and the mean of each loss."""
    totals: dict[str, float] = {}
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for x, y in bar:
        optimizer.zero_grad(set_to_none=True)
        losses = step_fn(net, x.to(device) if device else x, y.to(device) if device else y, gate_rng)
        optimizer.step()
        scheduler.step()
        for k, v in losses.items():
            totals[k] = totals.get(k, 0.0) + v
        bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "images_per_s": len(loader) * (loader.batch_size or 1) / seconds,
        **{k: v / len(loader) for k, v in totals.items()},
    }


@dataclass
class _Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_master(self) -> bool:
        return self.rank == 0


def _setup_distributed() -> _Distributed:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; gloo on CPU, NCCL on GPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return _Distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return _Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _build(cfg: TrainConfig, spec: DataSpec) -> nn.Module:
    kwargs = {
        "num_classes": spec.num_classes,
        "in_chans": spec.in_chans,
        "image_size": spec.image_size,
        "mean": spec.mean,
        "std": spec.std,
        **cfg.model_kwargs,
    }
    cfg.model_kwargs = kwargs
    build = METHODS[cfg.method].build
    return build(cfg, kwargs) if build is not None else build_model(cfg.model, **kwargs)


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    data: DataSplits | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Train (or resume) a run in ``out_dir``; returns the path of its checkpoint, written after every epoch.

    A run already in ``out_dir`` is continued with ``resume`` (as configured in its checkpoint) and otherwise
    kept: starting over in its place needs ``overwrite``.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    state: dict[str, Any] | None = None
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no {CHECKPOINT_NAME} in {out_dir}; start the run without --resume")
        state = load_checkpoint(ckpt_path)
        stored = TrainConfig.from_dict(state["train_config"])
        _check_resume_options(cfg, stored, out_dir)
        cfg = stored
    elif ckpt_path.exists() and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds a run ({ckpt_path}); continue it with --resume, or train into another --out"
        )
    ddp = _setup_distributed()
    device = torch.device(f"cuda:{ddp.local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and ddp.world_size > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // ddp.world_size))
    torch.manual_seed(cfg.seed + ddp.rank)

    data = data or load_data(cfg.data, cfg.data_root, image_size=cfg.image_size, seed=cfg.seed, limit=cfg.limit)
    if progress and ddp.is_master:
        tqdm.write(f"data {data.summary()}")
    model = _build(cfg, data.spec).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
    )
    sampler = DistributedSampler(
        data.train, num_replicas=ddp.world_size, rank=ddp.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    loader = DataLoader(data.train, batch_size=cfg.batch_size, sampler=sampler, drop_last=True)
    if len(loader) == 0:
        raise ValueError(
            f"{len(data.train)} training images make no full batch of {cfg.batch_size} (per process): "
            "lower --batch-size or use more images (--limit)"
        )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * len(loader))
    start_epoch, history = 0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if len(state["rng"]) != ddp.world_size:
            raise ValueError(
                f"{ckpt_path} was written by {len(state['rng'])} process(es); resume it with the same number "
                f"(torchrun --nproc_per_node={len(state['rng'])}), not {ddp.world_size}"
            )
        torch.set_rng_state(state["rng"][ddp.rank])
        start_epoch, history = state["epoch"], state["history"]
    net: nn.Module = model
    if ddp.world_size > 1:
        # Every method leaves some parameters unused in a step (skippable blocks or *_skip norms).
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    step_fn = step_function(cfg, model.num_stages)

    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        gate_rng = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch * 101 + ddp.rank)
        net.train()
        record = {
            "epoch": epoch + 1,
            **run_epoch(
                net,
                loader,
                step_fn,
                optimizer,
                scheduler,
                gate_rng,
                desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
                device=device,
                progress=progress and ddp.is_master,
            ),
        }
        record["images_per_s"] *= ddp.world_size
        seconds = record["seconds"]
        rng_states = _gather_rng_states(ddp)
        if ddp.is_master:
            n = model.num_stages
            if n == 0:  # no depth gates (MSDNet)
                record["test_top1"] = accuracy(model, data.test, None)
            else:
                record["test_top1_super"] = accuracy(model, data.test, super_net(n))
                record["test_top1_base"] = accuracy(model, data.test, base_net(n))
            history.append(record)
            save_checkpoint(
                ckpt_path,
                {
                    "model_name": cfg.model,
                    "model_kwargs": cfg.model_kwargs,
                    "data_spec": data.spec.to_dict(),
                    "train_config": asdict(cfg),
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng_states,
                    "history": history,
                    "world_size": ddp.world_size,
                },
            )
            if progress:
                tqdm.write(
                    f"epoch {epoch + 1}/{cfg.epochs}  {seconds:.1f}s  "
                    + "  ".join(f"{k}={v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds"))
                )
        if ddp.world_size > 1:
            dist.barrier()
    precise_done = state is not None and "norm_stats" in state
    if ddp.is_master and cfg.norm_images and METHODS[cfg.method].gated and not precise_done:
        _save_precise_norms(ckpt_path, model, cfg, data, progress)
    if ddp.world_size > 1:
        dist.barrier()
    return ckpt_path


def norm_settings(cfg: TrainConfig, num_stages: int) -> list[Gates]:
    """The gate settings a method's norm statistics are averaged over: the one a static network trains,
    else every setting (the covering ones past 5 stages)."""
    if cfg.method == "static":
        return [Gates.parse(cfg.gates, num_stages) if cfg.gates else super_net(num_stages)]
    return all_gates(num_stages) if num_stages <= 5 else covering_gates(num_stages)


def precise_norms(model: AdnModel, cfg: TrainConfig, data: DataSplits, images: int | None = None) -> dict[str, Any]:
    """Replace the model's norm statistics by exact ones over ``images`` (default ``cfg.norm_images``) training
    images and the method's gate settings; returns the record a checkpoint keeps under ``norm_stats``."""
    count = min(cfg.norm_images if images is None else images, len(data.train))
    if count < 2:
        raise ValueError(f"exact norm statistics need at least 2 training images, got {count}")
    settings = norm_settings(cfg, model.num_stages)
    images = sample_images(data.train, count, seed=cfg.seed)
    recalibrate_norms(model, images, settings, entry_contexts=cfg.entry_contexts)
    return {
        "kind": "precise",
        "images": count,
        "settings": [str(g) for g in settings],
        "entry_contexts": has_entry_contexts(model),
    }


def _save_precise_norms(ckpt_path: Path, model: AdnModel, cfg: TrainConfig, data: DataSplits, progress: bool) -> None:
    """After the last epoch: exact norm statistics into the checkpoint, and the last epoch's accuracy with them."""
    state = load_checkpoint(ckpt_path)
    state["norm_stats"] = precise_norms(model, cfg, data)
    state["model"] = model.state_dict()
    record = state["history"][-1]
    record["test_top1_super"] = accuracy(model, data.test, super_net(model.num_stages))
    record["test_top1_base"] = accuracy(model, data.test, base_net(model.num_stages))
    save_checkpoint(ckpt_path, state)
    if progress:
        tqdm.write(
            f"exact norm statistics ({state['norm_stats']['images']} images x {len(state['norm_stats']['settings'])} "
            f"gate settings): super-net {record['test_top1_super']:.4f}, base-net {record['test_top1_base']:.4f}"
        )


def recalibrate_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    images: int = TrainConfig.norm_images,
    entry_contexts: bool = True,
    data_root: str | None = None,
) -> Path:
    """A copy of ``checkpoint`` at ``out`` with exact norm statistics (converts checkpoints trained before them).

    ``out`` must not exist yet: the user's files are never overwritten.
    """
    from .checkpoint import checkpoint_data, load_model

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; pass a new --out path (the original checkpoint is kept as it is)")
    model, state = load_model(checkpoint)
    if not METHODS[state["train_config"]["method"]].gated:
        raise ValueError("exact norm statistics are for gated models; multi-exit checkpoints keep their own")
    cfg = TrainConfig.from_dict({**state["train_config"], "entry_contexts": entry_contexts})
    state["norm_stats"] = precise_norms(model, cfg, checkpoint_data(state, data_root), images)
    state["model"] = model.state_dict()
    return save_checkpoint(out, state)


def _gather_rng_states(ddp: _Distributed) -> list[Tensor]:
    """Every rank's torch RNG state (dropout etc.), so a resumed run draws the same numbers."""
    state = torch.get_rng_state()
    if ddp.world_size == 1:
        return [state]
    gathered: list[Any] = [None] * ddp.world_size
    dist.all_gather_object(gathered, state)
    return gathered


# ---------------------------------------------------------------------------------------------------
# CLI


def _add_entry_contexts_arg(p: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    p.add_argument(
        "--entry-contexts",
        action=argparse.BooleanOptionalAction,
        default=defaults.entry_contexts,
        help="entry norms keep statistics per gate of the previous stage",
    )


def add_train_args(p: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """The options ``ondevice train`` shares with ``ondevice compare``: data, schedule, norm statistics."""
    p.add_argument("--model", default=defaults.model, help="registry name (see `ondevice models`)")
    p.add_argument("--data", default=defaults.data, help="mnist (embedded), digits, imagefolder, cifar10")
    p.add_argument("--data-root", default=None, help="directory for imagefolder / cifar10")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this size")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--norm-images",
        type=int,
        default=defaults.norm_images,
        help="training images for exact norm statistics after training (0: keep the momentum averages)",
    )
    _add_entry_contexts_arg(p, defaults)


def config_from_args(args: argparse.Namespace, **overrides: object) -> TrainConfig:
    """The ``TrainConfig`` the parsed options describe."""
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in known}
    return TrainConfig(**{**values, **overrides})


def add_train_parsers(verbs: Any) -> None:
    """``ondevice train`` and ``ondevice recalibrate``."""
    defaults = TrainConfig()
    train = verbs.add_parser("train", help="data -> checkpoint (ADN self-distillation or a baseline)")
    add_train_args(train, defaults)
    train.add_argument("--method", choices=list(METHODS), default=defaults.method)
    train.add_argument("--gates", default=None, help="static: the gate setting to train, e.g. TTF")
    train.add_argument("--skip-prob", type=float, default=defaults.skip_prob, help="random-skip: P(stage skipped)")
    train.add_argument("--alpha", type=float, default=defaults.alpha, help="adn: super-net CE weight")
    train.add_argument("--temperature", type=float, default=defaults.temperature, help="adn: KD temperature")
    train.add_argument(
        "--sandwich", type=int, default=defaults.sandwich, help="adn: mixed sub-networks distilled per step (0: paper)"
    )
    train.add_argument(
        "--feature-kd", type=float, default=defaults.feature_kd, help="adn: weight of stage-output distillation"
    )
    train.add_argument("--init-from", default=None, help="exits-isc/imta: stage-1 checkpoint (e.g. an exits-ge run)")
    train.add_argument("--ofa-gamma", type=float, default=defaults.ofa_gamma, help="exits-ofa/imta: KD weight")
    train.add_argument("--ofa-temperature", type=float, default=defaults.ofa_temperature, help="OFA-KD temperature")
    train.add_argument("--out", required=True, help="run directory (checkpoint.pt is written there each epoch)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.set_defaults(run=_run_train)

    recalibrate = verbs.add_parser(
        "recalibrate", help="checkpoint -> a copy with exact norm statistics (for checkpoints trained without them)"
    )
    recalibrate.add_argument("checkpoint")
    recalibrate.add_argument("--out", required=True, help="the new checkpoint (must not exist)")
    recalibrate.add_argument("--images", type=int, default=defaults.norm_images, help="training images to use")
    _add_entry_contexts_arg(recalibrate, defaults)
    recalibrate.add_argument("--data-root", default=None, help="override the data directory of the checkpoint")
    recalibrate.set_defaults(run=_run_recalibrate)


def _run_train(args: argparse.Namespace) -> int:
    path = train(config_from_args(args), args.out, resume=args.resume)
    print(f"checkpoint: {path}")
    return 0


def _run_recalibrate(args: argparse.Namespace) -> int:
    path = recalibrate_checkpoint(
        args.checkpoint, args.out, images=args.images, entry_contexts=args.entry_contexts, data_root=args.data_root
    )
    print(f"checkpoint with exact norm statistics: {path}")
    return 0
