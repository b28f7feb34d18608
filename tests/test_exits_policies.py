"""Exit policies: Bolukbasi's learned policy on problems with a known optimum, budgeted confidence thresholds."""

import json
import math

import pytest
import torch

from ondevice.exits.policies import (
    ChainPredictions,
    ThresholdPolicy,
    evaluate_policy,
    fit_exit_policy,
    fit_network_selection,
    fit_thresholds,
)


def _logits_right_when(right: torch.Tensor, classes: int = 2) -> torch.Tensor:
    """Logits that predict class 0 (the label) where ``right`` is True and class 1 elsewhere, same confidence."""
    z = torch.zeros(len(right), classes)
    z[:, 0] = torch.where(right, 1.0, -1.0)
    return z


def _synthetic(thresholds, costs, n=3000, seed=0):
    """Classifier k is right iff x > thresholds[k] (the last always is); x is the representation every node sees."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g) * 2 - 1
    right = [x > t for t in thresholds] + [torch.ones(n, dtype=torch.bool)]
    logits = torch.stack([_logits_right_when(r) for r in right])
    names = tuple(f"exit{k}" for k in range(len(right)))
    return x, ChainPredictions(names, logits, torch.zeros(n, dtype=torch.long), costs, tuple(x[:, None] for _ in right))


def _objective(chain, nodes, lam):
    costs = torch.tensor(chain.costs, dtype=torch.float64) / chain.costs[-1]
    wrong = ~chain.correct[nodes, torch.arange(chain.num_samples)]
    return (wrong.double() + lam * costs[nodes]).mean().item()


def test_learned_policy_finds_the_known_optimum_of_a_two_exit_problem():
    x, chain = _synthetic([0.0], (0.5, 1.0))
    # lambda 0.5: stopping early costs 0.25, an error 1 -> optimum: stop exactly where exit 0 is right (x > 0).
    policy = fit_exit_policy(chain, 0.5, representation=True, l2=1e-6)
    nodes = policy.exit_nodes(chain)
    assert ((nodes == 0) == (x > 0)).double().mean() > 0.99
    optimum = _objective(chain, (x <= 0).long(), 0.5)
    assert optimum == pytest.approx(0.375, abs=0.02)
    assert _objective(chain, nodes, 0.5) <= optimum + 0.005
    # lambda 3: going on costs more than any error -> always stop at the first exit.
    assert (fit_exit_policy(chain, 3.0, representation=True).exit_nodes(chain) == 0).all()


def test_learned_policy_is_trained_bottom_up_on_three_exits():
    x, chain = _synthetic([0.5, -0.5], (1.0, 2.0, 3.0))
    policy = fit_exit_policy(chain, 0.3, representation=True, l2=1e-6)
    optimal = torch.where(x > 0.5, 0, torch.where(x > -0.5, 1, 2))  # stop at the first exit that is right
    nodes = policy.exit_nodes(chain)
    assert (nodes == optimal).double().mean() > 0.98
    assert _objective(chain, nodes, 0.3) <= _objective(chain, optimal, 0.3) + 0.01
    result = evaluate_policy(policy, chain)
    assert result.accuracy > 0.98 and sum(result.exit_fractions) == pytest.approx(1.0)


def test_network_selection_escalates_only_when_the_cheap_network_is_wrong():
    x, chain = _synthetic([-0.6], (1.0, 4.0))  # cheap network right on 80% of inputs
    policy = fit_network_selection(chain, 0.2, representation=True, l2=1e-6)
    result = evaluate_policy(policy, chain)
    assert result.accuracy > 0.99 and result.avg_cost < 1.0 + 3.0 * 0.25


def test_learned_policy_on_confidence_alone():
    g = torch.Generator().manual_seed(1)
    n = 2000
    margin = torch.rand(n, generator=g) * 4
    right = margin > 1.0  # confident -> right
    early = torch.stack([margin, torch.zeros(n)], 1)
    early[~right] = early[~right].flip(1)
    logits = torch.stack([early, torch.tensor([[5.0, 0.0]]).expand(n, 2)])
    chain = ChainPredictions(("a", "b"), logits, torch.zeros(n, dtype=torch.long), (1.0, 2.0))
    policy = fit_exit_policy(chain, 0.4, l2=1e-6)
    assert evaluate_policy(policy, chain).accuracy > 0.98
    assert (policy.exit_nodes(chain) == 0).double().mean() > 0.6
    with pytest.raises(ValueError, match="needs chain.features"):
        fit_exit_policy(chain, 0.4, representation=True)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.35, 0.6, 0.9, 1.0])
def test_thresholds_meet_a_requested_budget_on_held_out_data(fraction):
    g = torch.Generator().manual_seed(0)
    n, k = 1000, 4
    logits = torch.randn(k, n, 10, generator=g) * torch.linspace(1, 4, k).view(k, 1, 1)
    labels = torch.randint(0, 10, (n,), generator=g)
    costs = (1.0, 2.2, 3.1, 4.0)
    held_out = ChainPredictions(tuple("abcd"), logits, labels, costs)
    budget = costs[0] + fraction * (costs[-1] - costs[0])
    policy = fit_thresholds(held_out, budget)
    spent = evaluate_policy(policy, held_out).avg_cost
    assert spent <= budget + 1e-9
    assert spent >= budget - 0.01 * (costs[-1] - costs[0])  # the budget is used, not wasted
    json.dumps(policy.to_dict(), allow_nan=False)


def test_thresholds_spend_nothing_beyond_the_full_cost_and_generalize_to_test_data():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2000, 5, generator=g) * 3
    labels = torch.randint(0, 5, (2000,), generator=g)
    chain = ChainPredictions(("a", "b", "c"), logits, labels, (1.0, 2.0, 3.0))
    held_out, test = chain.subset(torch.arange(1000)), chain.subset(torch.arange(1000, 2000))
    assert fit_thresholds(held_out, 99.0).thresholds == (math.inf, math.inf)
    spent = evaluate_policy(fit_thresholds(held_out, 2.0), test).avg_cost
    assert abs(spent - 2.0) < 0.1


@pytest.mark.parametrize("budget", [float("nan"), float("inf"), -1.0, 0.0, 0.5, True, "1"])
def test_bad_budgets_get_clear_errors(budget):
    chain = ChainPredictions(("a", "b"), torch.randn(2, 4, 3), torch.zeros(4, dtype=torch.long), (1.0, 2.0))
    with pytest.raises(ValueError, match="budget"):
        fit_thresholds(chain, budget)


@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf"), None])
def test_bad_lambdas_get_clear_errors(lam):
    _, chain = _synthetic([0.0], (0.5, 1.0), n=20)
    with pytest.raises(ValueError, match="lambda"):
        fit_exit_policy(chain, lam)


def test_chains_are_validated():
    with pytest.raises(ValueError, match="costs must increase"):
        ChainPredictions(("a", "b"), torch.randn(2, 4, 3), torch.zeros(4, dtype=torch.long), (2.0, 1.0))
    with pytest.raises(ValueError, match="logits must be"):
        ChainPredictions(("a",), torch.randn(2, 4, 3), torch.zeros(4, dtype=torch.long), (1.0,))
    with pytest.raises(ValueError, match="thresholds for a chain"):
        ThresholdPolicy((0.0, 0.0)).exit_nodes(
            ChainPredictions(("a", "b"), torch.randn(2, 4, 3), torch.zeros(4, dtype=torch.long), (1.0, 2.0))
        )


def test_learned_policy_serializes_for_the_apps():
    _, chain = _synthetic([0.0], (0.5, 1.0), n=200)
    data = fit_exit_policy(chain, 0.5, representation=True).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["kind"] == "learned_exit_policy" and len(data["deciders"]) == 1 and "weight" in text
