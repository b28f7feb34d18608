"""ViT-ADN as one gated ExecuTorch program: every op of every segment on XNNPACK, fp32 and 8da4w."""

import pytest
import torch
from torch import nn

from ondevice.export.common import PARITY_ATOL, ExportError
from ondevice.export.executorch import (
    XNNPACK_DECOMPOSITIONS,
    _layer_norm_for_xnnpack,
    _load_program,
    export_executorch,
)
from ondevice.models import all_gates, gates_tensor
from ondevice.models.vit_adn import AdnVisionTransformer
from ondevice.quant import get_recipe, segment_quantizer

GATE_PLUMBING = {"aten::ne.Scalar_out", "aten::select_copy.int_out"}


def micro_vit(seed: int = 0) -> AdnVisionTransformer:
    """2 pseudo-stages of 2 layers, width 32 (int4 groups of 32 fit), 8x8 images: 5 tokens."""
    torch.manual_seed(seed)
    model = AdnVisionTransformer(8, 4, 4, 2, 32, 64, 2, num_classes=10, in_chans=1, mean=(0.5,), std=(0.5,))
    with torch.no_grad():  # the head is zero-initialised and the norms are identities: make every path visible
        model.heads.head.weight.normal_(0, 0.2)
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    return model.eval()


def run_program(path, model, gates_list, x):
    data = path.read_bytes()  # the runtime reads from this buffer: keep it alive while the method runs
    forward = _load_program(data).load_method("forward")
    with torch.no_grad():
        return {str(g): (forward.execute([x, gates_tensor(g, 2)])[0], model(x, g)) for g in gates_list}


def test_xnnpack_layer_norm_is_layer_norm():
    x = torch.randn(2, 5, 32) * 3 + 1
    weight, bias = torch.rand(32) + 0.5, torch.randn(32)
    expected = nn.functional.layer_norm(x, (32,), weight, bias, eps=1e-6)
    torch.testing.assert_close(_layer_norm_for_xnnpack(x, (32,), weight, bias, 1e-6), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ExportError, match="last dim"):
        _layer_norm_for_xnnpack(x, (5, 32))


@pytest.fixture(scope="module")
def float_program(tmp_path_factory):
    model = micro_vit()
    path = tmp_path_factory.mktemp("vit") / "vit.pte"
    return model, path, export_executorch(model, path)


def test_vit_exports_as_one_gated_program(float_program):
    model, path, entry = float_program
    assert set(entry["non_delegated_ops"]) <= GATE_PLUMBING, entry["non_delegated_ops"]
    for x in torch.randn(2, 1, 1, 8, 8):  # the program takes batch 1
        for gates, (got, expected) in run_program(path, model, all_gates(2), x).items():
            assert (got - expected).abs().max().item() <= PARITY_ATOL, gates


def test_vit_8da4w_quantizes_attention_and_mlp(float_program, tmp_path):
    model, _, float_entry = float_program
    recipe = get_recipe("8da4w")
    quantized = []

    def quantize(segments):
        quantized.append(segment_quantizer(recipe, progress=False)(segments))
        return quantized[0]

    entry = export_executorch(model, tmp_path / "vit.pte", quantize=quantize, rtol=recipe.parity_rtol)
    run_segments = [s for _, (_, skip), s in quantized[0].items() if not skip]
    linears = {m for s in run_segments for m in s.modules() if type(m) is nn.Linear}
    assert len(linears) == 4 * 3 + 1  # per layer out_proj and 2 MLP linears; the head
    assert all(type(m.weight) is not nn.Parameter for m in linears)  # all int4
    assert entry["size_bytes"] < 0.8 * float_entry["size_bytes"]
    x = torch.randn(1, 1, 8, 8)
    program = run_program(tmp_path / "vit.pte", quantized[0], all_gates(2), x)  # vs the int4 model run eagerly
    for gates, (got, expected) in program.items():
        assert (got - expected).abs().max() <= recipe.parity_rtol * expected.abs().max(), gates
        assert torch.corrcoef(torch.cat([got, model(x, gates)]))[0, 1] > 0.9, gates  # still the float network


def test_an_op_xnnpack_does_not_take_is_named(tmp_path, monkeypatch):
    """Without the layer_norm decomposition the segment splits; the error names the op and the fix."""
    monkeypatch.delitem(XNNPACK_DECOMPOSITIONS, torch.ops.aten.layer_norm.default)
    with pytest.raises(ExportError, match=r"(?s)native_layer_norm.*XNNPACK_DECOMPOSITIONS"):
        export_executorch(micro_vit(), tmp_path / "vit.pte")
    assert not (tmp_path / "vit.pte").exists()


def test_core_ml_keeps_its_fused_layer_norm(tmp_path):
    """The XNNPACK decomposition is ExecuTorch's alone: the Core ML functions keep native layer_norm ops."""
    import coremltools as ct

    from ondevice.export.coreml import export_coreml

    entry = export_coreml(micro_vit(), tmp_path / "vit.mlpackage")
    assert entry["functions"] == {str(g): f"subnet_{g}" for g in all_gates(2)}
    spec = ct.utils.load_spec(str(tmp_path / "vit.mlpackage"))
    for name, function in spec.mlProgram.functions.items():
        ops = [op.type for block in function.block_specializations.values() for op in block.operations]
        assert "layer_norm" in ops and "reduce_mean" not in ops, name


def test_vit_with_early_exits_exports_as_a_chained_program(tmp_path):
    """Token exit heads pool over tokens as a 2D pool, so every piece of the chained program is on XNNPACK."""
    from ondevice.exits.export import export_exits_executorch
    from ondevice.exits.heads import MultiExitModel

    entry = export_exits_executorch(MultiExitModel(micro_vit()), tmp_path / "exits.pte", share_weights=False)
    assert entry["non_delegated_ops"] == [] and entry["parity_max_abs_diff"] <= PARITY_ATOL  # every exit, every gate
    assert entry["num_exits"] == 2 and entry["feature_dims"] == [32, 32]
