"""ViT-ADN: the official ViT-B/16-ADN layout, its gate semantics, and the small variant used for training here."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
from official_layout import EXPECT, fill_state_dict, layout_state_dict, official_layout, reference_input

from ondevice.models import AdnModel, Gates, all_gates, build_model, list_models
from ondevice.models.cost import count_flops, count_params_used
from ondevice.models.official import OfficialCheckpointError, load_official_state_dict
from ondevice.models.vit_adn import AdnVisionTransformer, vit_b_16_adn, vit_tiny_adn

LAYOUT = official_layout("vit_b_16_adn")
EXPECTED_LOGITS = EXPECT / "official_vit_b_16_adn.json"


def _filled(model: AdnModel) -> AdnModel:
    """The model with deterministic non-zero weights (the fresh head is all zeros), in eval mode."""
    model.load_state_dict(fill_state_dict(model.state_dict()))
    return model.eval()


@pytest.fixture(scope="module")
def vit_b16() -> AdnVisionTransformer:
    """ViT-B/16-ADN with the official layout's deterministic weights; built once (86 M parameters)."""
    model = vit_b_16_adn()
    load_official_state_dict(model, layout_state_dict("vit_b_16_adn"))
    return model.eval()


@pytest.fixture(scope="module")
def tiny() -> AdnVisionTransformer:
    return _filled(vit_tiny_adn())


# --- the official layout ---------------------------------------------------------------------------------------


def test_state_dict_is_the_official_layout(vit_b16: AdnVisionTransformer) -> None:
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in vit_b16.state_dict().items()]
    assert ours == [row[:3] for row in LAYOUT["state_dict"]]  # keys, shapes, dtypes and order
    assert sum(p.numel() for p in vit_b16.parameters()) == LAYOUT["params_total"]
    assert vit_b16.num_stages == LAYOUT["num_skippable_stages"] == 4


def test_skip_norms_only_in_mandatory_layers(vit_b16: AdnVisionTransformer) -> None:
    layers = vit_b16.encoder.layers
    assert [i for i, layer in enumerate(layers) if layer.skippable] == [2, 5, 8, 11]
    ours = sorted(n for n, m in vit_b16.named_modules() if n.endswith("_skip"))
    assert ours == sorted(row["module"] for row in LAYOUT["skip_norms"])
    for layer in layers:
        if not layer.skippable:
            assert layer.ln_1_skip is not layer.ln_1 and layer.ln_1_skip.eps == layer.ln_1.eps == 1e-6


def test_loads_official_state_dict_and_training_checkpoint(vit_b16: AdnVisionTransformer) -> None:
    official = layout_state_dict("vit_b_16_adn")
    assert all(torch.equal(v, official[k]) for k, v in vit_b16.state_dict().items())  # the fixture loaded it

    model = vit_b_16_adn()
    wrong_head = {**official, "heads.head.weight": torch.zeros(10, 768), "heads.head.bias": torch.zeros(10)}
    with pytest.raises(OfficialCheckpointError, match=r"heads\.head\.weight"):
        load_official_state_dict(model, wrong_head)
    checkpoint = {
        "model": {k: torch.zeros_like(v) for k, v in official.items()},
        "model_ema": {**{"module." + k: v for k, v in official.items()}, "n_averaged": torch.tensor(7)},
    }
    load_official_state_dict(model, checkpoint, prefer_ema=True)
    assert all(torch.equal(v, official[k]) for k, v in model.state_dict().items())


def test_fresh_model_has_zero_head_like_the_official() -> None:
    model = vit_tiny_adn().eval()
    assert torch.count_nonzero(model.heads.head.weight) == 0
    assert torch.count_nonzero(model(model.example_input(2))) == 0


@pytest.mark.parametrize("gates", ["FFFF", "TTTT"])
def test_params_used_match_official(vit_b16: AdnVisionTransformer, gates: str) -> None:
    assert count_params_used(vit_b16, gates) == LAYOUT["params_used_by_config"][gates]


@pytest.mark.parametrize("gates", ["FFFF", "TFTF", "TTTT"])
def test_macs_match_official(vit_b16: AdnVisionTransformer, gates: str) -> None:
    assert count_flops(vit_b16, gates) / 2 / 1e9 == pytest.approx(
        LAYOUT["gmacs_by_config_flopcounter"][gates], abs=1e-4
    )


@pytest.mark.slow
def test_logits_match_official_code() -> None:
    """Logits of the official wchkang/depth model on the same weights, for every gate setting."""
    assert EXPECTED_LOGITS.is_file(), (
        f"{EXPECTED_LOGITS} is missing: it holds the official code's logits (see tests/official_layout.py)"
    )
    expected = json.loads(EXPECTED_LOGITS.read_text())
    model = _filled(vit_b_16_adn(num_classes=expected["num_classes"]))
    spec = expected["input"]
    x = reference_input(spec["in_chans"], spec["size"], spec["batch"])
    assert sorted(expected["logits"]) == sorted(str(g) for g in all_gates(4))
    with torch.no_grad():
        for gates, logits in expected["logits"].items():
            torch.testing.assert_close(model(x, gates), torch.tensor(logits), atol=1e-4, rtol=1e-4, msg=gates)


# --- gate semantics, on the small variant ----------------------------------------------------------------------


def test_every_gate_setting_runs_and_differs(tiny: AdnVisionTransformer) -> None:
    x = reference_input(3, 32, 2)
    with torch.no_grad():
        outputs = {str(g): tiny(x, g) for g in all_gates(tiny.num_stages)}
        default = tiny(x)
    assert len(outputs) == 16
    assert all(out.shape == (2, 10) and torch.isfinite(out).all() for out in outputs.values())
    assert torch.equal(default, outputs["FFFF"])  # no gates: the super-net, as in the official forward
    distinct = {tuple(out.flatten().tolist()) for out in outputs.values()}
    assert len(distinct) == 16


def test_skipping_a_stage_lowers_flops(tiny: AdnVisionTransformer) -> None:
    macs = {g: count_flops(tiny, g) for g in all_gates(tiny.num_stages)}
    for gates, cost in macs.items():
        for stage in range(gates.num_stages):
            if not gates[stage]:
                more_skipped = Gates(tuple(s or i == stage for i, s in enumerate(gates)))
                assert macs[more_skipped] < cost, (gates, more_skipped)
    assert macs[Gates.parse("TTTT")] / macs[Gates.parse("FFFF")] == pytest.approx(0.5, abs=0.05)


def test_skip_norms_switch_with_their_stage() -> None:
    """Stage 0's skip norms act only when stage 0 is skipped; its skippable layer only when it is not."""
    x = reference_input(3, 32, 1)
    settings = ["FFFF", "TFFF", "FTFF", "FFFT", "FTTT", "TTTT"]

    def changed_by(edit: Callable[[AdnVisionTransformer], None]) -> set[str]:
        model = _filled(vit_tiny_adn())
        with torch.no_grad():
            before = {g: model(x, g) for g in settings}
            edit(model)
            return {g for g in settings if not torch.equal(model(x, g), before[g])}

    stage0_skipped = {g for g in settings if g[0] == "T"}
    layers = "encoder.layers.encoder_layer_"
    assert changed_by(lambda m: m.get_submodule(layers + "0.ln_1_skip").weight.mul_(2)) == stage0_skipped
    assert changed_by(lambda m: m.get_submodule(layers + "0.ln_2").bias.add_(1)) == set(settings) - stage0_skipped
    assert changed_by(lambda m: m.get_submodule(layers + "1.mlp.3").bias.add_(1)) == set(settings) - stage0_skipped
    assert changed_by(lambda m: m.get_submodule(layers + "6.ln_2_skip").bias.add_(1)) == {
        g for g in settings if g[3] == "T"
    }


def test_base_net_trains_only_its_own_norms() -> None:
    model = _filled(vit_tiny_adn()).train()
    x, y = reference_input(3, 32, 4), torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(model(x, "TTTT"), y).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["encoder.layers.encoder_layer_0.ln_1_skip.weight"] is not None
    assert grads["encoder.layers.encoder_layer_0.ln_1.weight"] is None
    assert grads["encoder.layers.encoder_layer_1.mlp.0.weight"] is None  # skippable layer


def test_small_variant_learns() -> None:
    """A few super-net + base-net steps on one batch lower both losses (the training loop's two passes)."""
    torch.manual_seed(0)
    model = vit_tiny_adn(num_classes=4, in_chans=1, image_size=28).train()
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8) % 4
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = sum(torch.nn.functional.cross_entropy(model(x, g), y) for g in ("FFFF", "TTTT"))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# --- builders and input checks ---------------------------------------------------------------------------------


def test_registered_with_input_specs() -> None:
    assert {"vit_b_16_adn", "vit_tiny_adn"} <= set(list_models("vit_*"))
    small = build_model("vit_tiny_adn", in_chans=1, image_size=28)
    assert small.input_spec.shape(2) == (2, 1, 28, 28) and small.input_spec.mean == (0.5,)
    assert small.num_stages == 4 and len(small.encoder.layers) == 8
    assert small(small.example_input(3), "TFTF").shape == (3, 10)
    assert vit_b_16_adn.__doc__ and "official" in vit_b_16_adn.__doc__


def test_bad_inputs_are_named() -> None:
    model = vit_tiny_adn()
    with pytest.raises(ValueError, match="32x32"):
        model(torch.zeros(1, 3, 28, 28))
    with pytest.raises(ValueError, match="4 stages"):
        model(torch.zeros(1, 3, 32, 32), "TFT")
    with pytest.raises(ValueError, match="patch_size"):
        vit_tiny_adn(image_size=30)
    with pytest.raises(ValueError, match="layers_per_stage"):
        AdnVisionTransformer(32, 4, num_layers=7, num_heads=2, hidden_dim=16, mlp_dim=32, layers_per_stage=2)
