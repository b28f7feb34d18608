"""Swin-ADN: the official Swin-T-ADN layout, shifted-window attention, and the gate semantics."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from official_layout import EXPECT, fill_state_dict, layout_state_dict, official_layout, reference_input

from ondevice.models import AdnModel, Gates, all_gates, list_models
from ondevice.models.cost import count_flops, count_params_used
from ondevice.models.official import load_official_state_dict
from ondevice.models.swin_adn import AdnSwinTransformer, PatchMerging, ShiftedWindowAttention, swin_t_adn

LAYOUT = official_layout("swin_t_adn")
EXPECTED_LOGITS = EXPECT / "official_swin_t_adn.json"


def _filled(model: AdnModel) -> AdnModel:
    """The model with deterministic weights (integer buffers kept), in eval mode."""
    model.load_state_dict(fill_state_dict(model.state_dict()))
    return model.eval()


def _small(**kwargs: object) -> AdnSwinTransformer:
    """A Swin-ADN for 32 px images: maps 16, 8, 4, 2 with window 4 (shifts in stages 0-1, padding in stage 3)."""
    config = {"patch_size": 2, "embed_dim": 16, "depths": (2, 2, 2, 2), "num_heads": (1, 2, 2, 4), "window_size": 4}
    return AdnSwinTransformer(**{**config, "num_classes": 10, "image_size": 32, **kwargs})


@pytest.fixture(scope="module")
def swin_t() -> AdnSwinTransformer:
    """Swin-T-ADN with deterministic weights and its own relative_position_index buffers; built once."""
    return _filled(swin_t_adn())


@pytest.fixture(scope="module")
def small() -> AdnSwinTransformer:
    return _filled(_small())


# --- the official layout ---------------------------------------------------------------------------------------


def test_state_dict_is_the_official_layout(swin_t: AdnSwinTransformer) -> None:
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in swin_t.state_dict().items()]
    assert ours == [row[:3] for row in LAYOUT["state_dict"]]  # keys, shapes, dtypes and order
    assert sorted(n for n, _ in swin_t.named_buffers()) == sorted(LAYOUT["buffer_keys"])
    assert sum(p.numel() for p in swin_t.parameters()) == LAYOUT["params_total"]
    ours_skip = sorted(n for n, _ in swin_t.named_modules() if n.endswith("_skip"))
    assert ours_skip == sorted(row["module"] for row in LAYOUT["skip_norms"])


def test_block_split_and_shifts(swin_t: AdnSwinTransformer) -> None:
    stages = [swin_t.features[i] for i in (0, 2, 4, 6)]
    assert [stage.n_mandatory for stage in stages] == LAYOUT["block_split"]["mandatory"]
    assert [[block.skippable for block in stage] for stage in stages][2] == [False] * 3 + [True] * 3
    assert [block.attn.shift_size for block in stages[2]] == [(0, 0), (3, 3)] * 3
    assert all(isinstance(swin_t.features[i], PatchMerging) for i in (1, 3, 5))


def test_relative_position_index() -> None:
    attn = ShiftedWindowAttention(8, (7, 7), (0, 0), num_heads=2)
    index = attn.relative_position_index.view(49, 49)
    assert index.dtype == torch.int64 and index.min() == 0 and index.max() == 13 * 13 - 1
    assert torch.all(index.diagonal() == 6 * 13 + 6)  # zero offset: the table's centre
    assert index[0, 48] == 0 and index[48, 0] == 13 * 13 - 1  # query above-left of key: offset (-6, -6)


def test_loads_official_state_dict_and_training_checkpoint() -> None:
    official = layout_state_dict("swin_t_adn")
    model = load_official_state_dict(swin_t_adn(), official)
    assert all(torch.equal(v, official[k]) for k, v in model.state_dict().items())
    ema = {**{"module." + k: v for k, v in official.items()}, "n_averaged": torch.tensor(3)}
    model = load_official_state_dict(swin_t_adn(), {"model": {}, "model_ema": ema}, prefer_ema=True)
    assert all(torch.equal(v, official[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("gates", ["FFFF", "TTTT"])
def test_params_used_match_official(swin_t: AdnSwinTransformer, gates: str) -> None:
    assert count_params_used(swin_t, gates) == LAYOUT["params_used_by_config"][gates]


@pytest.mark.parametrize("gates", ["FFFF", "TFTF", "TTTT"])
def test_macs_match_official(swin_t: AdnSwinTransformer, gates: str) -> None:
    gmacs = count_flops(swin_t, gates) / 2e9
    assert gmacs == pytest.approx(LAYOUT["gmacs_by_config_flopcounter"][gates], abs=1e-4)


@pytest.mark.slow
def test_logits_match_official_code() -> None:
    """Logits of the official wchkang/depth model on the same weights, for every gate setting."""
    assert EXPECTED_LOGITS.is_file(), (
        f"{EXPECTED_LOGITS} is missing: it holds the official code's logits (see tests/official_layout.py)"
    )
    expected = json.loads(EXPECTED_LOGITS.read_text())
    model = _filled(swin_t_adn(num_classes=expected["num_classes"]))
    spec = expected["input"]
    x = reference_input(spec["in_chans"], spec["size"], spec["batch"])
    assert sorted(expected["logits"]) == sorted(str(g) for g in all_gates(4))
    with torch.no_grad():
        for gates, logits in expected["logits"].items():
            torch.testing.assert_close(model(x, gates), torch.tensor(logits), atol=1e-4, rtol=1e-4, msg=gates)


# --- shifted-window attention against a dense reference ------------------------------------------------------------


def _dense_reference(attn: ShiftedWindowAttention, x: torch.Tensor) -> torch.Tensor:
    """The same attention as one dense softmax over the whole (padded, rolled) map with masks, no windowing."""
    b, h, w, c = x.shape
    ws, heads = attn.window_size[0], attn.num_heads
    x = F.pad(x, (0, 0, 0, (-w) % ws, 0, (-h) % ws))
    ph, pw = x.shape[1:3]
    shift = attn.shift_size[0] if ws < ph else 0  # square maps here
    x = torch.roll(x, (-shift, -shift), (1, 2))
    rows, cols = (t.flatten() for t in torch.meshgrid(torch.arange(ph), torch.arange(pw), indexing="ij"))
    same_window = ((rows // ws)[:, None] == (rows // ws)[None]) & ((cols // ws)[:, None] == (cols // ws)[None])
    region = torch.zeros_like(rows)  # tokens that were not neighbours before the roll lie in different regions
    if shift:
        region = ((rows >= ph - ws).long() + (rows >= ph - shift).long()) * 3
        region += (cols >= pw - ws).long() + (cols >= pw - shift).long()
    dy = (rows % ws)[:, None] - (rows % ws)[None]
    dx = (cols % ws)[:, None] - (cols % ws)[None]
    bias = attn.relative_position_bias_table[(dy + ws - 1) * (2 * ws - 1) + dx + ws - 1].permute(2, 0, 1)
    q, k, v = attn.qkv(x.reshape(b, ph * pw, c)).reshape(b, ph * pw, 3, heads, -1).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-2, -1) * (c // heads) ** -0.5 + bias
    scores = scores + (region[:, None] != region[None]) * -100.0
    scores = scores.masked_fill(~same_window, float("-inf"))
    out = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, ph, pw, c))
    return torch.roll(out, (shift, shift), (1, 2))[:, :h, :w]


@pytest.mark.parametrize(("size", "shift"), [(8, 0), (8, 2), (12, 2), (10, 2), (3, 2)])
def test_window_attention_matches_dense_reference(size: int, shift: int) -> None:
    torch.manual_seed(size + shift)
    attn = ShiftedWindowAttention(8, (4, 4), (shift, shift), num_heads=2).eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
        x = torch.randn(2, size, size, 8)
        torch.testing.assert_close(attn(x), _dense_reference(attn, x), atol=1e-5, rtol=1e-5)


def test_patch_merging_pads_odd_maps() -> None:
    merge = PatchMerging(4)
    x = torch.randn(2, 7, 5, 4)
    assert merge(x).shape == (2, 4, 3, 8)
    torch.testing.assert_close(merge(x)[:, :3, :2], merge(x[:, :6, :4]))


# --- gate semantics, on a small model ------------------------------------------------------------------------------


def test_every_gate_setting_runs_and_differs(small: AdnSwinTransformer) -> None:
    x = reference_input(3, 32, 2)
    with torch.no_grad():
        outputs = {str(g): small(x, g) for g in all_gates(4)}
        default = small(x)
    assert all(out.shape == (2, 10) and torch.isfinite(out).all() for out in outputs.values())
    assert torch.equal(default, outputs["FFFF"])
    assert len({tuple(out.flatten().tolist()) for out in outputs.values()}) == 16


def test_skipping_a_stage_lowers_flops(small: AdnSwinTransformer) -> None:
    macs = {g: count_flops(small, g) for g in all_gates(4)}
    for gates, cost in macs.items():
        for stage in range(4):
            if not gates[stage]:
                assert macs[Gates(tuple(s or i == stage for i, s in enumerate(gates)))] < cost


def test_patch_merging_follows_the_stage_after_it() -> None:
    x = reference_input(3, 32, 1)
    settings = ["FFFF", "TFFF", "FTFF", "FFTF", "FTTT", "TTTT"]

    def changed_by(edit: Callable[[AdnSwinTransformer], None]) -> set[str]:
        model = _filled(_small())
        with torch.no_grad():
            before = {g: model(x, g) for g in settings}
            edit(model)
            return {g for g in settings if not torch.equal(model(x, g), before[g])}

    stage1_skipped = {g for g in settings if g[1] == "T"}
    assert changed_by(lambda m: m.get_submodule("features.1.norm_skip").bias.add_(1)) == stage1_skipped
    assert changed_by(lambda m: m.get_submodule("features.1.norm").bias.add_(1)) == set(settings) - stage1_skipped
    assert changed_by(lambda m: m.get_submodule("features.2.0.norm2_skip").bias.add_(1)) == stage1_skipped
    assert changed_by(lambda m: m.get_submodule("features.2.1.mlp.3").bias.add_(1)) == set(settings) - stage1_skipped
    assert changed_by(lambda m: m.get_submodule("pre.2").bias.add_(1)) == set(settings)


def test_registered() -> None:
    assert "swin_t_adn" in list_models("swin_*")
    model = swin_t_adn(num_classes=10)
    assert model.num_stages == 4 and model.input_spec.shape(1) == (1, 3, 224, 224)
    assert model.head.out_features == 10 and torch.count_nonzero(model.head.weight) > 0  # no zero-init here
