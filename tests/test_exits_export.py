"""Early-exit export: one ExecuTorch program the app chains piece by piece, policies in the manifest."""

import json

import pytest
import torch

from ondevice.checkpoint import load_model
from ondevice.cli import main
from ondevice.contract.manifest import MANIFEST_NAME, load_manifest, save_manifest
from ondevice.exits.export import exit_method, export_exits_executorch, stage_method
from ondevice.exits.latency import measure_piece_latency
from ondevice.exits.msdnet import msdnet_tiny

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

    # The bundle's methods, timed, put measured latency beside FLOPs on every curve.
    checkpoint, lambdas = str(run / "checkpoint.pt"), "0,0.2"
    assert main(["exits", "eval", checkpoint, "--lambdas", lambdas, "--bundle", str(bundle), "--runs", "3"]) == 0
    report = json.loads((run / "exits.json").read_text())
    assert report["latency"]["runs"] == 3 and len(report["pieces_latency_ms"]["segment"]) == 3
    for row in report["anytime"]:
        assert all(b > a > 0 for a, b in zip(row["latency_ms"], row["latency_ms"][1:])), row
    super_net = report["subnets"][0]
    assert super_net["gates"] == "FFF" and super_net["latency_ms"] == report["reference"]["latency_ms"]
    for point in report["policies"]["exits"]["learned"] + report["policies"]["exits"]["thresholds"]:
        first, last = report["anytime"][0]["latency_ms"][0], report["anytime"][0]["latency_ms"][-1]
        assert first - 1e-9 <= point["latency_ms"] <= last + 1e-9
    assert " ms (" in capsys.readouterr().out

    plain = tmp_path / "plain"  # a bundle without the exits program: nothing to time
    plain.mkdir()
    save_manifest(plain / MANIFEST_NAME, {k: v for k, v in manifest.items() if k != "exits"})
    with pytest.raises(ValueError, match="no exits program.*ondevice exits export"):
        measure_piece_latency(plain)


def test_export_refuses_models_without_gates(tmp_path):
    with pytest.raises(ValueError, match="no gates for the manifest"):
        export_exits_executorch(msdnet_tiny(), tmp_path / "x.pte")
    assert not (tmp_path / "x.pte").exists()
