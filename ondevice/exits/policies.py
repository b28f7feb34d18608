"""Per-input policies: stop at a cheap classifier or go on to a costlier one (Bolukbasi et al.; IMTA).

Every policy here walks a *chain*: classifiers ordered by cost, each with the cumulative cost of
stopping there. The chain is the early exits of one network (adaptive early exit), or ADN
sub-networks from the base-net up (network selection; running a sub-network after another reuses
the stages whose gates they share, see ``costs.chain_costs``), or both.

* ``ThresholdPolicy`` (the baseline of IMTA): stop at the first classifier whose confidence,
  the max log-softmax (the log of max-softmax: same order, no float32 saturation at 1.0), reaches
  its threshold. ``fit_thresholds`` chooses the thresholds on a held-out split for a target average
  cost as MSDNet/IMTA's budgeted batch classification does (``adaptive_inference.py``): a geometric
  share ``q^k`` of the inputs leaves at exit k, each threshold a quantile of the inputs still
  running; ``q`` is found by bisection so that the held-out average cost is the largest within budget.
* ``LearnedExitPolicy`` (Bolukbasi et al., ICML 2017): at classifier k a linear decider on the
  classifier's confidence features (and, with ``representation=True``, its pooled features, the
  "representation at that depth" in Bolukbasi et al.) says exit or continue. Confidence only is the default:
  with held-out sets of ~1,000 images the representation overfits (docs/early_exits.md). It minimizes
  ``E[error + lambda * cost / full cost]``, reduced to weighted binary classifications trained
  bottom-up: at k, the value of continuing is what the already-trained deciders after k achieve;
  the label is the action with the lower value and the weight the absolute difference. Each decider
  is a weighted, L2-regularized logistic regression (LBFGS, float64, standardized inputs).
  Bolukbasi's network selection allows a DAG (jump from a cheap network straight to any costlier
  one); here the sub-networks form a chain ordered by cost, so every decision is binary as above.

Costs are in the chain's units (FLOPs in ``evaluate.py``); ``lambda`` is error per full-chain cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CONFIDENCE_FEATURES",
    "ChainPredictions",
    "LearnedExitPolicy",
    "LinearDecider",
    "PolicyResult",
    "ThresholdPolicy",
    "check_budget",
    "check_lambda",
    "confidence_features",
    "evaluate_policy",
    "fit_exit_policy",
    "fit_network_selection",
    "fit_thresholds",
]

CONFIDENCE_FEATURES = ("max_log_softmax", "log_softmax_gap", "entropy", "max_softmax")


@dataclass(frozen=True)
class ChainPredictions:
    """What each classifier of a chain predicts on one split.

    Args:
        names: one per classifier, e.g. ``FFF/exit0``.
        logits: [K, N, C] logits of every classifier for every input.
        labels: [N] true classes.
        costs: K cumulative costs of stopping at classifier k, strictly increasing.
        features: optional K tensors [N, F_k], each classifier's pooled representation.
    """

    names: tuple[str, ...]
    logits: Tensor
    labels: Tensor
    costs: tuple[float, ...]
    features: tuple[Tensor, ...] | None = None

    def __post_init__(self) -> None:
        k = len(self.names)
        if self.logits.dim() != 3 or self.logits.shape[0] != k or k < 1:
            raise ValueError(f"logits must be [K={k}, N, C], got {list(self.logits.shape)}")
        if self.labels.shape != (self.logits.shape[1],):
            raise ValueError(f"labels must be [N={self.logits.shape[1]}], got {list(self.labels.shape)}")
        if len(self.costs) != k or any(not math.isfinite(c) or c <= 0 for c in self.costs):
            raise ValueError(f"need {k} finite positive costs, got {self.costs}")
        if any(b <= a for a, b in zip(self.costs, self.costs[1:])):
            raise ValueError(f"costs must increase along the chain (cheapest first), got {self.costs}")
        if self.features is not None and (
            len(self.features) != k or any(f.shape[0] != self.logits.shape[1] for f in self.features)
        ):
            raise ValueError(f"features must be {k} tensors of {self.logits.shape[1]} rows")

    @property
    def num_nodes(self) -> int:
        return len(self.names)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    @cached_property
    def correct(self) -> Tensor:
        """[K, N] bool: classifier k is right on input n."""
        return self.logits.argmax(dim=2) == self.labels.unsqueeze(0)

    @cached_property
    def confidence(self) -> Tensor:
        """[K, N] max log-softmax in float64."""
        return F.log_softmax(self.logits.double(), dim=2).amax(dim=2)

    @cached_property
    def _confidence_features(self) -> list[Tensor]:
        return [confidence_features(z) for z in self.logits]

    def policy_inputs(self, k: int, representation: bool) -> Tensor:
        """The learned policy's input at classifier k: confidence features, then the representation if asked."""
        phi = self._confidence_features[k]
        if representation and self.features is not None:
            phi = torch.cat([phi, self.features[k].double()], dim=1)
        return phi

    def subset(self, index: Tensor) -> ChainPredictions:
        """The same chain on a subset of the inputs."""
        feats = None if self.features is None else tuple(f[index] for f in self.features)
        return ChainPredictions(self.names, self.logits[:, index], self.labels[index], self.costs, feats)


def confidence_features(logits: Tensor) -> Tensor:
    """[N, 4] float64: max log-softmax, its gap to the runner-up, entropy, max softmax (CONFIDENCE_FEATURES)."""
    logp = F.log_softmax(logits.double(), dim=1)
    top = logp.topk(min(2, logp.shape[1]), dim=1).values
    gap = top[:, 0] - top[:, 1] if top.shape[1] > 1 else torch.zeros_like(top[:, 0])
    entropy = -(logp.exp() * logp).sum(dim=1)
    return torch.stack([top[:, 0], gap, entropy, top[:, 0].exp()], dim=1)


def check_budget(budget: float, costs: Sequence[float]) -> None:
    """A budget must be a finite number no smaller than the cheapest classifier's cost."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget):
        raise ValueError(f"budget must be a finite number (an average cost), got {budget!r}")
    if budget < costs[0]:
        raise ValueError(
            f"budget {budget:.6g} is below the cost of the first classifier ({costs[0]:.6g}), the least any policy "
            f"can spend; choose a budget between {costs[0]:.6g} and {costs[-1]:.6g}"
        )


def check_lambda(lam: float) -> None:
    """The cost trade-off lambda must be a finite number >= 0."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lambda (error per full cost) must be a finite number >= 0, got {lam!r}")


@dataclass(frozen=True)
class PolicyResult:
    """Accuracy (0..1), average cost and the share of inputs stopping at each classifier."""

    accuracy: float
    avg_cost: float
    exit_fractions: tuple[float, ...]


def _result(chain: ChainPredictions, nodes: Tensor) -> PolicyResult:
    n = chain.num_samples
    correct = chain.correct[nodes, torch.arange(n)]
    costs = torch.tensor(chain.costs, dtype=torch.float64)
    counts = torch.bincount(nodes, minlength=chain.num_nodes).double() / n
    return PolicyResult(correct.double().mean().item(), costs[nodes].mean().item(), tuple(counts.tolist()))


@dataclass(frozen=True)
class ThresholdPolicy:
    """Stop at the first classifier k < K-1 whose max log-softmax is >= ``thresholds[k]``; else at the last."""

    thresholds: tuple[float, ...]

    def exit_nodes(self, chain: ChainPredictions) -> Tensor:
        if len(self.thresholds) != chain.num_nodes - 1:
            raise ValueError(f"{len(self.thresholds)} thresholds for a chain of {chain.num_nodes} classifiers")
        conf = chain.confidence
        nodes = torch.full((chain.num_samples,), chain.num_nodes - 1, dtype=torch.long)
        running = torch.ones(chain.num_samples, dtype=torch.bool)
        for k, t in enumerate(self.thresholds):
            stop = running & (conf[k] >= t)
            nodes[stop] = k
            running &= ~stop
        return nodes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: thresholds on the max log-softmax; None = never stop there, "any" = always stop."""

        def cell(t: float) -> float | str | None:
            return None if t == math.inf else "any" if t == -math.inf else t

        return {
            "kind": "confidence_thresholds",
            "confidence": "max_log_softmax",
            "thresholds": [cell(t) for t in self.thresholds],
        }


def _geometric_thresholds(conf: Tensor, q: float) -> ThresholdPolicy:
    """MSDNet's ``dynamic_eval_find_threshold``: a share proportional to q^k of the inputs leaves at exit k."""
    k_total, n = conf.shape
    probs = torch.tensor([q**k for k in range(1, k_total + 1)], dtype=torch.float64)
    probs = probs / probs.sum()
    running = torch.ones(n, dtype=torch.bool)
    thresholds = []
    for k in range(k_total - 1):
        out_n = math.floor(n * probs[k].item())
        t = math.inf
        remaining = conf[k][running]
        if out_n > 0 and remaining.numel() > 0:
            t = remaining.sort(descending=True).values[min(out_n, remaining.numel()) - 1].item()
        thresholds.append(t)
        running &= ~(conf[k] >= t)
    return ThresholdPolicy(tuple(thresholds))


def fit_thresholds(chain: ChainPredictions, budget: float, *, iterations: int = 40) -> ThresholdPolicy:
    """Thresholds whose average cost on ``chain`` (a held-out split) is the largest not above ``budget``."""
    check_budget(budget, chain.costs)
    if chain.num_nodes < 2:
        raise ValueError("a threshold policy needs at least two classifiers")
    conf = chain.confidence
    best = ThresholdPolicy((-math.inf,) * (chain.num_nodes - 1))  # everything stops at the first classifier
    best_cost = _result(chain, best.exit_nodes(chain)).avg_cost
    lo, hi = -30.0, 30.0  # log q: from "almost all at exit 0" to "almost all at the last exit"
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        policy = _geometric_thresholds(conf, math.exp(mid))
        cost = _result(chain, policy.exit_nodes(chain)).avg_cost
        if cost <= budget:
            lo = mid
            if cost >= best_cost:
                best, best_cost = policy, cost
        else:
            hi = mid
    top = _geometric_thresholds(conf, math.exp(hi))
    top_cost = _result(chain, top.exit_nodes(chain)).avg_cost
    if best_cost <= top_cost <= budget:
        best = top
    return best


@dataclass(frozen=True)
class LinearDecider:
    """Exit when ``weight . (phi - mean) / scale + bias > 0``; ``phi`` as in ``ChainPredictions.policy_inputs``."""

    weight: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def score(self, phi: Tensor) -> Tensor:
        if phi.shape[1] != len(self.weight):
            raise ValueError(f"this decider takes {len(self.weight)} features, got {phi.shape[1]}")
        w = torch.tensor(self.weight, dtype=torch.float64)
        z = (phi.double() - torch.tensor(self.mean, dtype=torch.float64)) / torch.tensor(
            self.scale, dtype=torch.float64
        )
        return z @ w + self.bias

    def decide(self, phi: Tensor) -> Tensor:
        """[N] bool: True = exit here."""
        return self.score(phi) > 0

    def to_dict(self) -> dict[str, Any]:
        return {"weight": list(self.weight), "bias": self.bias, "mean": list(self.mean), "scale": list(self.scale)}


def _fit_decider(phi: Tensor, label: Tensor, weight: Tensor, l2: float) -> LinearDecider:
    """Weighted L2-regularized logistic regression (label 1 = exit), solved with LBFGS in float64."""
    phi = phi.double()
    mean = phi.mean(dim=0)
    std = phi.std(dim=0, correction=0)
    scale = torch.where(std > 1e-9 * (1 + mean.abs()), std, torch.ones_like(std))  # constant inputs: scale 1
    z = (phi - mean) / scale
    total = weight.sum()
    pos = (weight * label).sum()
    dims = phi.shape[1]
    if total <= 0 or pos <= 0 or pos >= total:
        # Only one action is ever better (or none is): a constant decision; ties go to exit, the cheaper one.
        bias = -10.0 if total > 0 and pos <= 0 else 10.0
        return LinearDecider((0.0,) * dims, bias, tuple(mean.tolist()), tuple(scale.tolist()))
    w_norm = weight.double() / total
    params = torch.zeros(dims + 1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([params], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        logits = z @ params[:-1] + params[-1]
        loss = (w_norm * F.binary_cross_entropy_with_logits(logits, label.double(), reduction="none")).sum()
        loss = loss + l2 * params[:-1].pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    p = params.detach()
    return LinearDecider(tuple(p[:-1].tolist()), p[-1].item(), tuple(mean.tolist()), tuple(scale.tolist()))


@dataclass(frozen=True)
class LearnedExitPolicy:
    """Bolukbasi's policy: one ``LinearDecider`` per classifier but the last, trained for one ``lam``."""

    lam: float
    deciders: tuple[LinearDecider, ...]
    representation: bool = False
    names: tuple[str, ...] = field(default=())

    def exit_nodes(self, chain: ChainPredictions) -> Tensor:
        if len(self.deciders) != chain.num_nodes - 1:
            raise ValueError(f"policy has {len(self.deciders)} deciders, the chain {chain.num_nodes} classifiers")
        nodes = torch.full((chain.num_samples,), chain.num_nodes - 1, dtype=torch.long)
        running = torch.ones(chain.num_samples, dtype=torch.bool)
        for k, decider in enumerate(self.deciders):
            stop = running & decider.decide(chain.policy_inputs(k, self.representation))
            nodes[stop] = k
            running &= ~stop
        return nodes

    def to_dict(self) -> dict[str, Any]:
        features = list(CONFIDENCE_FEATURES) + (["representation"] if self.representation else [])
        return {
            "kind": "learned_exit_policy",
            "lambda": self.lam,
            "features": features,
            "decision": "exit at classifier k when weight . (features - mean) / scale + bias > 0",
            "classifiers": list(self.names),
            "deciders": [d.to_dict() for d in self.deciders],
        }


def fit_exit_policy(
    chain: ChainPredictions, lam: float, *, representation: bool = False, l2: float = 1e-3
) -> LearnedExitPolicy:
    """Train Bolukbasi's adaptive early-exit policy on ``chain`` (a held-out split), bottom-up.

    Args:
        chain: the classifiers' predictions on data the network was not trained on.
        lam: cost trade-off; the objective is ``error + lam * cost / costs[-1]`` per input.
        representation: also feed each classifier's pooled features to its decider (needs ``chain.features``).
        l2: weight of the deciders' L2 penalty.
    """
    check_lambda(lam)
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    if chain.num_nodes < 2:
        raise ValueError("an exit policy needs at least two classifiers")
    if representation and chain.features is None:
        raise ValueError("representation=True needs chain.features (collect the predictions with features)")
    costs = torch.tensor(chain.costs, dtype=torch.float64) / chain.costs[-1]
    error = (~chain.correct).double()
    value = error[-1] + lam * costs[-1]  # the value of reaching the last classifier
    deciders: list[LinearDecider] = []
    for k in reversed(range(chain.num_nodes - 1)):
        phi = chain.policy_inputs(k, representation)
        stop_value = error[k] + lam * costs[k]
        label = (stop_value <= value).double()
        decider = _fit_decider(phi, label, (stop_value - value).abs(), l2)
        value = torch.where(decider.decide(phi), stop_value, value)
        deciders.insert(0, decider)
    return LearnedExitPolicy(float(lam), tuple(deciders), representation, chain.names)


def fit_network_selection(
    chain: ChainPredictions, lam: float, *, representation: bool = False, l2: float = 1e-3
) -> LearnedExitPolicy:
    """Bolukbasi's network selection on a chain of sub-networks ordered by cost: run the cheapest, then exit or
    escalate to the next; trained exactly like ``fit_exit_policy`` (the chain's costs include prefix reuse)."""
    return fit_exit_policy(chain, lam, representation=representation, l2=l2)


def evaluate_policy(policy: ThresholdPolicy | LearnedExitPolicy, chain: ChainPredictions) -> PolicyResult:
    """Accuracy and average cost of a policy on a chain's predictions (e.g. the test split)."""
    return _result(chain, policy.exit_nodes(chain))
