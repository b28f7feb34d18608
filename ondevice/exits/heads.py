"""Multi-exit networks: a classifier (exit) after every stage, Gradient Equilibrium and ISC (IMTA, ICCV 2019).

``MultiExitNet`` is what every multi-exit model here shares; it is written in terms of three pieces
that the phone can also run one at a time (see ``export.py``):

* ``segment(k, x, skip)``: the trunk from exit k-1 to exit k (for k = 0 with the stem);
* ``exit_head(k, x, skip)``: exit k's pooled features and its plain logits;
* ``isc(k, features, previous_logits)``: exit k's logits with Inline Subnetwork Collaboration.

``forward_exits`` chains them, adding GE's gradient rescaling (identity forward) around every exit
as in the official IMTA ``msdnet_ge.py``: ``x = block_k(x); x = gs(x, 1/(K-k)); exit_k(x); x = gs(x, K-k-1)``.

``MultiExitModel`` puts exits after the stages of any ``AdnModel``: the last exit is the model's own
classifier, the others are ``ExitHead`` s. A head after stage k keeps a ``*_skip`` twin of each of its
norms, used when stage k skips its skippable sub-path, so each exit works with every gate setting
the way the mandatory blocks do (skip-aware normalization, ADN: Kang, NeurIPS 2024). The model is itself an
``AdnModel``: ``model(x, gates)`` is the last exit, so training, ``ondevice eval`` and FLOP counting
treat it like the backbone; ``model(x, gates, exits=True)`` returns every exit.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import AdnModel, Gates, GatesLike
from .losses import gradient_rescale

__all__ = ["ExitHead", "ExitOutput", "IscClassifiers", "MultiExitModel", "MultiExitNet", "SkipNorm"]


class ExitOutput(NamedTuple):
    """Every exit of one forward pass. ``teacher``: the plain last classifier (OFA-KD's teacher), or None."""

    logits: list[Tensor]
    features: list[Tensor | None]
    teacher: Tensor | None


class SkipNorm(nn.Module):
    """A norm and its ``norm_skip`` twin; the twin is used when the stage before this exit skipped its tail."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        self.norm_skip = copy.deepcopy(norm)

    def forward(self, x: Tensor, skip: bool = False) -> Tensor:
        return self.norm_skip(x) if skip else self.norm(x)


class ExitHead(nn.Module):
    """The classifier of an early exit.

    ``nchw`` features (CNNs) get IMTA's CIFAR head: two 3x3 stride-2 conv-BN-ReLU of ``width`` channels,
    global average pool, linear. Token features (``nlc``: ViT [N, tokens, dim]; ``nhwc``: Swin) get a
    LayerNorm, a mean over tokens and a linear layer. ``features`` is the pooled vector before ``fc``
    (ISC and the learned exit policy use it).
    """

    def __init__(self, layout: str, in_dim: int, num_classes: int, width: int | None = None) -> None:
        super().__init__()
        if layout not in ("nchw", "nhwc", "nlc"):
            raise ValueError(f"unknown feature layout {layout!r}; use 'nchw', 'nhwc' or 'nlc'")
        self.layout = layout
        if layout == "nchw":
            width = width or min(max(2 * in_dim, 32), 128)
            self.conv1 = nn.Conv2d(in_dim, width, 3, stride=2, padding=1, bias=False)
            self.bn1 = SkipNorm(nn.BatchNorm2d(width))
            self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1, bias=False)
            self.bn2 = SkipNorm(nn.BatchNorm2d(width))
            self.relu = nn.ReLU(inplace=True)
            self.feature_dim = width
            for m in (self.conv1, self.conv2):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        else:
            self.norm = SkipNorm(nn.LayerNorm(in_dim))
            self.feature_dim = in_dim
        self.fc = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor, skip: bool = False) -> Tensor:
        if self.layout == "nchw":
            x = self.relu(self.bn1(self.conv1(x), skip))
            x = self.relu(self.bn2(self.conv2(x), skip))
            return F.adaptive_avg_pool2d(x, 1).flatten(1)  # a pool, not mean(): XNNPACK delegates it
        tokens = self.norm(x, skip)
        tokens = tokens if self.layout == "nlc" else tokens.flatten(1, 2)  # [N, tokens, C]
        return F.adaptive_avg_pool2d(tokens.transpose(1, 2).unsqueeze(-1), 1).flatten(1)  # the token mean, as a pool

    def forward(self, x: Tensor, skip: bool = False) -> tuple[Tensor, Tensor]:
        feat = self.features(x, skip)
        return feat, self.fc(feat)


class IscClassifiers(nn.Module):
    """Inline Subnetwork Collaboration: exit k > 0 classifies ``cat(features_k, ReLU(BN(Linear(logits_{k-1}))))``.

    These are IMTA stage 2's new classifiers (``msdnet_imta.py``): one linear layer per exit and one link
    per pair of consecutive exits. Gradients flow from exit k back into exit k-1 through the link.
    """

    def __init__(self, feature_dims: Sequence[int], num_classes: int) -> None:
        super().__init__()
        dims = list(feature_dims)
        self.links = nn.ModuleList(
            nn.Sequential(nn.Linear(num_classes, d), nn.BatchNorm1d(d), nn.ReLU(inplace=True)) for d in dims[1:]
        )
        self.fcs = nn.ModuleList(nn.Linear(d if k == 0 else 2 * d, num_classes) for k, d in enumerate(dims))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, k: int, features: Tensor, previous: Tensor | None) -> Tensor:  # type: ignore[override]
        if k == 0:
            return self.fcs[0](features)
        if previous is None:
            raise ValueError(f"ISC exit {k} needs the logits of exit {k - 1}")
        return self.fcs[k](torch.cat([features, self.links[k - 1](previous)], dim=1))


class MultiExitNet(nn.Module):
    """Base class: K exits, optional GE (``gradient_equilibrium``) and ISC classifiers (``add_isc``).

    Subclasses set ``num_exits``, ``num_stages`` (ADN gates; 0 = none), ``num_classes``, ``feature_dims``
    and implement ``segment`` and ``exit_head``; ``_rescale`` says which tensor GE acts on.
    """

    num_exits: int
    num_stages: int
    num_classes: int
    feature_dims: list[int]
    gradient_equilibrium: bool = False
    trunk_frozen: bool = False
    isc: IscClassifiers | None

    def segment(self, k: int, x: Any, skip: bool) -> Any:
        raise NotImplementedError

    def exit_head(self, k: int, x: Any, skip: bool, *, with_features: bool = True) -> tuple[Tensor | None, Tensor]:
        raise NotImplementedError

    def _rescale(self, x: Any, scale: float) -> Any:
        return gradient_rescale(x, scale)

    def exit_skips(self, gates: GatesLike) -> tuple[bool, ...]:
        """The skip flag each segment runs with (no gates: all False)."""
        if self.num_stages == 0:
            if gates is not None:
                raise ValueError(f"{type(self).__name__} has no depth gates; pass gates=None, got {gates!r}")
            return (False,) * self.num_exits
        return tuple(Gates.coerce(gates, self.num_stages))

    def add_isc(self) -> None:
        """Give every exit a new ISC classifier (IMTA stage 2); the plain classifiers stay as they are."""
        if self.isc is not None:
            raise ValueError("this model already has ISC classifiers")
        self.isc = IscClassifiers(self.feature_dims, self.num_classes)

    def freeze_trunk(self) -> None:
        """IMTA stage 2: only the ISC classifiers learn; everything else keeps its weights and its norm statistics.

        The official code only stops gradients (its frozen BNs still update their running statistics in
        train mode); here the frozen part also stays in eval mode, so the stage-1 network, including the
        teacher of OFA-KD, is exactly the one stage 1 trained.
        """
        if self.isc is None:
            raise ValueError("freeze_trunk() trains only the ISC classifiers; call add_isc() first")
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.isc.parameters():
            p.requires_grad_(True)
        self.trunk_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> MultiExitNet:
        super().train(mode)
        if self.trunk_frozen:
            for name, child in self.named_children():
                if name != "isc":
                    child.eval()
        return self

    def forward_exits(
        self, x: Tensor, gates: GatesLike = None, *, upto: int | None = None, features: bool = False
    ) -> ExitOutput:
        """Logits of exits 0..``upto`` (default: all), GE applied when enabled; ``features``: also return them."""
        skips = self.exit_skips(gates)
        total = self.num_exits
        last = total - 1 if upto is None else upto
        if not 0 <= last < total:
            raise ValueError(f"upto must be an exit index in 0..{total - 1}, got {upto}")
        need_features = features or self.isc is not None
        logits: list[Tensor] = []
        feats: list[Tensor | None] = []
        plain: Tensor | None = None
        h: Any = x
        for k in range(last + 1):
            h = self.segment(k, h, skips[k])
            if self.gradient_equilibrium:
                h = self._rescale(h, 1.0 / (total - k))
            feat, plain = self.exit_head(k, h, skips[k], with_features=need_features)
            z = plain if self.isc is None else self.isc(k, feat, logits[-1] if logits else None)
            if self.gradient_equilibrium and k < total - 1:
                h = self._rescale(h, float(total - k - 1))
            logits.append(z)
            feats.append(feat if features else None)
        return ExitOutput(logits, feats, plain if last == total - 1 else None)

    def forward_final(self, x: Tensor, gates: GatesLike = None) -> Tensor:
        """The last exit without computing the earlier heads (possible when there is no ISC)."""
        if self.isc is not None:
            return self.forward_exits(x, gates).logits[-1]
        skips = self.exit_skips(gates)
        h: Any = x
        for k in range(self.num_exits):
            h = self.segment(k, h, skips[k])
        return self.exit_head(self.num_exits - 1, h, skips[-1], with_features=False)[1]

    def forward(self, x: Tensor, gates: GatesLike = None, *, exits: bool = False) -> Tensor | ExitOutput:  # type: ignore[override]
        """The last exit's logits; with ``exits=True`` an ``ExitOutput`` with every exit (for training)."""
        return self.forward_exits(x, gates) if exits else self.forward_final(x, gates)


def _feature_layout(backbone: AdnModel, sample: Tensor) -> str:
    """How a stage's output is laid out: conv maps [N, C, H, W], tokens [N, L, D] or Swin's [N, H, W, C]."""
    if sample.dim() == 3:
        return "nlc"
    if sample.dim() == 4:
        from ..models.swin_adn import AdnSwinTransformer

        return "nhwc" if isinstance(backbone, AdnSwinTransformer) else "nchw"
    raise ValueError(f"cannot put an exit on stage features of shape {list(sample.shape)}")


def _probe(backbone: AdnModel) -> tuple[list[Tensor], str, nn.Linear]:
    """Stage outputs of a dry run (super-net, eval mode) and the classifier: the last Linear ``forward_head`` calls."""
    calls: list[str] = []
    handles = [
        m.register_forward_pre_hook(lambda _m, _a, name=name: calls.append(name))
        for name, m in backbone.named_modules()
        if isinstance(m, nn.Linear)
    ]
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            x = backbone.forward_stem(backbone.example_input(2))
            outputs = []
            for k in range(backbone.num_stages):
                x = backbone.forward_stage(k, x, False)
                outputs.append(x)
            calls.clear()
            backbone.forward_head(x)
    finally:
        backbone.train(was_training)
        for handle in handles:
            handle.remove()
    if not calls:
        raise ValueError(f"{type(backbone).__name__}.forward_head calls no nn.Linear; cannot find its classifier")
    classifier = backbone.get_submodule(calls[-1])
    return outputs, calls[-1], classifier  # type: ignore[return-value]  (a Linear: only Linears were hooked)


class MultiExitModel(MultiExitNet, AdnModel):
    """An ``AdnModel`` with an ``ExitHead`` after each stage but the last, whose exit is the model's classifier.

    Args:
        backbone: any ADN model (gates work as in the backbone).
        gradient_equilibrium: rescale gradients around every exit (GE).
        head_width: channels of the conv exit heads (default: 2x the stage's, clamped to 32..128).
    """

    def __init__(self, backbone: AdnModel, *, gradient_equilibrium: bool = False, head_width: int | None = None):
        super().__init__()
        if backbone.num_stages < 2:
            raise ValueError(f"an early exit needs at least 2 stages, {type(backbone).__name__} has 1")
        self.backbone = backbone
        self.num_stages = backbone.num_stages
        self.num_exits = backbone.num_stages
        self.input_spec = backbone.input_spec
        self.gradient_equilibrium = gradient_equilibrium
        outputs, self._classifier_name, classifier = _probe(backbone)
        self.num_classes = classifier.out_features
        layout = _feature_layout(backbone, outputs[0])
        channel_dim = 1 if layout == "nchw" else -1
        self.heads = nn.ModuleList(
            ExitHead(layout, out.shape[channel_dim], self.num_classes, head_width) for out in outputs[:-1]
        )
        self.feature_dims = [h.feature_dim for h in self.heads] + [classifier.in_features]
        self.isc = None

    # The AdnModel interface is the backbone's: export and FLOP counting of the last exit see the plain network.
    def forward_stem(self, x: Tensor) -> Tensor:
        return self.backbone.forward_stem(x)

    def forward_stage(self, index: int, x: Tensor, skip: bool) -> Tensor:
        return self.backbone.forward_stage(index, x, skip)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.backbone.forward_head(x)

    def segment(self, k: int, x: Tensor, skip: bool) -> Tensor:
        if k == 0:
            if x.dim() != 4 or x.shape[1] != self.input_spec.in_chans:
                raise ValueError(f"expected images of shape [N, {self.input_spec.in_chans}, H, W], got {list(x.shape)}")
            x = self.backbone.forward_stem(x)
        return self.backbone.forward_stage(k, x, skip)

    def exit_head(self, k: int, x: Tensor, skip: bool, *, with_features: bool = True) -> tuple[Tensor | None, Tensor]:
        if k < self.num_exits - 1:
            return self.heads[k](x, skip)
        if not with_features:
            return None, self.backbone.forward_head(x)
        captured: list[Tensor] = []
        classifier = self.backbone.get_submodule(self._classifier_name)
        handle = classifier.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            logits = self.backbone.forward_head(x)
        finally:
            handle.remove()
        return captured[-1], logits
