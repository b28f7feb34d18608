"""ViT-ADN (Kang et al., "Adaptive Depth Networks with Skippable Sub-Paths", NeurIPS 2024).

A ViT has no resolution stages, so the official code groups its encoder layers into pseudo-stages
of ``layers_per_stage`` (3 for ViT-B/16: 12 layers, 4 gates); the last layer of each pseudo-stage
is skippable, the others are mandatory and own ``ln_1_skip``/``ln_2_skip`` twins used when their
stage is skipped. ``conv_proj``, ``class_token``, ``encoder.pos_embedding``, ``encoder.ln`` and
``heads.head`` are never switched. State-dict keys are torchvision's ``vit_b_16`` plus the
``*_skip`` norms, exactly as in the official checkpoints (tests/official/vit_b_16_adn.keys.json).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register_model
from .adn import IMAGENET_MEAN, IMAGENET_STD, AdnModel, InputSpec, add_skip_norms

__all__ = ["AdnVisionTransformer", "EncoderBlock", "SelfAttention", "vit_b_16_adn", "vit_tiny_adn"]

LN_EPS = 1e-6  # torchvision's and the official ViT's LayerNorm eps


class MLPBlock(nn.Sequential):
    """Linear -> GELU -> Dropout -> Linear -> Dropout; the Linears are ``mlp.0`` and ``mlp.3`` as in torchvision."""

    def __init__(self, in_dim: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__(
            nn.Linear(in_dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, in_dim), nn.Dropout(dropout)
        )
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names, as plain ops.

    ``in_proj_weight``/``in_proj_bias`` (q, k, v stacked) and ``out_proj`` are the keys of torchvision's
    and the official checkpoints. The forward is linear/matmul/softmax rather than
    ``nn.MultiheadAttention``'s, which torch.export turns into mask and select ops that XNNPACK does not
    take (a segment would split into several delegates); ``out_proj`` is a plain ``nn.Linear`` that
    torchao's Linear recipes quantize.
    """

    def __init__(self, hidden_dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden_dim, hidden_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * hidden_dim))
        self.out_proj = nn.Linear(hidden_dim, hidden_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)  # nn.MultiheadAttention's initialisation
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        """[N, tokens, hidden] -> [N, tokens, hidden]."""
        n, t, d = x.shape
        heads, head_dim = self.num_heads, d // self.num_heads

        def split_heads(y: Tensor) -> Tensor:  # [N, tokens, hidden] -> [N * heads, tokens, head_dim]
            return y.reshape(n, t, heads, head_dim).transpose(1, 2).reshape(n * heads, t, head_dim)

        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = (split_heads(qkv[..., i * d : (i + 1) * d]) for i in range(3))  # slices: XNNPACK takes no split
        scores = torch.bmm(q * head_dim**-0.5, k.transpose(1, 2))  # 3D bmm: XNNPACK takes no broadcast matmul
        attn = F.dropout(scores.softmax(dim=-1), p=self.dropout, training=self.training)
        y = torch.bmm(attn, v).reshape(n, heads, t, head_dim).transpose(1, 2).reshape(n, t, d)
        return self.out_proj(y)


class EncoderBlock(nn.Module):
    """Pre-norm transformer layer: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``.

    Mandatory layers (``skippable=False``) own ``ln_1_skip``/``ln_2_skip`` and use them when called
    with ``skip=True``; a skippable layer is never run with its stage skipped, so it has none.
    """

    norm_names = ("ln_1", "ln_2")

    def __init__(
        self,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        *,
        skippable: bool = False,
    ) -> None:
        super().__init__()
        self.skippable = skippable
        self.ln_1 = nn.LayerNorm(hidden_dim, eps=LN_EPS)
        self.self_attention = SelfAttention(hidden_dim, num_heads, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(hidden_dim, eps=LN_EPS)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)
        if not skippable:  # registered last, so the keys follow mlp.* as in the official state dict
            add_skip_norms(self, self.norm_names)

    def forward(self, x: Tensor, skip: bool = False) -> Tensor:
        """``x``: [N, tokens, hidden_dim]. ``skip``: this layer's pseudo-stage is skipped (use the *_skip norms)."""
        ln_1, ln_2 = (self.ln_1_skip, self.ln_2_skip) if skip and not self.skippable else (self.ln_1, self.ln_2)
        x = x + self.dropout(self.self_attention(ln_1(x)))
        return x + self.mlp(ln_2(x))


class Encoder(nn.Module):
    """Position embedding, the layers and the final LayerNorm, under torchvision's names.

    ``layers`` is one flat ``encoder_layer_<i>`` sequence as in torchvision; pseudo-stage ``s`` is
    layers ``s * layers_per_stage`` to ``(s + 1) * layers_per_stage - 1`` and its last layer is skippable.
    """

    def __init__(
        self,
        seq_length: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        layers_per_stage: int,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.layers_per_stage = layers_per_stage
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))  # from BERT
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(
            OrderedDict(
                (
                    f"encoder_layer_{i}",
                    EncoderBlock(
                        num_heads,
                        hidden_dim,
                        mlp_dim,
                        dropout,
                        attention_dropout,
                        skippable=(i + 1) % layers_per_stage == 0,  # the official rule: last of each pseudo-stage
                    ),
                )
                for i in range(num_layers)
            )
        )
        self.ln = nn.LayerNorm(hidden_dim, eps=LN_EPS)

    def stage_layers(self, index: int) -> list[EncoderBlock]:
        """The layers of pseudo-stage ``index``, mandatory ones first."""
        start = index * self.layers_per_stage
        return list(self.layers)[start : start + self.layers_per_stage]


class AdnVisionTransformer(AdnModel):
    """Vision Transformer (Dosovitskiy et al., 2021) whose encoder layers form gated pseudo-stages.

    Stem: patchify (``conv_proj``), prepend ``class_token``, add ``encoder.pos_embedding``.
    Stage ``s``: encoder layers ``s * layers_per_stage ...``, the last skipped when the gate says so.
    Head: ``encoder.ln``, then ``heads.head`` on the class token.

    Args:
        image_size: input height and width (fixed: the position embedding has one entry per patch).
        patch_size: side of the square patches.
        num_layers: encoder layers; a multiple of ``layers_per_stage``.
        num_heads, hidden_dim, mlp_dim: transformer width.
        layers_per_stage: layers per gate, the last of which is skippable (official ViT-B/16: 3).
        num_classes: classifier outputs.
        in_chans: input channels.
        dropout, attention_dropout: dropout rates (0 in the official recipe).
        mean, std: the normalisation this model's inputs get (recorded in checkpoints and bundles).
    """

    def __init__(
        self,
        image_size: int,
        patch_size: int,
        num_layers: int,
        num_heads: int,
        hidden_dim: int,
        mlp_dim: int,
        layers_per_stage: int = 3,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        if layers_per_stage < 2 or num_layers % layers_per_stage:
            raise ValueError(
                f"num_layers {num_layers} must split into pseudo-stages of layers_per_stage >= 2 "
                f"(1+ mandatory, 1 skippable), got layers_per_stage {layers_per_stage}"
            )
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        self.num_stages = num_layers // layers_per_stage
        self.input_spec = InputSpec(in_chans, image_size, tuple(mean), tuple(std))
        self.image_size = image_size
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim

        self.conv_proj = nn.Conv2d(in_chans, hidden_dim, kernel_size=patch_size, stride=patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim))
        seq_length = (image_size // patch_size) ** 2 + 1
        self.encoder = Encoder(
            seq_length, num_layers, num_heads, hidden_dim, mlp_dim, layers_per_stage, dropout, attention_dropout
        )
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden_dim, num_classes)))

        fan_in = in_chans * patch_size * patch_size
        nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.conv_proj.bias)
        # The official (and torchvision) zero-init the classifier: a fresh model outputs all-zero logits.
        nn.init.zeros_(self.heads.head.weight)
        nn.init.zeros_(self.heads.head.bias)

    def forward_stem(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        if h != self.image_size or w != self.image_size:
            raise ValueError(
                f"this ViT takes {self.image_size}x{self.image_size} images (its position embedding is fixed), "
                f"got {h}x{w}; resize the input or build the model with image_size={h}"
            )
        x = self.conv_proj(x)  # [N, hidden, H/p, W/p]
        x = x.reshape(n, self.hidden_dim, -1).permute(0, 2, 1)  # [N, patches, hidden]
        # The class token goes in front: a zero slot padded there, then the token added into it (the same as
        # concatenating, but with no batch-sized expand, which XNNPACK does not take).
        x = F.pad(x, (0, 0, 1, 0))
        class_token = F.pad(self.class_token, (0, 0, 0, x.shape[1] - 1))  # [1, tokens, hidden]: token, then zeros
        return self.encoder.dropout(x + class_token + self.encoder.pos_embedding)

    def forward_stage(self, index: int, x: Tensor, skip: bool) -> Tensor:
        for layer in self.encoder.stage_layers(index):
            if skip and layer.skippable:
                continue
            x = layer(x, skip)
        return x

    def forward_head(self, x: Tensor) -> Tensor:
        # Only the class token is classified, and LayerNorm is per token: normalise just that one. A slice,
        # not x[:, 0]: XNNPACK takes no select.
        return self.heads(self.encoder.ln(x[:, :1]).flatten(1))


def _adn_vit(**kwargs: Any) -> AdnVisionTransformer:
    return AdnVisionTransformer(**kwargs)


@register_model
def vit_b_16_adn(
    *, num_classes: int = 1000, in_chans: int = 3, image_size: int = 224, **kwargs: Any
) -> AdnVisionTransformer:
    """ViT-B/16-ADN: 12 layers in 4 pseudo-stages of 3 (last skippable); keys match the official checkpoints."""
    return _adn_vit(
        image_size=image_size,
        patch_size=16,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        mlp_dim=3072,
        layers_per_stage=3,
        num_classes=num_classes,
        in_chans=in_chans,
        **kwargs,
    )


@register_model
def vit_tiny_adn(
    *, num_classes: int = 10, in_chans: int = 3, image_size: int = 32, **kwargs: Any
) -> AdnVisionTransformer:
    """ViT-ADN for 28-32 px images (MNIST/CIFAR): patch 4, width 64, 8 layers in 4 pseudo-stages of 1+1."""
    kwargs = {"mean": (0.5,) * in_chans, "std": (0.5,) * in_chans, **kwargs}
    return _adn_vit(
        image_size=image_size,
        patch_size=4,
        num_layers=8,
        num_heads=4,
        hidden_dim=64,
        mlp_dim=128,
        layers_per_stage=2,
        num_classes=num_classes,
        in_chans=in_chans,
        **kwargs,
    )
