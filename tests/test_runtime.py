"""Bundle export (through the CLI) and the runtime: switching gates without reload, and every bad input."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_export_executorch import tiny_model

from ondevice.bundle import (
    FORMATS,
    MissingExtraError,
    _accuracy_rows,
    available_formats,
    export_bundle,
    find_eval_json,
    resolve_formats,
)
from ondevice.checkpoint import checkpoint_data, checkpoint_sha256, load_checkpoint, load_model, save_checkpoint
from ondevice.cli import main
from ondevice.contract.device_check import check_input, mismatch
from ondevice.contract.manifest import ManifestError, load_manifest
from ondevice.metrics import accuracy
from ondevice.models import Gates, all_gates
from ondevice.policy.config import PolicyConfig, load_policy_config
from ondevice.runtime import BundleError, GatedProgram, load_bundle, set_threads, thread_count

DATA_SPEC = {
    "name": "digits",
    "num_classes": 10,
    "in_chans": 1,
    "image_size": 16,
    "mean": [0.5],
    "std": [0.5],
    "class_names": [str(i) for i in range(10)],
}


def write_run(directory, model, *, with_eval=True):
    """A checkpoint as `ondevice train` writes it (random weights) and, optionally, its eval.json."""
    directory.mkdir(parents=True, exist_ok=True)
    ckpt = directory / "checkpoint.pt"
    save_checkpoint(
        ckpt,
        {
            "model_name": "resnet20_adn",
            "model_kwargs": {"num_classes": 10, "in_chans": 1, "image_size": 16, "mean": [0.5], "std": [0.5]},
            "model": model.state_dict(),
            "data_spec": DATA_SPEC,
            "train_config": {
                "data": "digits",
                "data_root": None,
                "image_size": 16,
                "seed": 0,
                "limit": 64,
                "method": "adn",
            },
        },
    )
    if with_eval:
        rows = [
            {"gates": str(g), "name": g.name, "top1": 0.5 + 0.05 * i, "flops": 0, "params": 0, "pareto": i == 0}
            for i, g in enumerate(all_gates(3))
        ]
        digest = checkpoint_sha256(ckpt)
        (directory / "eval.json").write_text(
            json.dumps({"checkpoint": str(ckpt), "checkpoint_sha256": digest, "subnets": rows})
        )
    return ckpt


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    model = tiny_model()
    ckpt = write_run(root / "run", model)
    assert main(["export", str(ckpt), "--out", str(root / "bundle"), "--format", "executorch"]) == 0
    return model, root / "bundle", ckpt


@pytest.fixture
def copy_of(bundle, tmp_path):
    """A private copy of the bundle to break."""
    target = tmp_path / "bundle"
    shutil.copytree(bundle[1], target)
    return target


def test_bundle_holds_program_and_valid_manifest(bundle):
    model, path, ckpt = bundle
    assert sorted(p.name for p in path.iterdir()) == ["device_check.json", "manifest.json", "model.pte", "policy.json"]
    assert load_policy_config(path) == PolicyConfig()  # default parameters, read back from the bundle
    manifest = load_manifest(path)
    assert manifest["model"]["name"] == "resnet20_adn" and manifest["model"]["checkpoint"] == str(ckpt)
    assert manifest["input"]["shape"] == [1, 1, 16, 16] and manifest["input"]["mean"] == [0.5]
    assert [s["gates"] for s in manifest["subnets"]] == [str(g) for g in all_gates(3)]
    # scored on the written program by the runtime (the run's eval.json says 0.5): eager PyTorch is the oracle
    test = checkpoint_data(load_checkpoint(ckpt)).test
    for subnet in manifest["subnets"]:
        assert subnet["accuracy"] == {"fp32": accuracy(model, test, Gates.parse(subnet["gates"]))}
    assert manifest["subnets"][0]["flops"] > manifest["subnets"][-1]["flops"] > 0
    entry = manifest["formats"]["executorch"]
    assert entry["file"] == "model.pte" and entry["gates_input"] == {
        "dtype": "int32",
        "shape": [3],
        "values": entry["gates_input"]["values"],
    }
    assert entry["shared_weights"] == "auto" and entry["non_delegated_ops"] == [
        "aten::ne.Scalar_out",
        "aten::select_copy.int_out",
    ]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


def test_the_device_check_holds_the_eager_logits_of_every_sub_network(bundle):
    """device_check.json, what the apps' first run on a phone compares with: eager PyTorch is the oracle."""
    model, path, _ = bundle
    check = json.loads((path / "device_check.json").read_text())
    manifest = load_manifest(path)
    assert check["sha256"] == manifest["formats"]["executorch"]["sha256"] and check["input"]["shape"] == [1, 1, 16, 16]
    # the rule by hand: i = 0 -> 13, i = 1 -> 7932 % 256 = 252, i = 2 -> 15851 % 256 = 235
    by_hand = [np.float32(k) / np.float32(127.5) - np.float32(1) for k in (13, 252, 235)]
    assert check["input"]["head"][:3] == [float(v) for v in by_hand]
    x = torch.from_numpy(check_input([1, 1, 16, 16]))
    assert check["input"]["sum"] == pytest.approx(float(x.double().sum()), abs=1e-9)
    assert set(check["logits"]) == {s["gates"] for s in manifest["subnets"]}
    with torch.no_grad():
        for gates, logits in check["logits"].items():
            eager = model(x, Gates.parse(gates))[0]
            assert torch.allclose(torch.tensor(logits), eager, atol=1e-5), gates
            assert mismatch(check, gates, eager.numpy()) is None
    gates, logits = next(iter(check["logits"].items()))
    off = torch.tensor(logits)
    off[3] += 2 * check["atol"]
    assert "off (tolerance" in mismatch(check, gates, off.numpy())
    assert "9 logits, expected 10" in mismatch(check, gates, off[:9].numpy())
    off[3] = float("nan")
    assert mismatch(check, gates, off.numpy()) is not None


def test_run_switches_gates_between_calls_without_reload(bundle):
    model, path, _ = bundle
    program = load_bundle(path)
    method = program.method
    x = torch.randn(1, 1, 16, 16)
    for gates in [*all_gates(3), "FFF", "TTT", "FFF"]:
        got = program.run(x, gates)
        with torch.no_grad():
            torch.testing.assert_close(got, model(x, gates), atol=1e-4, rtol=0)
    assert program.method is method


def test_gates_in_every_accepted_form(bundle):
    _, path, _ = bundle
    program = load_bundle(path)
    x = torch.randn(1, 16, 16)  # a batch dimension is added
    expected = program.run(x, Gates((True, False, True)))
    for form in ("TFT", [True, False, True], [1, 0, 1], torch.tensor([1, 0, 1]), (True, False, True)):
        torch.testing.assert_close(program.run(x, form), expected)
    torch.testing.assert_close(program.run(x.numpy(), None), program.run(x, "FFF"))


@pytest.mark.parametrize(
    ("gates", "error", "message"),
    [
        ("TF", ValueError, r"2 entries but the model has 3 stages"),
        ([True, False, True, False], ValueError, r"4 entries but the model has 3 stages"),
        ("TFX", ValueError, r"one letter T \(skip\) or F \(run\)"),
        ([2, 0, 1], TypeError, r"every entry must be a bool or 0/1"),
        (1.5, TypeError, r"gates must be Gates, a 'TFTF' string"),
        (torch.zeros(2, 3), TypeError, r"every entry must be a bool or 0/1"),
    ],
)
def test_wrong_gate_vectors_are_rejected(bundle, gates, error, message):
    program = load_bundle(bundle[1])
    with pytest.raises(error, match=message):
        program.run(torch.randn(1, 1, 16, 16), gates)


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (
            torch.randn(1, 1, 17, 16),
            ValueError,
            r"image of shape \[1, 1, 17, 16\]: this program takes \[1, 1, 16, 16\]",
        ),
        (torch.randn(2, 1, 16, 16), ValueError, r"takes \[1, 1, 16, 16\] \(batch 1"),
        (torch.randn(1, 3, 16, 16), ValueError, r"image of shape \[1, 3, 16, 16\]"),
        (torch.zeros(1, 1, 16, 16, dtype=torch.uint8), TypeError, r"must be float32 \(normalized\), got torch.uint8"),
        ([[0.0]], TypeError, r"torch.Tensor or numpy array, got list"),
    ],
)
def test_wrong_images_are_rejected(bundle, image, error, message):
    program = load_bundle(bundle[1])
    with pytest.raises(error, match=message):
        program.run(image, "FFF")


def _without_checksum(bundle):
    """The bundle as an ondevice before checksums wrote it: the manifest records no sha256."""
    _edit_manifest(bundle, lambda m: m["formats"]["executorch"].pop("sha256"))


def test_manifest_records_the_programs_checksum(bundle):
    _, path, _ = bundle
    sha = load_manifest(path)["formats"]["executorch"]["sha256"]
    assert sha == hashlib.sha256((path / "model.pte").read_bytes()).hexdigest()


@pytest.mark.parametrize("checksum", [True, False])
def test_truncated_program(copy_of, checksum):
    if not checksum:
        _without_checksum(copy_of)
    pte = copy_of / "model.pte"
    pte.write_bytes(pte.read_bytes()[: pte.stat().st_size // 2])
    message = r"sha256 differs .* truncated, corrupted" if checksum else r"not a loadable .* truncated or corrupt"
    with pytest.raises(BundleError, match=message):
        load_bundle(copy_of)


def test_flipped_bytes_are_caught_by_the_checksum(copy_of):
    """200 flipped bytes in the weights load and run (at chance accuracy) unless the checksum is checked."""
    pte = copy_of / "model.pte"
    data = bytearray(pte.read_bytes())
    for i in torch.randint(len(data) // 2, len(data), (200,), generator=torch.Generator().manual_seed(0)).tolist():
        data[i] ^= 0xFF
    pte.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"not the program this bundle was exported with"):
        load_bundle(copy_of)


def test_a_foreign_file_is_refused_before_the_runtime_sees_it(copy_of):
    _without_checksum(copy_of)
    pte = copy_of / "model.pte"
    data = bytearray(pte.read_bytes())
    data[4:8] = b"XXXX"  # the flatbuffer file identifier
    pte.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"is not an ExecuTorch program \(no ET12 identifier"):
        load_bundle(copy_of)


@pytest.mark.parametrize("checksum", [True, False])
def test_random_bytes_are_an_error_not_an_abort(copy_of, checksum):
    """The runtime aborts the process on some random files (SIGABRT): run the CLI in a child process."""
    if not checksum:
        _without_checksum(copy_of)
    (copy_of / "model.pte").write_bytes(torch.randint(0, 256, (80_000,), dtype=torch.uint8).numpy().tobytes())
    done = subprocess.run(
        [sys.executable, "-m", "ondevice", "profile", str(copy_of), "--runs", "3"], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "ondevice profile: error:" in done.stderr and "Traceback" not in done.stderr


def test_missing_program(copy_of):
    (copy_of / "model.pte").unlink()
    with pytest.raises(BundleError, match=r"the manifest names model.pte but .* does not exist"):
        load_bundle(copy_of)


def _edit_manifest(path, edit):
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_manifest_with_other_stage_count(copy_of):
    def four_stages(m):
        m["gates"].update(num_stages=4, super_net="FFFF", base_net="TTTT")
        for s in m["subnets"]:
            s["gates"] += "F"
        m["formats"]["executorch"]["gates_input"]["shape"] = [4]

    _edit_manifest(copy_of, four_stages)
    with pytest.raises(BundleError, match=r"program takes \[3\] gates, the manifest has num_stages 4"):
        load_bundle(copy_of)


def test_manifest_with_other_input_shape(copy_of):
    _edit_manifest(copy_of, lambda m: m["input"].update(shape=[1, 1, 28, 28]))
    with pytest.raises(BundleError, match=r"images of shape \[1, 1, 16, 16\], the manifest says \[1, 1, 28, 28\]"):
        load_bundle(copy_of)


def test_manifest_with_other_gate_dtype(copy_of):
    _edit_manifest(copy_of, lambda m: m["formats"]["executorch"]["gates_input"].update(dtype="bool"))
    with pytest.raises(BundleError, match=r"gates dtype 'bool' does not match"):
        load_bundle(copy_of)


def test_manifest_with_other_method(copy_of):
    _edit_manifest(copy_of, lambda m: m["formats"]["executorch"].update(method="subnet_FFF"))
    with pytest.raises(BundleError, match=r"names method 'subnet_FFF' but the program has \['forward'\]"):
        load_bundle(copy_of)


def test_manifest_without_executorch(copy_of):
    _edit_manifest(copy_of, lambda m: m["formats"].pop("executorch"))
    with pytest.raises(BundleError, match=r"lists no executorch program"):
        GatedProgram(copy_of)


def test_manifest_of_another_version_or_invalid(copy_of):
    _edit_manifest(copy_of, lambda m: m.update(manifest_version=2))
    with pytest.raises(ManifestError, match=r"manifest_version 2; this ondevice .* reads version 1"):
        load_bundle(copy_of)
    _edit_manifest(copy_of, lambda m: m.update(manifest_version=1, extra=1))
    with pytest.raises(ManifestError, match=r"not a valid manifest"):
        load_bundle(copy_of)


def test_missing_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no bundle directory"):
        load_bundle(tmp_path / "nothing")


def test_threads_can_be_set():
    before = thread_count()
    try:
        assert set_threads(1) == 1
    finally:
        set_threads(before)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        set_threads(0)


def test_formats_and_missing_extras():
    assert "executorch" in available_formats()
    assert resolve_formats("all") == available_formats()
    assert resolve_formats("executorch,executorch") == ["executorch"]
    with pytest.raises(ValueError, match=r"unknown format\(s\) \['onnx'\]"):
        resolve_formats("onnx")


def test_missing_extra_names_what_to_install(monkeypatch, tmp_path):
    # As if litert-torch were not installed: the format's dependency list names a module that does not exist.
    _, _, hint = FORMATS["tflite"]
    monkeypatch.setitem(FORMATS, "tflite", ("model.tflite", ("no_such_module_for_ondevice",), hint))
    assert "tflite" not in available_formats()
    with pytest.raises(
        MissingExtraError, match=r"--format tflite needs no_such_module_for_ondevice.*ondevice\[litert\]"
    ):
        export_bundle(tmp_path / "unused.pt", tmp_path / "bundle", "tflite")
    assert not (tmp_path / "bundle").exists()


def test_export_refuses_to_replace_a_directory_that_is_not_a_bundle(bundle, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["export", str(bundle[2]), "--out", str(tmp_path)]) == 2
    assert "exists and is not a bundle" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--size-budget", "0.5"], "at least 1.0; got 0.5"),
        (["--share-weights", "none", "--size-budget", "1.3"], "applies to share_weights 'auto' only"),
    ],
)
def test_a_size_budget_that_cannot_apply_is_an_error_before_any_work(bundle, tmp_path, capsys, flags, message):
    assert main(["export", str(bundle[2]), "--out", str(tmp_path / "b"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_eval_json_of_another_checkpoint_is_ignored(tmp_path):
    ckpt = write_run(tmp_path / "run", tiny_model())
    assert find_eval_json(ckpt) == tmp_path / "run" / "eval.json"
    (tmp_path / "run" / "eval.json").write_text(json.dumps({"checkpoint": "/elsewhere/checkpoint.pt", "subnets": []}))
    assert find_eval_json(ckpt) is None


def test_stale_eval_json_of_an_earlier_run_in_the_same_folder_is_not_used(tmp_path):
    """Same path, other weights: the content hash tells them apart (the manifest would get stale accuracy)."""
    ckpt = write_run(tmp_path / "run", tiny_model())
    assert find_eval_json(ckpt) is not None
    write_run(tmp_path / "run", tiny_model(seed=1), with_eval=False)  # retrained in place, eval.json left over
    assert find_eval_json(ckpt) is None
    model, state = load_model(ckpt)
    with pytest.raises(ValueError, match="was not written for .* checkpoint_sha256 differs"):
        _accuracy_rows(model, state, ckpt, tmp_path / "run" / "eval.json", None)


def test_accuracy_is_evaluated_when_no_eval_json(tmp_path):
    model = tiny_model()
    ckpt = write_run(tmp_path / "run", model, with_eval=False)
    model, state = load_model(ckpt)
    rows, source = _accuracy_rows(model, state, ckpt, None, None)
    assert source.startswith("evaluated on the digits test split")
    assert [r["gates"] for r in rows] == [str(g) for g in all_gates(3)] and all(0 <= r["top1"] <= 1 for r in rows)
