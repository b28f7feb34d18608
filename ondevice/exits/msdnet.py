"""MSDNet (Huang et al., ICLR 2018), the multi-exit network IMTA (IMTA: Li et al., ICCV 2019) trains, for small images.

A faithful port of the CIFAR branch of the official ``msdnet_ge.py`` (kalviny/IMTA, on MSDNet-PyTorch):
a first layer that builds ``len(gr_factor)`` scales, ``n_blocks`` blocks of densely connected
multi-scale layers (each scale's new features come from a regular conv on that scale and a strided
conv on the finer one), "prune max" scale dropping with 1x1 transition layers that halve the width
(``reduction``), and after each block a classifier on the coarsest scale: two 3x3 stride-2 conv-BN-ReLU
of ``classifier_width`` channels, an average pool and a linear layer.

Differences from the official code, all for small inputs: ``in_chans`` is a parameter (the official
first conv takes 3 channels), and the classifier pools with ``AdaptiveAvgPool2d(1)`` instead of
``AvgPool2d(2)`` (the same on CIFAR's 2x2 maps, and it also works on 28x28 MNIST or 8x8 digits).

``msdnet_cifar`` is the IMTA/MSDNet CIFAR configuration (7 blocks, step 2, base 4, 16 channels,
growth 6, scales 1-2-4); ``msdnet_tiny`` scales it down (4 blocks, step 1, base 2, 8 channels,
growth 4, classifier width 32) so that it trains on the embedded MNIST in a minute or two on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..models import InputSpec
from .heads import MultiExitNet

__all__ = ["MSDNET_BUILDERS", "MSDNet", "MSDNetConfig", "build_msdnet", "msdnet_cifar", "msdnet_tiny"]


@dataclass(frozen=True)
class MSDNetConfig:
    """MSDNet hyper-parameters, named as in the official ``args.py`` (``nBlocks`` -> ``n_blocks`` and so on)."""

    n_blocks: int = 7
    step_mode: str = "even"  # "even": every block after the first has `step` layers; "lin_grow": step * i + 1
    step: int = 2
    base: int = 4  # layers of the first block
    channels: int = 16  # nChannels: width of the finest scale after the first layer
    growth_rate: int = 6
    gr_factor: tuple[int, ...] = (1, 2, 4)  # width multiplier per scale; its length is the number of scales
    bn_factor: tuple[int, ...] = (1, 2, 4)  # bottleneck width multiplier per scale
    bottleneck: bool = True
    reduction: float = 0.5  # transition layers keep this fraction of the channels
    classifier_width: int = 128

    def __post_init__(self) -> None:
        if self.n_blocks < 2:
            raise ValueError(f"MSDNet needs at least 2 blocks (exits), got n_blocks={self.n_blocks}")
        if self.step_mode not in ("even", "lin_grow"):
            raise ValueError(f"step_mode must be 'even' or 'lin_grow', got {self.step_mode!r}")
        if len(self.gr_factor) != len(self.bn_factor) or not self.gr_factor:
            raise ValueError(f"gr_factor {self.gr_factor} and bn_factor {self.bn_factor} need one entry per scale")
        for name in ("step", "base", "channels", "growth_rate", "classifier_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.reduction <= 1:
            raise ValueError(f"reduction must be in (0, 1], got {self.reduction}")

    @property
    def n_scales(self) -> int:
        return len(self.gr_factor)


def _conv_basic(n_in: int, n_out: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(n_in, n_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(n_out),
        nn.ReLU(inplace=True),
    )


def _conv_bn(n_in: int, n_out: int, down: bool, bottleneck: bool, bn_width: int) -> nn.Sequential:
    """[1x1 bottleneck] + 3x3 conv (stride 2 when ``down``), each with BN and ReLU (official ``ConvBN``)."""
    layers: list[nn.Module] = []
    n_inner = n_in
    if bottleneck:
        n_inner = min(n_inner, bn_width * n_out)
        layers += [nn.Conv2d(n_in, n_inner, 1, bias=False), nn.BatchNorm2d(n_inner), nn.ReLU(inplace=True)]
    layers += [
        nn.Conv2d(n_inner, n_out, 3, stride=2 if down else 1, padding=1, bias=False),
        nn.BatchNorm2d(n_out),
        nn.ReLU(inplace=True),
    ]
    return nn.Sequential(*layers)


class _ConvDownNormal(nn.Module):
    """New features of a coarser scale: half from the finer scale (strided), half from its own; concatenated."""

    def __init__(self, n_in1: int, n_in2: int, n_out: int, bottleneck: bool, bn1: int, bn2: int) -> None:
        super().__init__()
        self.conv_down = _conv_bn(n_in1, n_out // 2, True, bottleneck, bn1)
        self.conv_normal = _conv_bn(n_in2, n_out // 2, False, bottleneck, bn2)

    def forward(self, x: list[Tensor]) -> Tensor:
        return torch.cat([x[1], self.conv_down(x[0]), self.conv_normal(x[1])], dim=1)


class _ConvNormal(nn.Module):
    def __init__(self, n_in: int, n_out: int, bottleneck: bool, bn_width: int) -> None:
        super().__init__()
        self.conv_normal = _conv_bn(n_in, n_out, False, bottleneck, bn_width)

    def forward(self, x: list[Tensor]) -> Tensor:
        return torch.cat([x[0], self.conv_normal(x[0])], dim=1)


class _FirstLayer(nn.Module):
    """The stem: a 3x3 conv at full resolution, then one stride-2 conv per further scale."""

    def __init__(self, in_chans: int, n_out: int, cfg: MSDNetConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_conv_basic(in_chans, n_out * cfg.gr_factor[0])])
        n_in = n_out * cfg.gr_factor[0]
        for i in range(1, cfg.n_scales):
            self.layers.append(_conv_basic(n_in, n_out * cfg.gr_factor[i], stride=2))
            n_in = n_out * cfg.gr_factor[i]

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out


class _MSDLayer(nn.Module):
    """One densely connected multi-scale layer; drops the finest ``in_scales - out_scales`` scales."""

    def __init__(self, n_in: int, n_out: int, cfg: MSDNetConfig, in_scales: int, out_scales: int) -> None:
        super().__init__()
        self.in_scales, self.out_scales = in_scales, out_scales
        self.discard = in_scales - out_scales
        offset = cfg.n_scales - out_scales
        gr, bn = cfg.gr_factor, cfg.bn_factor
        self.layers = nn.ModuleList()
        if self.discard > 0:
            self.layers.append(
                _ConvDownNormal(
                    n_in * gr[offset - 1],
                    n_in * gr[offset],
                    n_out * gr[offset],
                    cfg.bottleneck,
                    bn[offset - 1],
                    bn[offset],
                )
            )
        else:
            self.layers.append(_ConvNormal(n_in * gr[offset], n_out * gr[offset], cfg.bottleneck, bn[offset]))
        for i in range(offset + 1, cfg.n_scales):
            self.layers.append(
                _ConvDownNormal(n_in * gr[i - 1], n_in * gr[i], n_out * gr[i], cfg.bottleneck, bn[i - 1], bn[i])
            )

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        if self.discard > 0:
            inputs = [[x[i - 1], x[i]] for i in range(1, self.out_scales + 1)]
        else:
            inputs = [[x[0]]] + [[x[i - 1], x[i]] for i in range(1, self.out_scales)]
        return [layer(inp) for layer, inp in zip(self.layers, inputs)]


class _Parallel(nn.ModuleList):
    """One module per scale (the transition layers)."""

    def forward(self, x: list[Tensor]) -> list[Tensor]:  # type: ignore[override]
        return [m(t) for m, t in zip(self, x)]


class _Classifier(nn.Module):
    """IMTA's CIFAR classifier on the coarsest scale; ``features`` is the pooled vector ISC concatenates."""

    def __init__(self, n_in: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.m = nn.Sequential(
            _conv_basic(n_in, width, stride=2), _conv_basic(width, width, stride=2), nn.AdaptiveAvgPool2d(1)
        )
        self.linear = nn.Linear(width, num_classes)

    def forward(self, x: list[Tensor]) -> tuple[Tensor, Tensor]:
        feat = self.m(x[-1]).flatten(1)
        return feat, self.linear(feat)


class MSDNet(MultiExitNet):
    """Multi-scale dense network with one exit per block; no depth gates (``num_stages`` = 0).

    Args:
        config: the architecture (``MSDNetConfig``).
        num_classes, in_chans: classifier outputs and input channels.
        image_size, mean, std: the input this model is meant for (recorded in checkpoints and bundles).
        gradient_equilibrium: rescale gradients around every exit (GE; applied to the coarsest scale,
            the one the classifiers read, as in the official code).
    """

    def __init__(
        self,
        config: MSDNetConfig,
        *,
        num_classes: int = 10,
        in_chans: int = 3,
        image_size: int = 32,
        mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        std: tuple[float, ...] = (0.5, 0.5, 0.5),
        gradient_equilibrium: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.num_exits = config.n_blocks
        self.num_stages = 0
        self.num_classes = num_classes
        self.input_spec = InputSpec(in_chans, image_size, tuple(mean), tuple(std))
        self.gradient_equilibrium = gradient_equilibrium
        self.isc = None

        steps = [config.base]
        for i in range(1, config.n_blocks):
            steps.append(config.step if config.step_mode == "even" else config.step * i + 1)
        n_layers_all, n_layer_curr = sum(steps), 0
        self.blocks = nn.ModuleList()
        self.classifier = nn.ModuleList()
        n_in = config.channels
        for step in steps:
            block, n_in, n_layer_curr = self._build_block(in_chans, n_in, step, n_layers_all, n_layer_curr)
            self.blocks.append(block)
            self.classifier.append(_Classifier(n_in * config.gr_factor[-1], config.classifier_width, num_classes))
        self.feature_dims = [config.classifier_width] * config.n_blocks

        for m in self.modules():  # the official initialisation
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def _build_block(
        self, in_chans: int, n_in: int, step: int, n_layers_all: int, n_layer_curr: int
    ) -> tuple[nn.Sequential, int, int]:
        cfg = self.config
        layers: list[nn.Module] = [_FirstLayer(in_chans, n_in, cfg)] if n_layer_curr == 0 else []
        interval = math.ceil(n_layers_all / cfg.n_scales)
        for _ in range(step):
            n_layer_curr += 1
            # "prune max": drop the finest scale every `interval` layers
            in_scales = cfg.n_scales - math.floor(max(0, n_layer_curr - 2) / interval)
            out_scales = cfg.n_scales - math.floor((n_layer_curr - 1) / interval)
            layers.append(_MSDLayer(n_in, cfg.growth_rate, cfg, in_scales, out_scales))
            n_in += cfg.growth_rate
            if in_scales > out_scales:  # a transition after every scale drop
                offset = cfg.n_scales - out_scales
                n_out = math.floor(cfg.reduction * n_in)
                layers.append(
                    _Parallel(
                        _conv_basic(n_in * cfg.gr_factor[offset + i], n_out * cfg.gr_factor[offset + i], 1, 1, 0)
                        for i in range(out_scales)
                    )
                )
                n_in = n_out
        return nn.Sequential(*layers), n_in, n_layer_curr

    def segment(self, k: int, x: Any, skip: bool) -> list[Tensor]:
        if k == 0 and (x.dim() != 4 or x.shape[1] != self.input_spec.in_chans):
            raise ValueError(f"expected images of shape [N, {self.input_spec.in_chans}, H, W], got {list(x.shape)}")
        return self.blocks[k](x)

    def exit_head(self, k: int, x: Any, skip: bool, *, with_features: bool = True) -> tuple[Tensor | None, Tensor]:
        return self.classifier[k](x)

    def _rescale(self, x: list[Tensor], scale: float) -> list[Tensor]:
        return [*x[:-1], super()._rescale(x[-1], scale)]


def msdnet_cifar(*, num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> MSDNet:
    """MSDNet, the CIFAR configuration of MSDNet/IMTA: 7 blocks, step 2, base 4, 16 channels, scales 1-2-4."""
    return MSDNet(MSDNetConfig(), num_classes=num_classes, in_chans=in_chans, **kwargs)


def msdnet_tiny(*, num_classes: int = 10, in_chans: int = 1, **kwargs: Any) -> MSDNet:
    """MSDNet scaled down for MNIST on a CPU: 4 blocks, step 1, base 2, 8 channels, growth 4, width 32."""
    config = MSDNetConfig(n_blocks=4, step=1, base=2, channels=8, growth_rate=4, classifier_width=32)
    kwargs = {"image_size": 28, "mean": (0.5,) * in_chans, "std": (0.5,) * in_chans, **kwargs}
    return MSDNet(config, num_classes=num_classes, in_chans=in_chans, **kwargs)


MSDNET_BUILDERS: dict[str, Callable[..., MSDNet]] = {"msdnet_cifar": msdnet_cifar, "msdnet_tiny": msdnet_tiny}


def build_msdnet(name: str, **kwargs: Any) -> MSDNet:
    """Build ``msdnet_cifar`` or ``msdnet_tiny`` by name."""
    if name not in MSDNET_BUILDERS:
        raise ValueError(f"unknown MSDNet {name!r}; choose one of {sorted(MSDNET_BUILDERS)}")
    return MSDNET_BUILDERS[name](**kwargs)
