"""Every file the toolkit reads, fed random and mutated bytes: a clear error or a correct result, never a
traceback of another kind, never an abort, never a changed input file (a bounded number of examples)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_helpers import make_manifest
from test_data import write_cifar, write_folder

from ondevice.bundle import find_eval_json
from ondevice.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ondevice.contract.manifest import ManifestError, load_manifest, save_manifest
from ondevice.data import load_data
from ondevice.policy.config import PolicyConfig, PolicyConfigError, load_policy_config, write_policy_json
from ondevice.profile import merge_latency

# derandomize: CI sees the same examples every run (a gate must not flicker); explore with more examples by hand,
# e.g. `ONDEVICE_FUZZ_EXAMPLES=1000 pytest tests/test_fuzz_inputs.py` (then drawn at random).
EXAMPLES = int(os.environ.get("ONDEVICE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 25,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    """``data`` with bytes overwritten at (position, value) pairs, then cut to ``cut`` bytes."""
    out = bytearray(data)
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out if cut is None else out[: cut % (len(out) + 1)])


MUTATIONS = st.tuples(
    st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), max_size=20), st.none() | st.integers(0, 2**31)
)


def _unchanged_after(path, call):
    """Run ``call()``; the file it reads is byte for byte the same afterwards."""
    before = path.read_bytes()
    try:
        return call()
    finally:
        assert path.read_bytes() == before


@FUZZ
@given(mutation=MUTATIONS, noise=st.binary(max_size=64))
def test_checkpoints(tmp_path_factory, mutation, noise):
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(64.0)}, "epoch": 1})
    good = path.read_bytes()
    for data in (_mutate(good, *mutation), noise):
        path.write_bytes(data)
        try:
            state = _unchanged_after(path, lambda: load_checkpoint(path))
        except CheckpointError:
            continue
        assert set(state) >= {"format", "version"}  # what was read is a checkpoint dict


@FUZZ
@given(mutation=MUTATIONS)
def test_manifest_json(tmp_path_factory, mutation):
    bundle = tmp_path_factory.mktemp("bundle")
    save_manifest(bundle / "manifest.json", make_manifest([("FF", 0.9, 2.0), ("TT", 0.8, 1.0)]))
    path = bundle / "manifest.json"
    path.write_bytes(_mutate(path.read_bytes(), *mutation))
    try:
        manifest = _unchanged_after(path, lambda: load_manifest(bundle))
    except ManifestError:
        return
    assert all(len(s["gates"]) == manifest["gates"]["num_stages"] for s in manifest["subnets"])


@FUZZ
@given(mutation=MUTATIONS)
def test_policy_json(tmp_path_factory, mutation):
    path = write_policy_json(tmp_path_factory.mktemp("policy"))
    path.write_bytes(_mutate(path.read_bytes(), *mutation))
    try:
        config = _unchanged_after(path, lambda: load_policy_config(path))
    except PolicyConfigError:
        return
    assert isinstance(config, PolicyConfig)
    assert PolicyConfig.from_dict(config.to_dict()) == config  # whatever is accepted is also valid when written


@FUZZ
@given(mutation=MUTATIONS)
def test_app_latency_files(tmp_path_factory, mutation):
    bundle = tmp_path_factory.mktemp("merge")
    save_manifest(bundle / "manifest.json", make_manifest([("FF", 0.9, 2.0), ("TT", 0.8, 1.0)], tables={}))
    phone = bundle.parent / f"{bundle.name}-phone.json"
    table = {
        "FF": {"median_ms": 2.0, "p90_ms": 2.5, "min_ms": 1.9},
        "TT": {"median_ms": 1.0, "p90_ms": 1.2, "min_ms": 0.9},
    }
    good = {"format": "ondevice-latency", "version": 1, "device": "phone", "backend": "xnnpack", "subnets": table}
    phone.write_text(json.dumps(good))
    phone.write_bytes(_mutate(phone.read_bytes(), *mutation))
    manifest_before = (bundle / "manifest.json").read_bytes()
    try:
        merged = _unchanged_after(phone, lambda: merge_latency(bundle, phone))
    except (ManifestError, ValueError):
        assert (bundle / "manifest.json").read_bytes() == manifest_before  # a refused file changes nothing
        return
    assert load_manifest(bundle)["latency"] == merged["latency"]


@FUZZ
@given(mutation=MUTATIONS)
def test_eval_json_of_unknown_content_is_not_used(tmp_path_factory, mutation):
    run = tmp_path_factory.mktemp("run")
    ckpt = save_checkpoint(run / "checkpoint.pt", {"model": {}})
    path = run / "eval.json"
    path.write_text(json.dumps({"checkpoint": str(ckpt), "checkpoint_sha256": "0" * 64, "subnets": []}))
    path.write_bytes(_mutate(path.read_bytes(), *mutation))
    assert _unchanged_after(path, lambda: find_eval_json(ckpt)) is None


@FUZZ
@given(noise=st.binary(min_size=0, max_size=256), mutation=MUTATIONS)
def test_image_folders(tmp_path_factory, noise, mutation):
    root = write_folder(tmp_path_factory.mktemp("images"), per_class=3)
    victim = root / "cat" / "0.png"
    victim.write_bytes(_mutate(victim.read_bytes(), *mutation))
    (root / "dog" / "1.png").write_bytes(noise)
    try:
        data = load_data("imagefolder", root, image_size=8)
    except ValueError as err:
        assert "cannot read image" in str(err)
        return
    assert data.train.tensors[0].shape[1:] == (1, 8, 8) and torch.isfinite(data.train.tensors[0]).all()


@FUZZ
@given(mutation=MUTATIONS)
def test_cifar_batches(tmp_path_factory, mutation):
    root = write_cifar(tmp_path_factory.mktemp("cifar"))
    victim = root / "data_batch_2"
    victim.write_bytes(_mutate(victim.read_bytes(), *mutation))
    try:
        data = _unchanged_after(victim, lambda: load_data("cifar10", root))
    except ValueError:
        return
    assert data.train.tensors[0].shape[1:] == (3, 32, 32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from test_runtime import tiny_model, write_run

    from ondevice.bundle import export_bundle

    root = tmp_path_factory.mktemp("fuzz-pte")
    export_bundle(write_run(root / "run", tiny_model()), root / "bundle", log=lambda _: None)
    return root / "bundle"


@settings(
    max_examples=min(EXAMPLES, 15),
    deadline=None,
    derandomize=EXAMPLES <= 25,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mutation=MUTATIONS)
def test_programs_are_checked_before_the_runtime_sees_them(exported, tmp_path_factory, mutation):
    """With the manifest's checksum, any change to model.pte is refused in Python (the runtime may abort)."""
    from ondevice.runtime import BundleError, load_bundle

    bundle = tmp_path_factory.mktemp("copy") / "bundle"
    shutil.copytree(exported, bundle)
    pte = bundle / "model.pte"
    good = pte.read_bytes()
    pte.write_bytes(_mutate(good, *mutation))
    if pte.read_bytes() == good:
        assert load_bundle(bundle).run(torch.zeros(1, 1, 16, 16)).shape == (1, 10)
        return
    with pytest.raises(BundleError):
        _unchanged_after(pte, lambda: load_bundle(bundle))
