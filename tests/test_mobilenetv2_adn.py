"""MobileNetV2-ADN: official layout and checkpoint import, gate semantics, costs, parity with the official logits."""

from __future__ import annotations

import json

import pytest
import torch
from official_layout import EXPECT, fill_state_dict, layout_state_dict, official_layout, reference_input
from torch import nn

from ondevice.models import Gates, all_gates, build_model, list_models, super_net
from ondevice.models.cost import count_flops, count_params_used
from ondevice.models.mobilenetv2_adn import AdnMobileNetV2, mobilenet_v2_adn, mobilenet_v2_adn_small
from ondevice.models.official import load_official_state_dict

ARCH = "mobilenet_v2_adn"
PARITY_FILE = EXPECT / f"official_{ARCH}.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def layout() -> dict:
    return official_layout(ARCH)


@pytest.fixture(scope="module")
def official() -> AdnMobileNetV2:
    """The ImageNet model with deterministic non-trivial weights (so that main and skip norms differ)."""
    model = mobilenet_v2_adn()
    model.load_state_dict(fill_state_dict(model.state_dict()))
    return model.eval()


# --- layout and checkpoint import -----------------------------------------------------------------------------


def test_state_dict_matches_official_layout(layout: dict) -> None:
    model = mobilenet_v2_adn()
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert ours == layout["state_dict"]  # keys, shapes, dtypes and order
    assert {name for name, _ in model.named_buffers()} == set(layout["buffer_keys"])
    assert sum(p.numel() for p in model.parameters()) == layout["params_total"]


def test_small_variant_has_the_same_modules(layout: dict) -> None:
    model = mobilenet_v2_adn_small(in_chans=1)
    assert list(model.state_dict()) == [key for key, *_ in layout["state_dict"]]


def test_skip_norms_only_in_mandatory_units(layout: dict) -> None:
    model = mobilenet_v2_adn()
    skip_norms = {name for name, _ in model.named_modules() if name.endswith("norm_skip")}
    assert skip_norms == {row["module"] for row in layout["skip_norms"]}
    for index in range(model.num_stages):
        stage = model.stage(index)
        for i, block in enumerate(stage):
            assert block.skippable == (i >= stage.n_mandatory)


def test_loads_official_state_dict_strictly() -> None:
    state = layout_state_dict(ARCH)
    model = load_official_state_dict(mobilenet_v2_adn(), state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_loads_official_training_checkpoint() -> None:
    state = layout_state_dict(ARCH)
    ema = {f"module.{k}": v + 1 if v.is_floating_point() else v for k, v in state.items()}
    checkpoint = {"model": state, "model_ema": {**ema, "n_averaged": torch.tensor(3)}, "epoch": 7}
    model = load_official_state_dict(mobilenet_v2_adn(), checkpoint)
    assert torch.equal(model.state_dict()["classifier.1.weight"], state["classifier.1.weight"])
    model = load_official_state_dict(mobilenet_v2_adn(), checkpoint, prefer_ema=True)
    assert torch.equal(model.state_dict()["classifier.1.weight"], state["classifier.1.weight"] + 1)


def test_wrong_num_classes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"classifier\.1\.weight"):
        load_official_state_dict(mobilenet_v2_adn(num_classes=10), layout_state_dict(ARCH))


# --- registry and input --------------------------------------------------------------------------------------


def test_registered_with_input_specs() -> None:
    assert {"mobilenet_v2_adn", "mobilenet_v2_adn_small"} <= set(list_models("mobilenet*"))
    spec = build_model("mobilenet_v2_adn").input_spec
    assert (spec.in_chans, spec.image_size, spec.mean, spec.std) == (3, 224, IMAGENET_MEAN, IMAGENET_STD)
    spec = build_model("mobilenet_v2_adn_small", in_chans=1).input_spec
    assert (spec.in_chans, spec.image_size, spec.mean, spec.std) == (1, 32, (0.5,), (0.5,))


def test_gates_are_checked() -> None:
    model = mobilenet_v2_adn_small().eval()
    with pytest.raises(ValueError, match="5 stages"):
        model(torch.zeros(1, 3, 32, 32), "TTTT")
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, 1, 32, 32))


# --- gate semantics ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "in_chans", "size"), [("mobilenet_v2_adn", 3, 32), ("mobilenet_v2_adn_small", 1, 28)])
def test_forward_every_gate_setting(name: str, in_chans: int, size: int) -> None:
    model = build_model(name, num_classes=7, in_chans=in_chans)
    model.load_state_dict(fill_state_dict(model.state_dict()))
    model.eval()
    x = torch.randn(2, in_chans, size, size)
    with torch.no_grad():
        outputs = {str(g): model(x, g) for g in all_gates(model.num_stages)}
        assert torch.equal(model(x), outputs["FFFFF"])  # no gates: super-net (the official default is base-net)
    assert len(outputs) == 32
    for out in outputs.values():
        assert out.shape == (2, 7)
        assert torch.isfinite(out).all()
    settings = list(outputs)
    for i, a in enumerate(settings):
        for b in settings[i + 1 :]:
            assert not torch.allclose(outputs[a], outputs[b], atol=1e-5), f"{a} and {b} give the same logits"


def test_stages_hold_every_layer_their_gate_switches(official: AdnMobileNetV2, layout: dict) -> None:
    """forward_stage(i) runs exactly the skip norms official gate i switches (features.0/1 in 0, 7/8 in 4)."""
    called: list[str] = []
    hooks = [
        module.register_forward_hook(lambda m, args, out, name=name: called.append(name))
        for name, module in official.named_modules()
        if name.endswith("norm_skip")
    ]
    try:
        x = official.forward_stem(torch.randn(1, 3, 64, 64))
        for index in range(official.num_stages):
            called.clear()
            with torch.no_grad():
                official.forward_stage(index, x, False)
            assert called == []
            with torch.no_grad():
                x = official.forward_stage(index, x, True)
            assert set(called) == set(layout["stages"][index]["skip_norms_used_when_true"])
    finally:
        for hook in hooks:
            hook.remove()


def test_every_feature_runs_in_some_stage(official: AdnMobileNetV2) -> None:
    ran: set[int] = set()
    hooks = [m.register_forward_hook(lambda m, a, o, i=i: ran.add(i)) for i, m in enumerate(official.features)]
    try:
        x = torch.randn(1, 3, 64, 64)
        assert official.forward_stem(x) is x
        with torch.no_grad():
            for index in range(official.num_stages):
                x = official.forward_stage(index, x, False)
    finally:
        for hook in hooks:
            hook.remove()
    assert ran == set(range(len(official.features)))


def test_residual_only_where_shape_is_kept() -> None:
    model = mobilenet_v2_adn()
    blocks = [model.features[1], *(b for s in range(model.num_stages) for b in model.stage(s)), model.features[7]]
    residual = [b.use_res_connect for b in blocks]
    # MobileNetV2: the first block of each (t, c, n, s) group changes width or resolution, the others add.
    assert residual == [i > 0 for n in (1, 2, 3, 4, 3, 3, 1) for i in range(n)]
    assert isinstance(model.features[8].activation, nn.ReLU6)
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[0].p == 0.2


# --- costs ---------------------------------------------------------------------------------------------------


def test_params_used_match_official(official: AdnMobileNetV2, layout: dict) -> None:
    expected = layout["params_used_by_config"]
    for gates in all_gates(official.num_stages):
        assert count_params_used(official, gates) == expected[str(gates)], str(gates)
    assert expected["FFFFF"] == layout["runs"]["super_net"]["params_used"]
    assert expected["TTTTT"] == layout["runs"]["base_net"]["params_used"]


def test_flops_decrease_when_skipping(official: AdnMobileNetV2) -> None:
    flops = {g.skip: count_flops(official, g) for g in all_gates(5)}
    for skip, value in flops.items():
        for i, flag in enumerate(skip):
            if not flag:  # skipping one more stage always saves FLOPs
                assert flops[(*skip[:i], True, *skip[i + 1 :])] < value


def test_flops_match_official_at_224(official: AdnMobileNetV2, layout: dict) -> None:
    for gates in (super_net(5), Gates.parse("TTTTT"), Gates.parse("FTFTF")):
        gmacs = count_flops(official, gates) / 2e9
        assert gmacs == pytest.approx(layout["gmacs_by_config_flopcounter"][str(gates)], abs=6e-5)


# --- small variant -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("in_chans", "size"), [(1, 28), (3, 32)])
def test_small_variant_trains(in_chans: int, size: int) -> None:
    torch.manual_seed(0)
    model = mobilenet_v2_adn_small(in_chans=in_chans)
    x, y = torch.randn(8, in_chans, size, size), torch.randint(0, 10, (8,))
    for gates in ("FFFFF", "TTTTT"):
        loss = nn.functional.cross_entropy(model(x, gates), y)
        loss.backward()
        assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())  # super + base together touch every parameter
    assert count_flops(model.eval(), super_net(5)) < 3 * 10**7  # < 15 M multiply-adds: cheap to train on CPU


# --- parity with the official implementation -----------------------------------------------------------------


def test_parity_with_official_logits() -> None:
    """Logits of every gate setting equal the official wchkang/depth model's on the same weights and input."""
    assert PARITY_FILE.is_file(), f"{PARITY_FILE} is missing: generate it from the official code (see official_layout)"
    expect = json.loads(PARITY_FILE.read_text())
    model = mobilenet_v2_adn(num_classes=expect["num_classes"])
    model.load_state_dict(fill_state_dict(model.state_dict()))
    model.eval()
    spec = expect["input"]
    x = reference_input(spec["in_chans"], spec["size"], spec["batch"])
    assert set(expect["logits"]) == {str(g) for g in all_gates(model.num_stages)}
    with torch.no_grad():
        for gates, logits in expect["logits"].items():
            torch.testing.assert_close(model(x, gates), torch.tensor(logits), atol=1e-4, rtol=1e-4, msg=gates)
