"""Early-exit export: one ExecuTorch program the app chains piece by piece, policies in the manifest."""

import json

import pytest
import torch

from ondevice.checkpoint import load_model
from ondevice.cli import main
from ondevice.exits.export import exit_method, export_exits_executorch, stage_method
from ondevice.exits.msdnet import msdnet_tiny
from ondevice.export.manifest import load_manifest

pytest.importorskip("executorch")

ARGS = ["--data", "digits", "--limit", "96", "--batch-size", "16", "--epochs", "1"]


@pytest.mark.slow
def test_export_writes_a_chained_program_and_the_policies(tmp_path, capsys):
    run, bundle = tmp_path / "run", tmp_path / "bundle"
    assert main(["train", *ARGS, "--method", "exits-ge", "--out", str(run)]) == 0
    assert main(["exits", "export", str(run / "checkpoint.pt"), "--out", str(bundle), "--lambda", "0.2"]) == 0
    manifest = load_manifest(bundle)  # validates against the schema
    exits = manifest["exits"]
    assert exits["num_exits"] == 3 and set(exits["policies"]) == {s["gates"] for s in manifest["subnets"]}
    policy = exits["policies"]["FFF"]
    assert policy["learned"]["kind"] == "learned_exit_policy" and len(policy["learned"]["deciders"]) == 2
    assert len(policy["thresholds"]["thresholds"]) == 2 and len(policy["exit_flops"]) == 3
    json.dumps(manifest, allow_nan=False)

    from executorch.runtime import Runtime

    model, _ = load_model(run / "checkpoint.pt")
    program = Runtime.get().load_program((bundle / exits["file"]).read_bytes())
    image = torch.randn(1, 1, 8, 8)
    x = program.load_method(stage_method(0, True)).execute([image])[0]
    logits, features = program.load_method(exit_method(0, True)).execute([x])
    expected = model.forward_exits(image, "TFF", upto=0, features=True)
    torch.testing.assert_close(logits, expected.logits[0], atol=1e-4, rtol=1e-4)
    assert features.shape == (1, exits["feature_dims"][0])
    assert "exits section" in capsys.readouterr().out


def test_export_refuses_models_without_gates(tmp_path):
    with pytest.raises(ValueError, match="no gates for the manifest"):
        export_exits_executorch(msdnet_tiny(), tmp_path / "x.pte")
    assert not (tmp_path / "x.pte").exists()
