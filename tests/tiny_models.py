"""Small models with random norm statistics for the export tests: every norm folds differently."""

import torch
from torch import nn

from ondevice.models import build_model
from ondevice.models.context_norm import ContextBatchNorm2d
from ondevice.models.norm_stats import enable_entry_contexts


def contextual_tiny_model(name: str = "resnet20_adn", seed: int = 0) -> nn.Module:
    """A 16x16 model whose entry norms hold different random statistics for each previous gate."""
    torch.manual_seed(seed)
    model = enable_entry_contexts(build_model(name, num_classes=10, in_chans=1, image_size=16)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, ContextBatchNorm2d):
                for context in ("after_run", "after_skip"):
                    getattr(m, f"running_mean_{context}").uniform_(-0.5, 0.5)
                    getattr(m, f"running_var_{context}").uniform_(0.3, 3.0)
    return model
