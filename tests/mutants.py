"""Planted bugs for the mutation check (tests/test_mutation_check.py), one per pytest run.

Loaded with ``-p mutants`` and chosen by ``ONDEVICE_MUTANT``; each replaces one function of the package by a
plausibly wrong one before the tests import it. The check passes when the tests named for the bug fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch


def _evaluate_scores_the_super_net() -> None:
    import ondevice.evaluate as evaluate
    from ondevice.models import super_net

    real = evaluate.accuracy
    evaluate.accuracy = lambda model, data, gates, **kw: real(model, data, super_net(model.num_stages), **kw)


def _profiler_times_the_first_setting() -> None:
    import ondevice.profile as profile

    real = profile.measure_latency

    def first_only(program, settings, **kw):
        table = real(program, settings[:1], **kw)
        return {str(g): table[str(settings[0])] for g in settings}

    profile.measure_latency = first_only


def _coreml_functions_traced_with_other_gates() -> None:
    import ondevice.export.coreml as coreml
    from ondevice.models import Gates

    real = coreml.FixedGates

    def next_setting(model, gates, **kwargs):
        flipped = Gates((not gates.skip[0], *gates.skip[1:]))  # the first stage's gate the other way round
        return real(model, flipped, **kwargs)

    coreml.FixedGates = next_setting


def _manifest_accepts_nan() -> None:
    import ondevice.contract.schemas as schemas

    schemas._Validator = schemas.jsonschema.Draft202012Validator


def _checkpoints_load_any_pickle() -> None:
    real = torch.load
    torch.load = lambda *args, **kwargs: real(*args, **{**kwargs, "weights_only": False})


def _policy_vectors_check_nothing() -> None:
    import ondevice.policy.vectors as vectors

    vectors._check_vectors = lambda recorded: []


MUTANTS: dict[str, Callable[[], None]] = {
    "evaluate_scores_the_super_net": _evaluate_scores_the_super_net,
    "profiler_times_the_first_setting": _profiler_times_the_first_setting,
    "coreml_functions_traced_with_other_gates": _coreml_functions_traced_with_other_gates,
    "manifest_accepts_nan": _manifest_accepts_nan,
    "checkpoints_load_any_pickle": _checkpoints_load_any_pickle,
    "policy_vectors_check_nothing": _policy_vectors_check_nothing,
}


def pytest_configure(config: object) -> None:
    MUTANTS[os.environ["ONDEVICE_MUTANT"]]()
