"""Norm rewrites that let a conv be stored once in a gated program, and the plan of which to apply.

XNNPACK folds every BatchNorm into the conv before it and stores constants by content hash. A conv
that meets two norms (a mandatory conv's main and ``*_skip`` norm, or an entry norm's after-run and
after-skip statistics) therefore folds into two different weights, one per branch, and is stored
twice. Computing one norm as "the other norm, then a per-channel affine" (``y = r x + c``, a
depthwise 1x1 conv inside the delegate, exact up to float rounding) makes both branches fold the same
weight, at the price of that affine on the norm's output in the branches that use it.

Which norms are worth it depends on the shapes: late stages hold most of the weight bytes on small
feature maps, early ones the opposite. :func:`plan_norm_sharing` rewrites the norms that save the
most bytes per activation element the affine touches, until the extra weights fit a size budget
(mobilenet_v2_adn at 224x224: 82% of its extra copies go for 9% of the elements all rewrites touch).
A main/skip pair can put its affine on either side, so the plan spreads them: each goes to the
branch that keeps the worst sub-network's affine elements per FLOP lowest, instead of every one
landing on the sub-networks that skip (the base-net paid them all).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import AdnModel, all_gates, base_net, super_net
from ..models.context_norm import ContextBatchNorm2d
from ..models.cost import count_flops, count_params_used
from ..models.modes import eval_mode

__all__ = [
    "DEFAULT_SIZE_BUDGET",
    "SHARE_BRANCHES",
    "SMALL_PROGRAM_EXTRA_BYTES",
    "SharingPlan",
    "check_size_budget",
    "plan_norm_sharing",
    "share_entry_contexts",
    "share_skip_norms",
]

# Ratio |scale_target / scale_first| above which a norm keeps its own folded conv (precision).
_MAX_NORM_RATIO = 64.0
SHARE_BRANCHES = ("run", "skip")
# The default "auto" target: the gated program within 1.10x the static super-net program (docs/export.md).
DEFAULT_SIZE_BUDGET = 1.10
# Extra bytes "auto" always allows: below this the download saving is not worth an op on every call of the
# sub-networks that skip (resnet20_adn at 28x28: 0.7 MB of copies; sharing them cost its base-net ~3%).
SMALL_PROGRAM_EXTRA_BYTES = 1 << 20


def check_size_budget(size_budget: float) -> float:
    """``size_budget`` if it is a usable "auto" target (program size / static super-net size, >= 1), else ValueError."""
    if not size_budget >= 1.0:  # also rejects NaN
        raise ValueError(f"the size budget is program size / static super-net size, at least 1.0; got {size_budget}")
    return size_budget


def _channel_affine(ratio: Tensor, shift: Tensor) -> nn.Conv2d:
    """``r x + c`` per channel as a depthwise 1x1 conv, which XNNPACK runs inside the delegate."""
    channels = ratio.numel()
    affine = nn.Conv2d(channels, channels, kernel_size=1, groups=channels)
    with torch.no_grad():
        affine.weight.copy_(ratio.reshape(-1, 1, 1, 1))
        affine.bias.copy_(shift)
    return affine


class _NormThenAffine(nn.Module):
    """``target(x)`` computed as ``affine(first(x))``, so the conv before it folds with ``first``."""

    def __init__(self, first: nn.BatchNorm2d, ratio: Tensor, shift: Tensor) -> None:
        super().__init__()
        self.first = first
        self.affine = _channel_affine(ratio, shift)

    def forward(self, x: Tensor) -> Tensor:
        return self.affine(self.first(x))


class _ContextThenAffine(ContextBatchNorm2d):
    """An entry norm whose after-skip statistics are computed as its after-run ones, then a per-channel affine:
    the conv before it folds with the after-run statistics in both contexts, so it is stored once."""

    def __init__(self, norm: ContextBatchNorm2d, ratio: Tensor, shift: Tensor) -> None:
        super().__init__(norm.num_features, eps=norm.eps, momentum=norm.momentum)
        self.load_state_dict(norm.state_dict())
        self.affine = _channel_affine(ratio, shift)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        if self.training or not self.previous:
            return super().forward(x)
        mean, var = self.running_mean_after_run, self.running_var_after_run
        return self.affine(F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps))


def _bn_scale_shift(bn: nn.BatchNorm2d, mean: Tensor | None = None, var: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-channel (scale, shift) of ``bn`` in eval mode, with its running statistics or ``mean``/``var``."""
    mean = bn.running_mean if mean is None else mean
    var = bn.running_var if var is None else var
    scale = bn.weight.detach().double() / torch.sqrt(var.double() + bn.eps)
    return scale, bn.bias.detach().double() - mean.double() * scale


def _ratio_and_shift(first: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor] | None:
    """(r, c) with ``target = r * first + c`` per channel, or None where that loses precision (a zero scale or
    |r| > _MAX_NORM_RATIO)."""
    (scale_first, shift_first), (scale_target, shift_target) = first, target
    safe = torch.where(scale_first == 0, torch.ones_like(scale_first), scale_first)
    ratio = scale_target / safe
    if bool((scale_first.abs() < 1e-12).any()) or float(ratio.abs().max()) > _MAX_NORM_RATIO:
        return None
    return ratio.float(), (shift_target - shift_first * ratio).float()


@dataclass(frozen=True)
class _Site:
    """A norm that could be rewritten: where it sits, and the affine that would replace it (None: it cannot)."""

    name: str  # the module path of the norm whose conv is stored twice (a context norm or a ``*_skip`` norm)
    parent: nn.Module
    attr: str  # the attribute of ``parent`` that the rewrite replaces
    first: nn.BatchNorm2d | None  # skip pairs: the norm the affine follows
    affine: tuple[Tensor, Tensor] | None


def _context_sites(model: nn.Module) -> Iterator[_Site]:
    """Every entry norm with statistics per previous gate: after-skip = after-run + affine."""
    for prefix, module in model.named_modules():
        for attr, norm in module.named_children():
            if isinstance(norm, ContextBatchNorm2d) and not isinstance(norm, _ContextThenAffine):
                after_run = _bn_scale_shift(norm, norm.running_mean_after_run, norm.running_var_after_run)
                after_skip = _bn_scale_shift(norm, norm.running_mean_after_skip, norm.running_var_after_skip)
                name = f"{prefix}.{attr}" if prefix else attr
                yield _Site(name, module, attr, None, _ratio_and_shift(after_run, after_skip))


def _skip_pair_sites(model: nn.Module, branch: str) -> Iterator[_Site]:
    """Every mandatory ``<name>``/``<name>_skip`` BatchNorm2d pair (entry norms excluded: their statistics follow
    the previous gate): in the ``branch`` copy, one norm = the other + affine."""
    for prefix, module in model.named_modules():
        for attr, skip in module.named_children():
            main = getattr(module, attr[: -len("_skip")], None) if attr.endswith("_skip") else None
            if not (isinstance(skip, nn.BatchNorm2d) and isinstance(main, nn.BatchNorm2d)):
                continue
            name = f"{prefix}.{attr}" if prefix else attr
            plain = not isinstance(main, ContextBatchNorm2d) and not isinstance(skip, ContextBatchNorm2d)
            if not (plain and all(bn.track_running_stats and bn.affine for bn in (main, skip))):
                yield _Site(name, module, attr, None, None)
                continue
            first, target, replaced = (skip, main, attr[: -len("_skip")]) if branch == "run" else (main, skip, attr)
            affine = _ratio_and_shift(_bn_scale_shift(first), _bn_scale_shift(target))
            yield _Site(name, module, replaced, first, affine)


def share_entry_contexts(model: AdnModel, names: Collection[str] | None = None) -> tuple[AdnModel, int, int]:
    """A copy whose entry norms compute the after-skip context from the after-run one plus a per-channel affine,
    so the entry convs of a stage's segments fold with the same statistics and are stored once.

    ``names``: only these entry norms (None: all). Returns (copy, norms rewritten, norms kept: not named, or an
    extreme ratio that keeps its own statistics; their conv is stored per context).
    """
    shared = copy.deepcopy(model).eval()
    rewritten = kept = 0
    for site in list(_context_sites(shared)):
        if site.affine is None or (names is not None and site.name not in names):
            kept += 1
            continue
        setattr(site.parent, site.attr, _ContextThenAffine(getattr(site.parent, site.attr), *site.affine))
        rewritten += 1
    return shared, rewritten, kept


def share_skip_norms(
    model: AdnModel, branch: str = "run", names: Collection[str] | None = None
) -> tuple[AdnModel, int, int]:
    """A copy for one branch kind whose norms are rewritten so every mandatory conv folds with the same norm.

    Each mandatory ``<name>``/``<name>_skip`` BatchNorm2d pair folds its conv with the ``*_skip`` norm in both
    branches. ``branch="run"``: the copy (for run branches) computes the main norm as skip norm + per-channel
    affine; ``branch="skip"``: the copy (for skip branches) computes the skip norm as main norm + affine, so
    the convs fold with the main norm instead. ``names``: only the pairs of these ``*_skip`` norms (None: all).
    Returns (copy, pairs rewritten, pairs kept): a pair not named, an entry-norm pair or one whose scale ratio
    is extreme keeps its own norms (precision), and only its conv is stored twice.
    """
    if branch not in SHARE_BRANCHES:
        raise ValueError(f"branch must be one of {SHARE_BRANCHES}, got {branch!r}")
    shared = copy.deepcopy(model).eval()
    rewritten = kept = 0
    for site in list(_skip_pair_sites(shared, branch)):
        if site.affine is None or site.first is None or (names is not None and site.name not in names):
            kept += 1
            continue
        setattr(site.parent, site.attr, _NormThenAffine(site.first, *site.affine))
        rewritten += 1
    return shared, rewritten, kept


def _norm_sites(model: AdnModel) -> dict[str, tuple[int, int]]:
    """Per BatchNorm2d fed straight by a conv: (bytes of that conv folded with it, elements it normalizes per image),
    from the super-net and the base-net on the model's example input (together they reach every norm)."""
    names = {module: name for name, module in model.named_modules()}
    produced: dict[int, tuple[Tensor, nn.Conv2d]] = {}  # keeps each output alive, so no id is reused
    sites: dict[str, tuple[int, int]] = {}

    def conv_hook(conv: nn.Module, _: tuple[Tensor, ...], out: Tensor) -> None:
        produced[id(out)] = (out, conv)

    def norm_hook(norm: nn.Module, args: tuple[Tensor, ...]) -> None:
        if id(args[0]) in produced:
            conv = produced[id(args[0])][1]
            folded = conv.weight.numel() + conv.out_channels  # the weight and the bias the norm folds into
            sites[names[norm]] = (folded * conv.weight.element_size(), args[0][0].numel())

    handles = [
        m.register_forward_hook(conv_hook) if isinstance(m, nn.Conv2d) else m.register_forward_pre_hook(norm_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))
    ]
    try:
        with eval_mode(model), torch.no_grad():
            x = model.example_input()
            for gates in (super_net(model.num_stages), base_net(model.num_stages)):
                model(x, gates)
    finally:
        for handle in handles:
            handle.remove()
    return sites


@dataclass(frozen=True)
class SharingPlan:
    """Which norms the export computes as "another norm + affine" so their conv is stored once."""

    contexts: frozenset[str]  # entry norms: after-skip statistics = after-run + affine
    skip_pairs: frozenset[str]  # ``*_skip`` norms: = main norm + affine, in the skip branches
    extra_bytes: int  # bytes beyond the super-net's weights: convs still stored twice, plus the affines
    super_net_bytes: int  # the super-net's parameter bytes, what the budget is a multiple of
    run_pairs: frozenset[str] = field(default_factory=frozenset)  # ``*_skip`` norms whose main norm = skip + affine

    @property
    def pairs(self) -> frozenset[str]:
        """Every rewritten main/skip pair (named by its ``*_skip`` norm), whichever branch pays its affine."""
        return self.skip_pairs | self.run_pairs


def _norm_calls(model: AdnModel) -> list[tuple[int, dict[str, bool]]]:
    """Per sub-network (every gate setting): its FLOPs and the BatchNorm2d it runs, each with whether it runs
    after a skipped stage (an entry norm's after-skip context)."""
    names = {module: name for name, module in model.named_modules() if isinstance(module, nn.BatchNorm2d)}
    calls: dict[str, bool] = {}

    def hook(norm: nn.Module, _: tuple[Tensor, ...]) -> None:
        calls[names[norm]] = bool(getattr(norm, "previous", False))

    handles = [m.register_forward_pre_hook(hook) for m in names]
    per_subnet = []
    try:
        for gates in all_gates(model.num_stages):
            calls = {}  # filled by the hooks during the FLOP count's forward pass
            per_subnet.append((max(1, count_flops(model, gates)), calls))
    finally:
        for handle in handles:
            handle.remove()
    return per_subnet


def _spread_affines(
    model: AdnModel, pairs: dict[str, int], contexts: dict[str, int], run_side: Collection[str]
) -> frozenset[str]:
    """The pairs (of ``pairs``: ``*_skip`` norm -> elements) whose affine goes to the run branches.

    Largest first (then by name), each pair's affine goes to the branch that leaves the worst sub-network with the
    fewest affine elements per FLOP (the skip branches on a tie, and always for a pair not in ``run_side``, whose
    reverse ratio is too extreme); the after-skip contexts in ``contexts`` are paid where they run."""
    subnets = _norm_calls(model)
    loads = [sum(e for name, e in contexts.items() if calls.get(name)) for _, calls in subnets]
    on_run: set[str] = set()

    def worst(extra: list[int]) -> float:
        return max((load + e) / flops for load, e, (flops, _) in zip(loads, extra, subnets))

    for name, elements in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])):  # ties by name: reproducible
        main = name[: -len("_skip")]
        payers = {
            branch: [elements if norm in calls else 0 for _, calls in subnets]
            for branch, norm in (("skip", name), ("run", main))
        }
        branch = "run" if name in run_side and worst(payers["run"]) < worst(payers["skip"]) else "skip"
        loads = [load + e for load, e in zip(loads, payers[branch])]
        if branch == "run":
            on_run.add(name)
    return frozenset(on_run)


def plan_norm_sharing(
    model: AdnModel, size_budget: float = DEFAULT_SIZE_BUDGET, fixed_bytes: int = 0, floor_bytes: int = 0
) -> SharingPlan:
    """The fewest affine elements that bring the gated program within ``size_budget`` x the super-net's weights.

    Rewriting a site whose conv is stored twice saves that conv's weight bytes less its affine's (r and c per
    channel) and costs the affine over the activation it normalizes (paid only by sub-networks in that branch).
    Sites are taken by bytes saved per activation element, largest first, until the extra bytes plus
    ``fixed_bytes`` (what the program adds whatever the plan, e.g. its delegates' headers) fit
    ``(size_budget - 1) x`` the super-net's parameter bytes, or ``floor_bytes`` if that is more; a site whose
    ratio is too extreme to rewrite stays duplicated. ``size_budget=inf``: none. The chosen main/skip pairs
    then spread their affines over the two branches (``_spread_affines``).
    """
    # (kind, site): an entry conv's ``*_skip`` norm is both a context site and one half of a main/skip pair
    sites = [("contexts", s) for s in _context_sites(model)] + [
        ("skip_pairs", s) for s in _skip_pair_sites(model, "skip")
    ]
    if not sites:  # no BatchNorm pairs (a ViT's LayerNorms do not fold): nothing is stored twice
        return SharingPlan(frozenset(), frozenset(), 0, 0)
    measured = _norm_sites(model)
    candidates = []  # (bytes of the copy, bytes a rewrite saves, activation elements, kind, name)
    for kind, site in sites:
        copy_bytes, elements = measured.get(site.name, (0, 1))
        saved = copy_bytes - 8 * model.get_submodule(site.name).num_features if site.affine is not None else 0
        candidates.append((copy_bytes, saved, max(1, elements), kind, site.name))
    extra = sum(c[0] for c in candidates)
    super_bytes = count_params_used(model, super_net(model.num_stages)) * 4
    allowed = max((size_budget - 1.0) * super_bytes, floor_bytes) - fixed_bytes
    chosen: dict[str, set[str]] = {"contexts": set(), "skip_pairs": set()}
    for _, saved, _, kind, name in sorted(candidates, key=lambda c: -c[1] / c[2]):
        if extra <= allowed or saved <= 0:
            break
        chosen[kind].add(name)
        extra -= saved
    on_run: frozenset[str] = frozenset()
    if chosen["skip_pairs"]:
        elements = {name: e for _, _, e, _, name in candidates}
        run_side = {s.name for s in _skip_pair_sites(model, "run") if s.affine is not None}
        on_run = _spread_affines(
            model,
            {name: elements[name] for name in chosen["skip_pairs"]},
            {name: elements[name] for name in chosen["contexts"]},
            run_side,
        )
    return SharingPlan(
        frozenset(chosen["contexts"]), frozenset(chosen["skip_pairs"] - on_run), extra, super_bytes, on_run
    )
