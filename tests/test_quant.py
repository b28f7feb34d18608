"""Quantization recipes end to end on a tiny trained model: each offered recipe's program runs, calibration covers
the skip paths, the study writes its files, QAT trains the shared weights and resumes, bad inputs get errors."""

import csv
import json

import pytest
import torch
from test_export_executorch import program_dim_orders, tiny_model
from tiny_models import contextual_tiny_model

from ondevice.bundle import export_bundle
from ondevice.checkpoint import checkpoint_data, load_checkpoint, load_model, save_checkpoint
from ondevice.cli import main
from ondevice.contract.manifest import load_manifest
from ondevice.export.executorch import _load_program, export_executorch
from ondevice.models import all_gates, gates_tensor, model_segments, super_net
from ondevice.qat import QatConfig, qat_finetune
from ondevice.quant import RECIPES, RecipeError, get_recipe, segment_quantizer
from ondevice.quant.pt2e import check_observed, prepare_segment, quantize_segments_pt2e
from ondevice.runtime import load_bundle
from ondevice.train import TrainConfig, train

EXECUTORCH_RECIPES = [name for name, r in RECIPES.items() if r.format == "executorch"]
TINY = {"model": "resnet10_adn", "data": "digits", "image_size": 16, "limit": 160, "batch_size": 32, "epochs": 1}


def micro_model():
    """resnet10_adn at 16x16 with distinct *_skip norms: the cheapest gated program to lower."""
    return tiny_model(name="resnet10_adn")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train(TrainConfig(**TINY), tmp_path_factory.mktemp("run"), progress=False)


@pytest.fixture(scope="module")
def study(trained, tmp_path_factory):
    """``ondevice quant-study`` with int8-static and a Core ML recipe, few images and runs: the files it writes."""
    out = tmp_path_factory.mktemp("study")
    args = [
        "quant-study",
        str(trained),
        "--out",
        str(out),
        "--recipes",
        "int8-static,coreml-int8",
        "--calibration",
        "32",
    ]
    assert main([*args, "--limit", "40", "--rounds", "1", "--runs", "2"]) == 0
    return out, json.loads((out / "quant_study.json").read_text())


def test_study_writes_json_csv_markdown_and_plots(study):
    out, report = study
    for name in ("quant_study.json", "quant_study.csv", "quant_study.md", "accuracy_vs_latency.png", "drop.png"):
        assert (out / name).stat().st_size > 0, name
    bundles = ["fp32", "fp32-coreml", "int8-static", "coreml-int8"]
    assert [r["recipe"] for r in report["rows"]] == [b for b in bundles for _ in range(4)]
    with (out / "quant_study.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(report["rows"])
    assert "| int8-static | TT (base-net) |" in (out / "quant_study.md").read_text()


def test_study_rows_are_consistent(study):
    _, report = study
    rows = report["rows"]
    fp32 = {r["gates"]: r for r in rows if r["recipe"] == "fp32"}
    for r in rows:
        if r["format"] == "coreml":  # Core ML cannot predict on Linux: size only
            assert r["top1"] is None and r["latency_ms"] is None and r["size_bytes"] > 0
            continue
        assert r["drop_points"] == pytest.approx(100 * (fp32[r["gates"]]["top1"] - r["top1"]))
        assert 0.0 <= r["agreement"] <= 1.0 and r["latency_ms"] > 0
    assert all(r["agreement"] == 1.0 and r["drop_points"] == 0.0 for r in fp32.values())
    sizes = {r["recipe"]: r["size_bytes"] for r in rows}
    assert sizes["int8-static"] < sizes["fp32"]  # int8 weights (a quarter of fp32 at real widths: docs)
    assert sizes["coreml-int8"] < sizes["fp32-coreml"]


def test_quantized_bundle_runs_and_its_manifest_records_the_recipe(study):
    out, _ = study
    program = load_bundle(out / "bundles" / "int8-static")
    manifest = load_manifest(out / "bundles" / "int8-static")
    assert manifest["precision"]["name"] == "int8-static" and manifest["precision"]["calibration_images"] == 32
    images, labels = checkpoint_data(load_checkpoint(manifest["model"]["checkpoint"])).test.tensors
    for subnet in manifest["subnets"]:
        assert set(subnet["accuracy"]) == {"fp32", "int8-static"}
        # oracle: the written int8 program, run here on the checkpoint's test split
        top1 = (program.predict(images, subnet["gates"]) == labels).float().mean().item()
        assert subnet["accuracy"]["int8-static"] == pytest.approx(top1, abs=1e-9), subnet["gates"]


def test_int8_program_merges_stages_and_passes_activations_channels_last(tmp_path):
    """int8-static as float: stages 0 and 1 share their delegates, every activation between delegates crosses
    channels-last (no transpose each way; the delegate that takes the image converts it), and every sub-network
    tracks the float model (the export itself checks each against the quantized segments run eagerly)."""
    model = contextual_tiny_model()
    quantize = segment_quantizer("int8-static", torch.randn(8, 1, 16, 16), progress=False)
    path = tmp_path / "q.pte"
    entry = export_executorch(model, path, quantize=quantize, rtol=get_recipe("int8-static").parity_rtol)
    assert entry["stage_groups"] == [[0, 1], [2]]
    assert set(program_dim_orders(path)) == {(0, 2, 3, 1)}
    data = path.read_bytes()  # the runtime reads from this buffer: keep it alive
    forward = _load_program(data).load_method("forward")
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    for gates in all_gates(3):
        out, ref = forward.execute([x, gates_tensor(gates, 3)])[0], model(x, gates)
        assert (out - ref).abs().max() <= 0.25 * ref.abs().max(), gates


@pytest.mark.parametrize("recipe", [r for r in EXECUTORCH_RECIPES if r != "int8-static"])
def test_each_recipe_exports_a_gated_program_that_runs(recipe, tmp_path):
    """int8-static runs through the study above; each other recipe here."""
    model = micro_model()
    quantize = segment_quantizer(recipe, torch.randn(8, 1, 16, 16), progress=False)
    entry = export_executorch(model, tmp_path / "q.pte", quantize=quantize, rtol=get_recipe(recipe).parity_rtol)
    assert entry["size_bytes"] == (tmp_path / "q.pte").stat().st_size
    data = (tmp_path / "q.pte").read_bytes()  # the runtime reads from this buffer: keep it alive
    forward = _load_program(data).load_method("forward")
    x = torch.randn(1, 1, 16, 16)
    for gates in all_gates(2):  # every sub-network runs and tracks the float model
        out = forward.execute([x, gates_tensor(gates, 2)])[0]
        ref = model(x, gates)
        assert out.shape == ref.shape and (out - ref).abs().max() <= 0.25 * ref.abs().max()


def test_calibration_covers_the_skip_paths():
    """Calibrating the super-net alone leaves the skip segments without ranges: an error, not a silent program."""
    model = micro_model()
    segments = model_segments(model)
    images = torch.randn(8, 1, 16, 16)
    with pytest.raises(RecipeError, match=r"stage 0 skipped.*saw no calibration data.*every gate setting"):
        quantize_segments_pt2e(segments, images, settings=[super_net(2)], progress=False)
    quantized = quantize_segments_pt2e(segments, images, progress=False)  # default: every gate setting
    x = torch.randn(1, 1, 16, 16)
    for gates in all_gates(2):  # the int8 chain tracks the float model on every sub-network
        ref = model(x, gates)
        assert (quantized(x, gates) - ref).abs().max() <= 0.1 * ref.abs().max()


def test_check_observed_names_unobserved_segments():
    segments = model_segments(micro_model()).map(prepare_segment)
    with pytest.raises(RecipeError, match=r"stage 0 skipped.*stage 1 run"):
        check_observed(segments)


def test_bad_recipe_names_and_calibration_sets_get_clear_errors(trained, tmp_path):
    with pytest.raises(RecipeError, match=r"unknown quantization recipe 'int9'.*choose one of"):
        get_recipe("int9")
    with pytest.raises(RecipeError, match=r"int8-weight-only.*dequantize_affine"):
        get_recipe("int8-weight-only")
    with pytest.raises(RecipeError, match=r"'coreml-int8' is for coreml, not executorch"):
        segment_quantizer("coreml-int8")
    for bad in (None, torch.empty(0, 1, 16, 16), torch.randn(16, 16)):
        with pytest.raises(RecipeError, match=r"needs calibration images \[N, C, H, W\] with N >= 1"):
            segment_quantizer("int8-static", bad)
    with pytest.raises(RecipeError, match="NaN or inf"):
        segment_quantizer("int8-static", torch.full((2, 1, 16, 16), float("nan")))
    with pytest.raises(ValueError, match=r"--quant coreml-int8 quantizes the coreml format only"):
        export_bundle(trained, tmp_path / "b", "executorch", quant="coreml-int8", log=lambda _: None)
    assert main(["export", str(trained), "--out", str(tmp_path / "c"), "--quant", "int8-static", "--calibration", "0"])
    assert not (tmp_path / "c").exists()
    assert main(["quant-study", str(trained), "--out", str(tmp_path / "s"), "--recipes", "int4"]) == 2


def test_qat_trains_the_shared_weights_and_resumes(trained, tmp_path):
    source, _ = load_model(trained)
    ckpt = qat_finetune(trained, tmp_path, QatConfig(epochs=1, batch_size=32), progress=False)
    tuned, state = load_model(ckpt)
    assert state["qat"]["config"]["epochs"] == 1 and len(state["history"]) == 1
    changed = [k for k, v in source.state_dict().items() if not torch.equal(v, tuned.state_dict()[k])]
    assert any(k.endswith("bn1_skip.running_mean") for k in changed)  # the base-net pass ran through skip norms
    assert any(k.endswith("conv1.weight") for k in changed)
    # A run of 2 epochs killed after its first: --resume finishes the second from the checkpoint.
    state = load_checkpoint(ckpt)
    state["qat"]["config"]["epochs"] = 2
    save_checkpoint(ckpt, {k: v for k, v in state.items() if k not in ("format", "version")})
    qat_finetune(trained, tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in load_checkpoint(ckpt)["history"]] == [1, 2]
    with pytest.raises(ValueError, match="QAT needs epochs >= 1"):
        QatConfig(epochs=0)
