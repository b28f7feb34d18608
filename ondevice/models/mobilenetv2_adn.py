"""MobileNetV2-ADN (Kang et al., "Adaptive Depth Networks with Skippable Sub-Paths", NeurIPS 2024).

MobileNetV2's seven inverted-residual groups (t, c, n, s) become ``features.1..features.7``; the five
with n >= 2 are the gated stages ``features.2..features.6``, whose last ``n - n_mandatory(n)`` blocks are
skippable. Every conv unit is ``conv_layer`` + ``norm`` (+ ``norm_skip`` in mandatory units) + ReLU6.
As in the official code, gate 0 also switches the stem conv ``features.0`` and the c=16 block
``features.1`` to their skip norms, and gate 4 the c=320 block ``features.7`` and the 1x1 conv to 1280
``features.8``; so ``forward_stage(0)`` runs ``features.0..2`` and ``forward_stage(4)`` runs
``features.6..8`` (the stem is the identity), and a stage lowered on its own holds every layer its gate
switches. State-dict keys, shapes and order are the official ones
(tests/official/mobilenet_v2_adn.keys.json).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._registry import register_model
from .adn import IMAGENET_MEAN, IMAGENET_STD, AdnModel, AdnStage, InputSpec, add_skip_norms, n_mandatory

__all__ = ["AdnMobileNetV2", "ConvNormActivation", "InvertedResidual", "mobilenet_v2_adn", "mobilenet_v2_adn_small"]

# t (expansion), c (output channels), n (blocks), s (stride of the first block): MobileNetV2 for ImageNet.
IMAGENET_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

# Which ``features`` entries each gate drives (official SkippableSequentialStages): gate 0 also the stem conv and
# the c=16 block before its stage, gate 4 also the c=320 block and the final 1x1 conv after its stage.
GATED_FEATURES = ((0, 1, 2), (3,), (4,), (5,), (6, 7, 8))


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% below ``value`` (TF MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvNormActivation(nn.Module):
    """Conv -> BN (``norm_skip`` when skip is True) -> optional ReLU6; the official skippable conv unit.

    Only units of mandatory modules (``skippable=False``) own ``norm_skip``, an independent copy of ``norm``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        *,
        activation: bool = True,
        skippable: bool = False,
    ) -> None:
        super().__init__()
        self.skippable = skippable
        padding = (kernel_size - 1) // 2
        self.conv_layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        if not skippable:
            add_skip_norms(self, ("norm",))
        self.activation = nn.ReLU6(inplace=True) if activation else nn.Identity()

    def forward(self, x: Tensor, skip: bool = False) -> Tensor:
        norm = self.norm_skip if skip else self.norm
        return self.activation(norm(self.conv_layer(x)))


class InvertedResidual(nn.Module):
    """1x1 expand (absent when t=1) -> 3x3 depthwise (stride here) -> 1x1 linear projection.

    The input is added back only when the block keeps resolution and width (stride 1, in == out), as in
    MobileNetV2; there is no activation after the projection or the sum.
    """

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int, *, skippable: bool = False) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.skippable = skippable
        self.use_res_connect = stride == 1 and inp == oup
        hidden = round(inp * expand_ratio)
        units: list[nn.Module] = []
        if expand_ratio != 1:
            units.append(ConvNormActivation(inp, hidden, kernel_size=1, skippable=skippable))
        units.append(ConvNormActivation(hidden, hidden, stride=stride, groups=hidden, skippable=skippable))
        units.append(ConvNormActivation(hidden, oup, kernel_size=1, activation=False, skippable=skippable))
        self.conv = nn.ModuleList(units)

    def forward(self, x: Tensor, skip: bool = False) -> Tensor:
        out = x
        for unit in self.conv:
            out = unit(out, skip)
        return x + out if self.use_res_connect else out


class AdnMobileNetV2(AdnModel):
    """MobileNetV2 whose five multi-block groups ``features.2..features.6`` each have a skippable tail.

    ``forward(x, gates=None)`` runs the super-net, as for every ondevice model; note that the official
    MobileNetV2-ADN's ``forward(x)`` without ``skip`` runs the base-net instead.

    Args:
        num_classes: classifier outputs.
        in_chans: input channels.
        width_mult: channel multiplier (channels rounded to multiples of ``round_nearest``; the last conv keeps
            1280 channels unless width_mult > 1).
        round_nearest: channel rounding.
        dropout: dropout before the classifier (training only).
        small_input: stem conv at stride 1 for 28-32 px images (32 px -> 2x2 before pooling; 224 px -> 7x7
            otherwise). The c=24 stage keeps stride 2: at stride 1 too (CIFAR-style, 4x4) a training step took
            ~3x longer on CPU, as the 6x-expanded activations stay at full resolution.
        image_size, mean, std: the input this model is meant for (recorded in checkpoints and bundles).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        round_nearest: int = 8,
        dropout: float = 0.2,
        small_input: bool = False,
        image_size: int = 224,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.num_stages = len(GATED_FEATURES)
        self.input_spec = InputSpec(in_chans, image_size, tuple(mean), tuple(std))

        in_planes = _make_divisible(32 * width_mult, round_nearest)
        last_channel = _make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features: list[nn.Module] = [ConvNormActivation(in_chans, in_planes, stride=1 if small_input else 2)]
        for t, c, n, s in IMAGENET_SETTING:
            planes = _make_divisible(c * width_mult, round_nearest)
            n_mand = n_mandatory(n) if n >= 2 else n
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(in_planes, planes, s if i == 0 else 1, t, skippable=i >= n_mand))
                in_planes = planes
            # Single-block groups are bare blocks (features.1, features.7); the others are gated stages.
            features.append(AdnStage(blocks, n_mand) if n >= 2 else blocks[0])
        features.append(ConvNormActivation(in_planes, last_channel, kernel_size=1))
        self.features = nn.ModuleList(features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last_channel, num_classes))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def stage(self, index: int) -> AdnStage:
        """The gated group ``features.<index + 2>``; its gate may switch more modules (GATED_FEATURES)."""
        return self.features[index + 2]

    def forward_stem(self, x: Tensor) -> Tensor:
        return x  # the stem conv is switched by gate 0, so it runs in forward_stage(0)

    def forward_stage(self, index: int, x: Tensor, skip: bool) -> Tensor:
        for feature in GATED_FEATURES[index]:
            x = self.features[feature](x, skip)
        return x

    def entry_norms(self, index: int) -> tuple[str, ...]:
        """The norms of the 1x1 expand unit that opens the stage: the only conv that reads the stage input."""
        unit = f"features.{GATED_FEATURES[index][0]}.0.conv.0"
        return (f"{unit}.norm", f"{unit}.norm_skip") if index else ()

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


def _adn_mobilenet_v2(**kwargs: Any) -> AdnMobileNetV2:
    return AdnMobileNetV2(**kwargs)


@register_model
def mobilenet_v2_adn(
    *, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, **kwargs: Any
) -> AdnMobileNetV2:
    """MobileNetV2-ADN, ImageNet layout: 5 gated stages, blocks [2,3,4,3,3]; keys match the official checkpoints.

    ``model(x)`` is the super-net here (the official ``forward(x)`` defaults to the base-net).
    """
    return _adn_mobilenet_v2(num_classes=num_classes, in_chans=in_chans, width_mult=width_mult, **kwargs)


@register_model
def mobilenet_v2_adn_small(
    *, num_classes: int = 10, in_chans: int = 3, width_mult: float = 0.5, **kwargs: Any
) -> AdnMobileNetV2:
    """MobileNetV2-ADN for 28-32 px images (MNIST/CIFAR): stride-1 stem, width 0.5, same modules and gates."""
    kwargs = {"small_input": True, "image_size": 32, "mean": (0.5,) * in_chans, "std": (0.5,) * in_chans, **kwargs}
    return _adn_mobilenet_v2(num_classes=num_classes, in_chans=in_chans, width_mult=width_mult, **kwargs)
