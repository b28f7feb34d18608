"""The command line's shape: each stage's verbs, the nested quant verbs and their flat aliases, clean errors."""

from __future__ import annotations

import pytest

from ondevice.cli import _parser, main
from ondevice.quant import NOT_OFFERED, RECIPES


def test_quant_recipes_nested_and_flat_alias_print_every_recipe(capsys):
    assert main(["quant", "recipes"]) == 0
    nested = capsys.readouterr().out
    assert main(["quant-recipes"]) == 0
    assert capsys.readouterr().out == nested
    assert all(name in nested for name in [*RECIPES, *NOT_OFFERED])


@pytest.mark.parametrize(
    ("argv", "run"),
    [
        (["train", "--out", "r"], "_run_train"),
        (["recalibrate", "c.pt", "--out", "n.pt"], "_run_recalibrate"),
        (["eval", "c.pt"], "_run_eval"),
        (["compare"], "_run_compare"),
        (["demo"], "_run_demo"),
        (["export", "c.pt", "--out", "b"], "run_export"),
        (["profile", "b"], "run_profile"),
        (["policy", "decide", "b"], "run_policy"),
        (["exits", "eval", "c.pt"], "run_exits"),
        (["quant", "study", "c.pt", "--out", "s"], "_run_study"),
        (["quant-study", "c.pt", "--out", "s"], "_run_study"),
        (["quant", "qat", "c.pt", "--out", "q"], "_run_qat"),
        (["qat", "c.pt", "--out", "q"], "_run_qat"),
    ],
)
def test_each_verb_runs_its_own_function(argv, run):
    assert _parser().parse_args(argv).run.__name__ == run


def test_a_missing_checkpoint_is_an_error_message_not_a_traceback(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none.pt")]) == 2
    assert "ondevice eval: error: no checkpoint at" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "value"), [("0.81", 0.81), ("81%", 0.81), ("0", 0.0), ("100%", 1.0)])
def test_policy_floor_takes_a_fraction_or_a_percentage(text, value):
    assert _parser().parse_args(["policy", "decide", "b", "--floor", text]).floor == pytest.approx(value)


def test_policy_floor_typed_as_a_percentage_number_is_refused(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["policy", "decide", "b", "--floor", "81"])
    assert "for a percentage write 81%" in capsys.readouterr().err
