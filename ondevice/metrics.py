"""Top-1 accuracy of one sub-network on a data set: the number every stage reports and compares."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .models.gates import Gates
from .models.modes import eval_mode

__all__ = ["accuracy"]


@torch.no_grad()
def accuracy(model: nn.Module, data: TensorDataset, gates: Gates | None, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of one sub-network on a data set (gates None: a model without gates)."""
    device = next(model.parameters()).device
    correct = 0
    with eval_mode(model):
        for x, y in DataLoader(data, batch_size=batch_size):
            correct += (model(x.to(device), gates).argmax(1) == y.to(device)).sum().item()
    return correct / len(data)
