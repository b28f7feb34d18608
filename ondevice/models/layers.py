"""Layers whose exported graph XNNPACK delegates whole, for the transformer ADN models."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LayerNorm"]


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last dim that, under ``torch.export``, is written with XNNPACK's ops.

    XNNPACK (ExecuTorch 1.5) takes no ``layer_norm`` and averages only the last two dims of a 4D
    tensor, so the exported form views ``[..., C]`` as ``[M, C, 1]``-shaped 4D and normalises with
    ``mean``/``rsqrt``; eager keeps the fused kernel. Parameters and state-dict keys are ``nn.LayerNorm``'s.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not torch.compiler.is_exporting():
            return super().forward(x)
        if len(self.normalized_shape) != 1:
            raise ValueError(f"the exported LayerNorm normalises the last dim only, not {self.normalized_shape}")
        shape = x.shape
        x4 = x.reshape(1, -1, shape[-1], 1)  # [1, M, C, 1]: mean over dims (2, 3) is over C
        centred = x4 - x4.mean(dim=(2, 3), keepdim=True)
        variance = (centred * centred).mean(dim=(2, 3), keepdim=True)
        y = (centred * torch.rsqrt(variance + self.eps)).reshape(shape)
        return y * self.weight + self.bias if self.elementwise_affine else y
