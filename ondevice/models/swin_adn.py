"""Swin-ADN (Kang et al., "Adaptive Depth Networks with Skippable Sub-Paths", NeurIPS 2024).

Swin Transformer (Liu et al., ICCV 2021) with torchvision's semantics: patchify + LayerNorm
(``pre``), four stages of (shifted-)window attention blocks joined by patch merging, then
LayerNorm, global average pool and ``head``. Each stage's first ``n_mandatory(depth)`` blocks are
mandatory and own ``norm1_skip``/``norm2_skip``; the rest are skippable. Every patch merging owns
a ``norm_skip`` and follows the gate of the stage *after* it, so stage ``s`` here is
"merge into stage s, then its blocks". ``pre``, ``norm`` and ``head`` are never switched.
State-dict keys are the official checkpoints' (tests/official/swin_t_adn.keys.json):
torchvision's ``features.0`` is ``pre`` and torchvision's ``features.k+1`` is ``features.k``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register_model
from .adn import IMAGENET_MEAN, IMAGENET_STD, AdnModel, AdnStage, InputSpec, add_skip_norms, n_mandatory

__all__ = ["AdnSwinTransformer", "PatchMerging", "ShiftedWindowAttention", "SwinBlock", "swin_t_adn"]

LN_EPS = 1e-5  # Swin's LayerNorm eps (torchvision and the official code); ViT uses 1e-6
MASKED = -100.0  # score added between tokens of different regions in a shifted window (the official value)


class Permute(nn.Module):
    """``x.permute(*dims)`` as a module, so ``pre`` keeps the official indices (conv ``pre.0``, norm ``pre.2``)."""

    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


class StochasticDepth(nn.Module):
    """Drop a residual branch for whole samples while training (row mode), rescaling the kept ones."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep if keep > 0.0 else x * mask


# --- windows -----------------------------------------------------------------------------------------------------


def window_partition(x: Tensor, window: tuple[int, int]) -> Tensor:
    """[B, H, W, C] -> [B * windows, wh * ww, C], windows in row-major order; H, W multiples of the window."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: Tensor, window: tuple[int, int], height: int, width: int) -> Tensor:
    """Inverse of ``window_partition``: [B * windows, wh * ww, C] -> [B, H, W, C]."""
    wh, ww = window
    c = windows.shape[-1]
    x = windows.view(-1, height // wh, width // ww, wh, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, height, width, c)


def shifted_window_mask(height: int, width: int, window: tuple[int, int], shift: tuple[int, int]) -> Tensor:
    """[windows, N, N] additive mask for a cyclically shifted map: 0 within a region, -100 across regions.

    After rolling by ``-shift`` the windows on the bottom/right edge hold tokens that were not
    neighbours in the image; each axis has three regions (before ``size - window``, up to
    ``size - shift``, the rest) and tokens attend only within their region.
    """

    def regions(size: int, win: int, sh: int) -> Tensor:
        index = torch.arange(size)
        return (index >= size - win).long() + (index >= size - sh).long()

    labels = regions(height, window[0], shift[0])[:, None] * 3 + regions(width, window[1], shift[1])[None, :]
    labels = window_partition(labels[None, :, :, None].float(), window).squeeze(-1)  # [windows, N]
    different = labels[:, None, :] != labels[:, :, None]
    return torch.zeros(different.shape).masked_fill(different, MASKED)


def relative_position_index(window: tuple[int, int]) -> Tensor:
    """[N * N] int64: for each (query, key) pair in a window, its row in the relative position bias table."""
    wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)  # [2, N]
    dy, dx = coords[:, :, None] - coords[:, None, :]  # [N, N] each, in -(w-1) .. w-1
    return ((dy + wh - 1) * (2 * ww - 1) + (dx + ww - 1)).flatten()


class ShiftedWindowAttention(nn.Module):
    """Multi-head self-attention inside (optionally shifted) windows, with a relative position bias.

    The map is padded (bottom/right) to whole windows; a shift is dropped on an axis whose padded size
    fits in one window. Shifted maps are rolled by ``-shift``, attended with the region mask, rolled back.
    """

    def __init__(
        self,
        dim: int,
        window_size: tuple[int, int],
        shift_size: tuple[int, int],
        num_heads: int,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.window_size = tuple(window_size)
        self.shift_size = tuple(shift_size)
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(self.window_size))

    def relative_position_bias(self) -> Tensor:
        """[1, heads, N, N] bias added to the attention scores of every window."""
        n = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index].view(n, n, -1)
        return bias.permute(2, 0, 1).unsqueeze(0)

    def forward(self, x: Tensor) -> Tensor:
        """[B, H, W, C] -> [B, H, W, C]."""
        b, h, w, c = x.shape
        wh, ww = self.window_size
        x = F.pad(x, (0, 0, 0, (-w) % ww, 0, (-h) % wh))
        padded_h, padded_w = x.shape[1:3]
        shift = (
            0 if wh >= padded_h else self.shift_size[0],
            0 if ww >= padded_w else self.shift_size[1],
        )
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))

        windows = window_partition(x, self.window_size)  # [B*nW, N, C]
        nw_b, n, _ = windows.shape
        qkv = self.qkv(windows).reshape(nw_b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B*nW, heads, N, head_dim]
        scores = (q * (c // self.num_heads) ** -0.5) @ k.transpose(-2, -1)
        scores = scores + self.relative_position_bias()
        if any(shift):
            mask = shifted_window_mask(padded_h, padded_w, self.window_size, shift).to(scores)  # [nW, N, N]
            scores = scores.view(b, -1, self.num_heads, n, n) + mask[None, :, None]
            scores = scores.view(nw_b, self.num_heads, n, n)
        attn = F.dropout(scores.softmax(dim=-1), p=self.attention_dropout, training=self.training)
        out = (attn @ v).transpose(1, 2).reshape(nw_b, n, c)
        out = F.dropout(self.proj(out), p=self.dropout, training=self.training)

        x = window_reverse(out, self.window_size, padded_h, padded_w)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :h, :w, :].contiguous()


# --- blocks ------------------------------------------------------------------------------------------------------


class SwinBlock(nn.Module):
    """``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``, on [B, H, W, C] maps.

    Mandatory blocks own ``norm1_skip``/``norm2_skip`` and use them when called with ``skip=True``;
    as in the official code that path also bypasses stochastic depth (it matters only in training).
    """

    norm_names = ("norm1", "norm2")

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: tuple[int, int],
        shift_size: tuple[int, int],
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        stochastic_depth_prob: float = 0.0,
        *,
        skippable: bool = False,
    ) -> None:
        super().__init__()
        self.skippable = skippable
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = ShiftedWindowAttention(dim, window_size, shift_size, num_heads, attention_dropout, dropout)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        hidden = int(dim * mlp_ratio)  # torchvision's MLP: the Linears are mlp.0 and mlp.3
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        if not skippable:  # registered last, so the keys follow mlp.* as in the official state dict
            add_skip_norms(self, self.norm_names)

    def forward(self, x: Tensor, skip: bool = False) -> Tensor:
        if skip and not self.skippable:
            x = x + self.attn(self.norm1_skip(x))
            return x + self.mlp(self.norm2_skip(x))
        x = x + self.stochastic_depth(self.attn(self.norm1(x)))
        return x + self.stochastic_depth(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halve H and W, double C: concatenate each 2x2 neighbourhood (4C), LayerNorm, Linear to 2C.

    Owns ``norm_skip``, used when the stage that follows is skipped.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim, eps=LN_EPS)
        add_skip_norms(self, ("norm",))

    def forward(self, x: Tensor, skip: bool = False) -> Tensor:
        """[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]; odd sizes are zero-padded at the bottom/right."""
        h, w = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        x = self.norm_skip(x) if skip else self.norm(x)
        return self.reduction(x)


# --- the network -------------------------------------------------------------------------------------------------


class AdnSwinTransformer(AdnModel):
    """Swin Transformer whose stages each have a skippable tail (second half of their blocks).

    ``features`` alternates stages and patch mergings: ``[stage0, merge, stage1, merge, ...]``.
    Stage ``s`` (its gate) runs ``features[2s - 1]`` (merging, s > 0) and then ``features[2s]``.

    Args:
        patch_size: side of the square patches of the stem.
        embed_dim: channels of stage 0; doubled by every patch merging.
        depths: blocks per stage (each >= 2); block ``i`` of a stage uses a shifted window when ``i`` is odd.
        num_heads: attention heads per stage.
        window_size: side of the square attention windows.
        mlp_ratio: MLP hidden width over block width.
        num_classes: classifier outputs.
        in_chans: input channels.
        image_size: the input size this model is meant for (any size runs; recorded in checkpoints and bundles).
        dropout, attention_dropout: dropout rates (0 in the official recipe).
        stochastic_depth_prob: drop-path rate of the last block, rising linearly from 0 (official Swin-T: 0.1).
        mean, std: the normalisation this model's inputs get.
    """

    def __init__(
        self,
        patch_size: int,
        embed_dim: int,
        depths: tuple[int, ...],
        num_heads: tuple[int, ...],
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        image_size: int = 224,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        stochastic_depth_prob: float = 0.1,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} must have one entry per stage")
        self.num_stages = len(depths)
        self.input_spec = InputSpec(in_chans, image_size, tuple(mean), tuple(std))
        self.pre = nn.Sequential(
            nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size),
            Permute((0, 2, 3, 1)),  # channels last from here on: [B, H, W, C]
            nn.LayerNorm(embed_dim, eps=LN_EPS),
        )

        window = (window_size, window_size)
        total_blocks, block_id = sum(depths), 0
        features: list[nn.Module] = []
        for index, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            dim = embed_dim * 2**index
            if index > 0:
                features.append(PatchMerging(dim // 2))
            n_mand = n_mandatory(depth)
            blocks = []
            for i in range(depth):
                shift = (0, 0) if i % 2 == 0 else (window_size // 2, window_size // 2)
                drop_path = stochastic_depth_prob * block_id / max(total_blocks - 1, 1)
                block = SwinBlock(
                    dim, heads, window, shift, mlp_ratio, dropout, attention_dropout, drop_path, skippable=i >= n_mand
                )
                blocks.append(block)
                block_id += 1
            features.append(AdnStage(blocks, n_mand))
        self.features = nn.ModuleList(features)
        num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(num_features, eps=LN_EPS)
        self.head = nn.Linear(num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.pre(x)

    def forward_stage(self, index: int, x: Tensor, skip: bool) -> Tensor:
        if index > 0:
            x = self.features[2 * index - 1](x, skip)  # patch merging follows the stage after it
        return self.features[2 * index](x, skip)

    def forward_head(self, x: Tensor) -> Tensor:
        x = self.norm(x)  # [B, H, W, C]
        return self.head(x.mean(dim=(1, 2)))


@register_model
def swin_t_adn(
    *, num_classes: int = 1000, in_chans: int = 3, image_size: int = 224, **kwargs: Any
) -> AdnSwinTransformer:
    """Swin-T-ADN: depths [2,2,6,2], mandatory [1,1,3,1], window 7; keys match the official checkpoints."""
    return AdnSwinTransformer(
        patch_size=4,
        embed_dim=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        num_classes=num_classes,
        in_chans=in_chans,
        image_size=image_size,
        **kwargs,
    )
