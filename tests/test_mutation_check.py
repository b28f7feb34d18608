"""The mutation check: each planted bug of tests/mutants.py must make the tests named for it fail.

A test that stops checking its number (asserts only that it exists, or compares with itself) lets its bug
through, and this test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mutants import MUTANTS

TESTS = Path(__file__).resolve().parent
CATCHERS = {
    "evaluate_scores_the_super_net": "test_oracles.py::test_evaluate_scores_each_gate_setting_with_its_own_sub_network",
    "profiler_times_the_first_setting": "test_oracles.py::test_profiler_times_each_gate_setting_with_its_own_gates",
    "coreml_functions_traced_with_other_gates": "test_export_coreml.py::test_each_function_holds_its_own_sub_network",
    "manifest_accepts_nan": "test_contract.py::test_non_finite_numbers_are_refused_in_the_manifest",
    "checkpoints_load_any_pickle": "test_train.py::test_unreadable_checkpoints_get_a_clear_error",
    "policy_vectors_check_nothing": "test_policy_vectors.py",
}


def test_every_mutant_has_its_catchers():
    assert set(CATCHERS) == set(MUTANTS)


@pytest.mark.parametrize("mutant", sorted(CATCHERS))
def test_the_planted_bug_is_caught(mutant):
    env = {
        **os.environ,
        "ONDEVICE_MUTANT": mutant,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "mutants", "-p", "no:cacheprovider", CATCHERS[mutant]],
        cwd=TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, f"{mutant} was not caught by {CATCHERS[mutant]}:\n{done.stdout[-2000:]}"
