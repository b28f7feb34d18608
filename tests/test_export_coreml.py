"""Core ML export: one multifunction .mlpackage, checked from its spec (prediction only runs on macOS)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import contextual_tiny_model
from torch import nn

from ondevice.export import coreml
from ondevice.export.common import MAX_DEFAULT_SUBNETS, dir_size, select_gates
from ondevice.export.coreml import compress_coreml, export_coreml, inspect_coreml
from ondevice.models import all_gates
from ondevice.models.modes import eval_mode

GATES = [str(g) for g in all_gates(3)]


def _tiny_model() -> nn.Module:
    """resnet20_adn at 16x16, random weights and norm statistics, entry norms per previous gate."""
    return contextual_tiny_model()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return _tiny_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """Every sub-network as one package, and the super-net alone for the size comparison."""
    out = tmp_path_factory.mktemp("coreml")
    model.train()  # export must switch to eval and back
    entry = export_coreml(model, out / "model.mlpackage")
    single = export_coreml(model, out / "single.mlpackage", ["FFF"])
    return out, entry, single


def test_manifest_entry(exported):
    out, entry, _ = exported
    assert entry["file"] == "model.mlpackage"
    assert entry["functions"] == {g: f"subnet_{g}" for g in GATES}
    assert entry["default_function"] == "subnet_FFF"
    assert entry["minimum_deployment_target"] == "iOS18"
    assert (entry["input"], entry["output"], entry["compute_units"]) == ("image", "logits", "ALL")
    assert entry["compression"] == "none"
    assert entry["size_bytes"] == dir_size(out / "model.mlpackage") > 0


def test_model_mode_restored(exported, model):
    assert model.training


def test_spec_functions_inputs_outputs(exported):
    out, _, _ = exported
    info = inspect_coreml(out / "model.mlpackage")
    assert set(info["functions"]) == {f"subnet_{g}" for g in GATES}
    assert info["specification_version"] == 9
    assert info["minimum_deployment_target"] == "iOS18"
    assert info["default_function"] == "subnet_FFF"
    for function in info["functions"].values():
        assert function["inputs"] == {"image": {"shape": [1, 1, 16, 16], "dtype": "float32"}}
        assert function["outputs"] == {"logits": {"shape": [1, 10], "dtype": "float32"}}
    ops = {name.removeprefix("subnet_"): f["ops"] for name, f in info["functions"].items()}
    assert ops["TTT"] < ops["TTF"] < ops["FFF"]  # skipping a stage removes its skippable blocks' ops
    assert info["metadata"]["compute_precision"] == "float16"


def test_weights_shared_across_functions(exported):
    out, _, single = exported
    weights = inspect_coreml(out / "model.mlpackage")["weights"]
    one = inspect_coreml(out / "single.mlpackage")["weights"]
    # separate packages would store every function's weights: the shared file holds far less than their sum
    assert weights["unique_bytes"] < 0.3 * weights["sum_over_functions_bytes"]
    # stored once: the super-net's weights plus the mandatory blocks folded with their *_skip norms
    assert weights["max_function_bytes"] == pytest.approx(one["unique_bytes"], rel=0.01)  # blob padding differs
    assert weights["file_bytes"] < 2 * one["file_bytes"]
    assert weights["unique_bytes"] > one["unique_bytes"]  # the *_skip variants are really there
    assert single["functions"] == {"FFF": "subnet_FFF"}


def test_gates_list_subset_default_and_options(model, tmp_path):
    path = tmp_path / "m.mlpackage"
    entry = export_coreml(model, path, ["TTT", "FTF", "TTT"], compute_precision="float32", fold_norms=False)
    assert entry["functions"] == {"TTT": "subnet_TTT", "FTF": "subnet_FTF"}
    assert entry["default_function"] == "subnet_TTT"  # no super-net in the list: the first one
    assert (entry["compute_precision"], entry["fold_norms"]) == ("float32", False)
    weights = inspect_coreml(path)["weights"]
    # unfolded norms: TTT's conv weights are a subset of FTF's even where their stage-1 norms differ
    assert weights["unique_bytes"] < 1.05 * weights["max_function_bytes"]


class _Deep:
    num_stages = 5


def test_many_stages_need_a_list():
    with pytest.raises(ValueError, match="pass gates_list"):
        select_gates(_Deep())
    assert len(select_gates(_Deep(), ["FFFFF", "TTTTT"])) == 2
    assert MAX_DEFAULT_SUBNETS == 16  # four-stage models (ResNet-50-ADN) export every setting by default


def test_bad_arguments(model, tmp_path):
    with pytest.raises(ValueError, match=".mlpackage"):
        export_coreml(model, tmp_path / "model.bin")
    with pytest.raises(ValueError, match="3 stages"):
        export_coreml(model, tmp_path / "m.mlpackage", ["FF"])
    with pytest.raises(ValueError, match="compression"):
        export_coreml(model, tmp_path / "m.mlpackage", compression="int3")
    with pytest.raises(FileNotFoundError, match="no Core ML package"):
        inspect_coreml(tmp_path / "missing.mlpackage")


def test_failed_export_keeps_previous_package(exported, model, monkeypatch):
    out, entry, _ = exported
    before = dir_size(out / "single.mlpackage")

    def broken(*args, **kwargs):
        raise RuntimeError("killed mid-export")

    monkeypatch.setattr(coreml, "_combine", broken)
    with pytest.raises(RuntimeError, match="killed"):
        export_coreml(model, out / "single.mlpackage", ["TTT"])
    assert dir_size(out / "single.mlpackage") == before
    assert inspect_coreml(out / "single.mlpackage")["functions"].keys() == {"subnet_FFF"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no scratch directories left


@pytest.mark.parametrize(
    ("mode", "op"), [("int8-linear", "constexpr_blockwise_shift_scale"), ("palettize-4bit", "constexpr_lut_to_dense")]
)
def test_compression(exported, mode, op):
    out, entry, _ = exported
    compressed = compress_coreml(out / "model.mlpackage", out / f"{mode}.mlpackage", mode)
    assert compressed["compression"] == mode
    assert compressed["functions"] == entry["functions"]
    assert compressed["default_function"] == entry["default_function"]
    info = inspect_coreml(out / f"{mode}.mlpackage")
    for function in info["functions"].values():
        assert function["constexpr_ops"].get(op, 0) > 0
        assert function["inputs"]["image"]["shape"] == [1, 1, 16, 16]
    weights, base = info["weights"], inspect_coreml(out / "model.mlpackage")["weights"]
    ratio = 0.6 if mode == "int8-linear" else 0.35  # fp16 -> int8 (+ scales) / 4-bit indices (+ LUTs)
    assert weights["file_bytes"] < ratio * base["file_bytes"]
    assert weights["unique_bytes"] < 0.3 * weights["sum_over_functions_bytes"]  # still shared after compressing
    with pytest.raises(ValueError, match="already compressed"):
        compress_coreml(out / f"{mode}.mlpackage", out / "twice.mlpackage", mode)


def _conv_weight_shapes(package, function: str) -> list[tuple[int, ...]]:
    """The weight shape of every conv a Core ML function runs, in program order (read from the spec)."""
    import coremltools as ct

    body = ct.utils.load_spec(str(package)).mlProgram.functions[function]
    ops = list(coreml._operations(body.block_specializations[body.opset]))
    producers = {out.name: op for op in ops for out in op.outputs}
    shapes = []
    for op in ops:
        if op.type == "conv":
            weight = producers[op.inputs["weight"].arguments[0].name]
            shapes.append(tuple(d.constant.size for d in weight.outputs[0].type.tensorType.dimensions))
    return shapes


def _eager_conv_weight_shapes(model: nn.Module, gates: str) -> list[tuple[int, ...]]:
    """The weight shape of every conv eager PyTorch runs for ``gates``, in call order."""
    shapes: list[tuple[int, ...]] = []
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks = [m.register_forward_hook(lambda m, *_: shapes.append(tuple(m.weight.shape))) for m in convs]
    try:
        with torch.no_grad(), eval_mode(model):
            model(torch.zeros(1, 1, 16, 16), gates)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def test_each_function_holds_its_own_sub_network(exported, model):
    """Oracle: the convs eager PyTorch runs for those gates, in order (swapping two functions' gates fails here)."""
    out, _, _ = exported
    for g in GATES:
        assert _conv_weight_shapes(out / "model.mlpackage", f"subnet_{g}") == _eager_conv_weight_shapes(model, g), g
