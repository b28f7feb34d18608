import pytest
import torch

from ondevice.models import Gates, all_gates, base_net, gates_tensor, super_net


def test_parse_and_print_round_trip():
    g = Gates.parse("TFTF", 4)
    assert g.skip == (True, False, True, False)
    assert str(g) == "TFTF"
    assert g.name == "TFTF"
    assert g.num_skipped == 2


def test_super_and_base_names():
    assert super_net(3).name == "super-net" and str(super_net(3)) == "FFF"
    assert base_net(3).name == "base-net" and str(base_net(3)) == "TTT"


def test_gates_tensor_is_int32_one_per_stage():
    t = gates_tensor("TFT", 3)
    assert t.dtype == torch.int32 and t.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="3 stages"):
        gates_tensor("TF", 3)


def test_all_gates_order_and_count():
    settings = all_gates(4)
    assert len(settings) == 16 == len(set(settings))
    assert settings[0] == super_net(4) and settings[-1] == base_net(4)
    assert [str(g) for g in all_gates(2)] == ["FF", "FT", "TF", "TT"]


@pytest.mark.parametrize("text", ["TFX", "", "tf", "T F"])
def test_parse_rejects_bad_letters(text):
    with pytest.raises(ValueError, match="one letter T"):
        Gates.parse(text, 3)


def test_wrong_length_names_expected_length():
    with pytest.raises(ValueError, match="3 stages.*'FFF'"):
        Gates.parse("TF", 3)
    with pytest.raises(ValueError, match="has 3 stages"):
        Gates.coerce([True, False], 3)


def test_coerce_accepts_the_usual_forms():
    expected = Gates((True, False, True))
    assert Gates.coerce("TFT", 3) == expected
    assert Gates.coerce([True, False, True], 3) == expected
    assert Gates.coerce([1, 0, 1], 3) == expected
    assert Gates.coerce(torch.tensor([1, 0, 1]), 3) == expected
    assert Gates.coerce(expected, 3) is expected
    assert Gates.coerce(None, 3) == super_net(3)


@pytest.mark.parametrize("bad", [[0.5, 1, 0], [2, 0, 0], ["T", "F", "T"]])
def test_coerce_rejects_non_bool_entries(bad):
    with pytest.raises(TypeError, match="bool or 0/1"):
        Gates.coerce(bad, 3)


def test_constructor_checks_types():
    with pytest.raises(TypeError):
        Gates((1, 0))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Gates(())
    with pytest.raises(TypeError, match="Gates, a 'TFTF' string"):
        Gates.coerce(3.0, 3)  # type: ignore[arg-type]
