"""Quantization-aware fine-tuning of an ADN checkpoint with the same two-loss self-distillation.

For when post-training int8 loses too much. Each segment of the gated program (stage i skipped / run)
is captured and prepared for QAT by PT2E with the XNNPACK quantizer (fake-quantized weights and
activations, conv + BatchNorm folding simulated). The captured segments share their parameters and
norm statistics with the model, so the super-net pass (all run segments, CE) and the base-net pass
(all skip segments, KD from the super-net) train one set of weights, exactly as ``ondevice train``.

The result is an ordinary checkpoint of float weights that were trained under int8 noise;
``ondevice export --quant int8-static`` calibrates and converts it like any other. A killed run
resumes from its last epoch (``--resume``); the fake-quant ranges are re-estimated from that epoch on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import checkpoint_data, load_checkpoint, load_model, save_checkpoint
from .metrics import accuracy
from .models import base_net, model_segments, super_net
from .quant.pt2e import export_for_quantization, xnnpack_quantizer
from .train import TrainConfig, run_epoch, step_function

__all__ = ["QatConfig", "qat_finetune"]

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class QatConfig:
    """Fine-tuning schedule: a few epochs at a small learning rate (cosine to 0)."""

    epochs: int = 2
    lr: float = 0.005
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"QAT needs epochs >= 1, batch_size >= 1 and lr > 0, got {self}")


def _prepare_qat(module: nn.Module, example: Tensor) -> nn.Module:
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    return prepare_qat_pt2e(export_for_quantization(module.train(), example), xnnpack_quantizer(qat=True))


def qat_finetune(
    checkpoint: str | Path,
    out_dir: str | Path,
    cfg: QatConfig | None = None,
    *,
    resume: bool = False,
    data_root: str | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune ``checkpoint`` under fake int8; writes ``out_dir/checkpoint.pt`` after every epoch."""
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    source = load_checkpoint(checkpoint)
    state: dict[str, Any] | None = load_checkpoint(ckpt_path) if resume else None
    if state is not None:
        cfg = QatConfig(**state["qat"]["config"])
    cfg = cfg or QatConfig()
    model, _ = load_model(state or source)
    train_cfg = TrainConfig.from_dict(source["train_config"])
    if train_cfg.method != "adn":
        raise ValueError(f"QAT fine-tunes ADN self-distillation checkpoints, not --method {train_cfg.method}")
    torch.manual_seed(cfg.seed)
    data = checkpoint_data(source, data_root)
    n = model.num_stages
    net = model_segments(model).map(_prepare_qat)  # net(x, gates) chains the fake-quantized segments
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=train_cfg.momentum, nesterov=True, weight_decay=train_cfg.weight_decay
    )
    loader = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * len(loader))
    start_epoch, history = 0, []
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"][0])
        start_epoch, history = state["epoch"], state["history"]
    step = step_function(train_cfg, n)
    for epoch in range(start_epoch, cfg.epochs):  # the captured segments stay in training mode
        gate_rng = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch * 101)  # sandwich picks, as in train
        desc = f"qat epoch {epoch + 1}/{cfg.epochs}"
        seconds = run_epoch(net, loader, step, optimizer, scheduler, gate_rng, desc=desc, progress=progress)["seconds"]
        model.eval()
        record = {
            "epoch": epoch + 1,
            "seconds": seconds,
            "test_top1_super_fp32": accuracy(model, data.test, super_net(n)),
            "test_top1_base_fp32": accuracy(model, data.test, base_net(n)),
        }
        history.append(record)
        save_checkpoint(
            ckpt_path,
            {
                **{k: source[k] for k in ("model_name", "model_kwargs", "data_spec", "train_config")},
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": [torch.get_rng_state()],
                "history": history,
                "world_size": 1,
                "qat": {"from": str(checkpoint), "config": asdict(cfg), "quantizer": "XNNPACK int8 PT2E QAT"},
            },
        )
        if progress:
            tqdm.write(f"qat epoch {epoch + 1}/{cfg.epochs}  " + "  ".join(f"{k}={v:.4f}" for k, v in record.items()))
    return ckpt_path
