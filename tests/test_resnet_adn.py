import pytest
import torch
from official_layout import layout_state_dict, official_layout

from ondevice.models import Gates, all_gates, build_model, list_models
from ondevice.models.cost import count_flops, count_params_used
from ondevice.models.official import OfficialCheckpointError, load_official_state_dict


@pytest.fixture(scope="module")
def resnet50():
    return build_model("resnet50_adn").eval()


def test_registry_lists_resnets_and_rejects_unknown_names():
    assert {"resnet20_adn", "resnet50_adn"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model 'resnet51'.*resnet50_adn"):
        build_model("resnet51")


def test_small_resnet_every_gate_setting_differs_and_costs_less_when_skipping():
    torch.manual_seed(0)
    model = build_model("resnet20_adn", num_classes=10, in_chans=1).eval()
    # Make the skip norms differ from the main norms, as after training.
    for name, buf in model.named_buffers():
        if "_skip" in name and name.endswith("running_mean"):
            buf.normal_(0, 0.1)
    x = torch.randn(2, 1, 28, 28)
    outputs = {}
    with torch.no_grad():
        for g in all_gates(3):
            out = model(x, g)
            assert out.shape == (2, 10)
            outputs[str(g)] = out
    keys = list(outputs)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not torch.allclose(outputs[a], outputs[b]), (a, b)
    flops = {g: count_flops(model, g) for g in keys}
    assert flops["TTT"] < flops["FTT"] < flops["FFT"] < flops["FFF"]
    params = {g: count_params_used(model, g) for g in ("FFF", "TTT")}
    assert params["TTT"] < params["FFF"]


def test_skipped_stage_uses_skip_norms_and_not_the_skippable_block():
    torch.manual_seed(0)
    model = build_model("resnet20_adn", num_classes=10, in_chans=1).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        before = {g: model(x, g) for g in ("FFF", "TFF")}
        model.layer1[0].bn1_skip.weight.mul_(0.5)  # used only when stage 1 is skipped
        after_norm = {g: model(x, g) for g in ("FFF", "TFF")}
        model.layer1[2].conv1.weight.mul_(0.5)  # skippable block: used only when stage 1 runs it
        after_conv = {g: model(x, g) for g in ("FFF", "TFF")}
    torch.testing.assert_close(after_norm["FFF"], before["FFF"])
    assert not torch.allclose(after_norm["TFF"], before["TFF"])
    torch.testing.assert_close(after_conv["TFF"], after_norm["TFF"])
    assert not torch.allclose(after_conv["FFF"], after_norm["FFF"])
    assert not hasattr(model.layer1[2], "bn1_skip") and model.layer1.n_mandatory == 2


def test_forward_rejects_wrong_gates_and_input():
    model = build_model("resnet20_adn", num_classes=10, in_chans=1)
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(ValueError, match="has 3 stages"):
        model(x, "TFTF")
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        model(torch.randn(1, 3, 28, 28))


def test_resnet50_keys_match_official_layout_in_order(resnet50):
    layout = official_layout("resnet50_adn")
    ours = [(k, list(v.shape)) for k, v in resnet50.state_dict().items()]
    assert ours == [(k, shape) for k, shape, *_ in layout["state_dict"]]


def test_resnet50_flops_and_params_match_official_counts(resnet50):
    layout = official_layout("resnet50_adn")
    for g in ("FFFF", "TFTF", "TTTT"):
        assert count_flops(resnet50, g) / 2e9 == pytest.approx(layout["gmacs_by_config_flopcounter"][g], abs=1e-4)
        assert count_params_used(resnet50, g, image_size=64) == layout["params_used_by_config"][g]


def test_resnet50_loads_official_state_dict_and_training_checkpoint(resnet50):
    official = layout_state_dict("resnet50_adn")
    load_official_state_dict(resnet50, official)
    torch.testing.assert_close(resnet50.layer2[1].bn2_skip.running_var, official["layer2.1.bn2_skip.running_var"])
    ema = {f"module.{k}": v + 1 for k, v in official.items() if v.is_floating_point()}
    ema.update({f"module.{k}": v for k, v in official.items() if not v.is_floating_point()})
    ema["n_averaged"] = torch.tensor(7)
    load_official_state_dict(resnet50, {"model": official, "model_ema": ema}, prefer_ema=True)
    torch.testing.assert_close(resnet50.fc.bias, official["fc.bias"] + 1)
    load_official_state_dict(resnet50, {"model": official, "model_ema": ema})
    torch.testing.assert_close(resnet50.fc.bias, official["fc.bias"])


def test_official_import_names_missing_and_unexpected_keys(resnet50):
    official = layout_state_dict("resnet50_adn")
    del official["layer3.0.bn1_skip.weight"]
    official["layer5.0.conv1.weight"] = torch.zeros(1)
    official["fc.weight"] = torch.zeros(10, 2048)
    with pytest.raises(OfficialCheckpointError) as info:
        load_official_state_dict(resnet50, official)
    message = str(info.value)
    assert "1 missing: layer3.0.bn1_skip.weight" in message
    assert "1 unexpected: layer5.0.conv1.weight" in message
    assert "fc.weight: checkpoint [10, 2048] vs model [1000, 2048]" in message


def test_official_logits_parity():
    """Logits equal the official wchkang/depth ResNet-50 for every gate setting (tests/expect, made with its code)."""
    import json

    from official_layout import EXPECT, fill_state_dict, reference_input

    expect = json.loads((EXPECT / "official_resnet50_adn.json").read_text())
    model = build_model("resnet50_adn", num_classes=expect["num_classes"]).eval()
    model.load_state_dict(fill_state_dict(model.state_dict()))
    x = reference_input(expect["input"]["in_chans"], expect["input"]["size"], expect["input"]["batch"])
    assert len(expect["logits"]) == 16
    with torch.no_grad():
        for gates, logits in expect["logits"].items():
            torch.testing.assert_close(model(x, Gates.parse(gates, 4)), torch.tensor(logits), atol=1e-4, rtol=1e-4)
