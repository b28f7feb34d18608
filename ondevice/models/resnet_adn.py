"""ResNet-ADN (Kang et al., "Adaptive Depth Networks with Skippable Sub-Paths", NeurIPS 2024).

Each stage ``layerX`` is split into mandatory blocks (the first ``n_mandatory(n)``) and skippable
blocks (the rest). Mandatory blocks own ``bn*_skip`` twins used when their stage is skipped; the
stem, the downsample BNs and ``fc`` are never switched. State-dict keys are torchvision's plus the
``*_skip`` norms, exactly as in the official checkpoints (tests/official/resnet50_adn.keys.json).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._registry import register_model
from .adn import IMAGENET_MEAN, IMAGENET_STD, AdnModel, AdnStage, InputSpec, add_skip_norms, n_mandatory

__all__ = ["AdnResNet", "BasicBlock", "Bottleneck", "resnet10_adn", "resnet20_adn", "resnet50_adn"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def _downsample(in_planes: int, out_planes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3 convs; ``forward(x, skip)`` uses ``bn*_skip`` when skip is True (mandatory blocks only)."""

    expansion = 1
    norm_names = ("bn1", "bn2")

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, skippable: bool = False) -> None:
        super().__init__()
        self.skippable = skippable
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(in_planes, planes * self.expansion, stride)
        if not skippable:
            add_skip_norms(self, self.norm_names)

    def forward(self, x: Tensor, skip: bool = False) -> Tensor:
        bn1, bn2 = (self.bn1_skip, self.bn2_skip) if skip else (self.bn1, self.bn2)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(bn1(self.conv1(x)))
        out = bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, torchvision v1.5) -> 1x1; ``bn*_skip`` when skip is True (mandatory blocks)."""

    expansion = 4
    norm_names = ("bn1", "bn2", "bn3")

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, skippable: bool = False) -> None:
        super().__init__()
        self.skippable = skippable
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_planes, planes * self.expansion, stride)
        if not skippable:
            add_skip_norms(self, self.norm_names)

    def forward(self, x: Tensor, skip: bool = False) -> Tensor:
        if skip:
            bn1, bn2, bn3 = self.bn1_skip, self.bn2_skip, self.bn3_skip
        else:
            bn1, bn2, bn3 = self.bn1, self.bn2, self.bn3
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(bn1(self.conv1(x)))
        out = self.relu(bn2(self.conv2(out)))
        out = bn3(self.conv3(out))
        return self.relu(out + identity)


class AdnResNet(AdnModel):
    """ResNet whose stages ``layer1..layerS`` each have a skippable tail.

    Args:
        block: BasicBlock or Bottleneck.
        layers: blocks per stage (each >= 2).
        widths: planes per stage.
        num_classes: classifier outputs.
        in_chans: input channels.
        small_input: CIFAR/MNIST stem (3x3 conv, stride 1, no max-pool) instead of ImageNet's 7x7/2 + pool.
        image_size, mean, std: the input this model is meant for (recorded in checkpoints and bundles).
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, ...],
        widths: tuple[int, ...],
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        small_input: bool = False,
        image_size: int = 224,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers {layers} and widths {widths} must have one entry per stage")
        self.num_stages = len(layers)
        self.input_spec = InputSpec(in_chans, image_size, tuple(mean), tuple(std))
        stem_width = widths[0]
        if small_input:
            self.conv1 = conv3x3(in_chans, stem_width)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_chans, stem_width, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)

        in_planes = stem_width
        for index, (n_blocks, planes) in enumerate(zip(layers, widths)):
            stride = 1 if index == 0 else 2
            n_mand = n_mandatory(n_blocks)
            blocks = []
            for i in range(n_blocks):
                blocks.append(block(in_planes, planes, stride if i == 0 else 1, skippable=i >= n_mand))
                in_planes = planes * block.expansion
            setattr(self, f"layer{index + 1}", AdnStage(blocks, n_mand))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def stage(self, index: int) -> AdnStage:
        return getattr(self, f"layer{index + 1}")

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_stage(self, index: int, x: Tensor, skip: bool) -> Tensor:
        return self.stage(index)(x, skip)

    def entry_norms(self, index: int) -> tuple[str, ...]:
        """The first block's ``bn1``/``bn1_skip`` (after conv1) and its downsample norm read the stage input."""
        first = f"layer{index + 1}.0"
        names = (f"{first}.bn1", f"{first}.bn1_skip")
        return (*names, f"{first}.downsample.1") if self.stage(index)[0].downsample is not None else names

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(x).flatten(1))


def _adn_resnet(block: Any, layers: tuple[int, ...], widths: tuple[int, ...], **kwargs: Any) -> AdnResNet:
    return AdnResNet(block, layers, widths, **kwargs)


@register_model
def resnet50_adn(*, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> AdnResNet:
    """ResNet-50-ADN, ImageNet layout: blocks [3,4,6,3], mandatory [2,2,3,2]; keys match the official checkpoints."""
    return _adn_resnet(
        Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), num_classes=num_classes, in_chans=in_chans, **kwargs
    )


@register_model
def resnet20_adn(*, num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> AdnResNet:
    """ResNet-20-ADN for 28-32 px images (MNIST/CIFAR): 3 stages of 3 basic blocks (2 mandatory + 1 skippable)."""
    kwargs = {"small_input": True, "image_size": 32, "mean": (0.5,) * in_chans, "std": (0.5,) * in_chans, **kwargs}
    return _adn_resnet(BasicBlock, (3, 3, 3), (16, 32, 64), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model
def resnet10_adn(*, num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> AdnResNet:
    """ResNet-10-ADN, the smallest: 2 stages of 2 basic blocks (1 mandatory + 1 skippable), widths 8/16; smoke tests."""
    kwargs = {"small_input": True, "image_size": 32, "mean": (0.5,) * in_chans, "std": (0.5,) * in_chans, **kwargs}
    return _adn_resnet(BasicBlock, (2, 2), (8, 16), num_classes=num_classes, in_chans=in_chans, **kwargs)
