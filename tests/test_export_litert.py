"""LiteRT export: one .tflite, one signature per sub-network, run here with ai-edge-litert.

These tests need the optional extra (`pip install 'ondevice[litert]'`, which CI installs). Without it they
fail with that hint instead of skipping, so a CI that lost the extra cannot go green silently.
"""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from tiny_models import contextual_tiny_model
from torch import nn

from ondevice.export import litert
from ondevice.export.common import ExportError
from ondevice.export.litert import (
    INSTALL_HINT,
    LiteRTUnavailableError,
    check_litert_parity,
    export_litert,
    litert_signatures,
)
from ondevice.models import all_gates

GATES = [str(g) for g in all_gates(3)]
ATOL = 1e-4


def _tiny_model() -> nn.Module:
    """resnet20_adn at 16x16, random weights and norm statistics, entry norms per previous gate."""
    return contextual_tiny_model()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return _tiny_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """Every sub-network in one file (parity checked inside the export), and the super-net alone."""
    out = tmp_path_factory.mktemp("litert")
    try:
        entry = export_litert(model, out / "model.tflite")
        single = export_litert(model, out / "single.tflite", ["FFF"])
    except LiteRTUnavailableError as err:
        pytest.fail(f"the LiteRT extra is missing; CI must install it: {err}")
    return out, entry, single


@pytest.mark.slow
def test_manifest_entry(exported):
    out, entry, _ = exported
    assert entry["file"] == "model.tflite"
    assert entry["signatures"] == {g: f"subnet_{g}" for g in GATES}
    assert (entry["input"], entry["output"]) == ("image", "logits")
    assert entry["size_bytes"] == (out / "model.tflite").stat().st_size
    assert set(entry["parity"]["max_abs_diff"]) == set(GATES)
    assert max(entry["parity"]["max_abs_diff"].values()) <= ATOL


@pytest.mark.slow
def test_signatures(exported):
    out, _, _ = exported
    signatures = litert_signatures(out / "model.tflite")
    assert signatures == {f"subnet_{g}": {"inputs": ["image"], "outputs": ["logits"]} for g in GATES}


@pytest.mark.slow
def test_parity_every_signature(exported, model):
    out, _, _ = exported
    diffs = check_litert_parity(out / "model.tflite", model, None, ATOL)
    assert set(diffs) == set(GATES)
    assert all(d <= ATOL for d in diffs.values())


@pytest.mark.slow
def test_signatures_are_different_subnetworks(exported, model):
    """A file whose signatures all ran the super-net would pass a parity test against the super-net only."""
    out, _, _ = exported
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.layer3[2].conv2.weight.mul_(3.0)  # layer3's skippable block: only settings that run it change
    with pytest.raises(ExportError) as info:
        check_litert_parity(out / "model.tflite", broken, None, ATOL)
    failed = {part.split(":")[0].strip() for part in str(info.value).split("): ")[1].split(",")}
    assert failed == {g for g in GATES if g[2] == "F"}


def test_each_signature_bakes_the_entry_statistics_of_its_previous_gate(exported, model):
    """layer2's first norm after a skipped stage 0 is used only by TF*: only those signatures may change."""
    out, _, _ = exported
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.layer2[0].bn1.running_mean_after_skip.add_(1.0)
    with pytest.raises(ExportError) as info:
        check_litert_parity(out / "model.tflite", broken, None, ATOL)
    failed = {part.split(":")[0].strip() for part in str(info.value).split("): ")[1].split(",")}
    assert failed == {"TFF", "TFT"}


@pytest.mark.slow
def test_weights_shared_across_signatures(exported):
    out, entry, single = exported
    # 8 separate files would be ~8x one; shared, the file is one super-net plus the mandatory blocks'
    # weights folded with their *_skip norms, and each stage's entry convs folded with both previous-gate contexts
    assert entry["size_bytes"] < 2.2 * single["size_bytes"]
    assert single["signatures"] == {"FFF": "subnet_FFF"}


@pytest.mark.slow
def test_missing_signature(exported, model):
    out, _, _ = exported
    with pytest.raises(ValueError, match="no signature"):
        check_litert_parity(out / "single.tflite", model, ["TTT"])


def test_failed_parity_keeps_previous_file(model, tmp_path, monkeypatch):
    """A conversion that produces a bad program never replaces the file already there."""
    try:
        import litert_torch
    except ImportError:
        pytest.fail(f"the LiteRT extra is missing; CI must install it: {INSTALL_HINT}")

    class JunkConverter:
        def signature(self, *args, **kwargs):
            return self

        def convert(self):
            return self

        def export(self, path):
            with open(path, "wb") as f:
                f.write(b"not a flatbuffer")

    target = tmp_path / "model.tflite"
    target.write_bytes(b"previous")
    monkeypatch.setattr(litert_torch, "Converter", JunkConverter)
    with pytest.raises(ValueError):
        export_litert(model, target, ["FFF"])
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]


@pytest.mark.parametrize("module", ["litert_torch", "ai_edge_litert.interpreter"])
def test_missing_extra_names_it(model, tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(LiteRTUnavailableError, match=r"pip install 'ondevice\[litert\]'") as info:
        export_litert(model, tmp_path / "model.tflite")
    assert isinstance(info.value, ImportError)
    assert not (tmp_path / "model.tflite").exists()
    assert litert.INSTALL_HINT in str(info.value)
