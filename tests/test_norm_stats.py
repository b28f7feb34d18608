"""Norm statistics: exact re-estimation, entry norms per previous gate, and every stage that consumes them."""

import copy

import pytest
import torch
from tiny_models import contextual_tiny_model
from torch import nn

from ondevice.checkpoint import checkpoint_data, load_checkpoint, load_model, save_checkpoint
from ondevice.evaluate import evaluate, full_front_shortfall
from ondevice.metrics import accuracy
from ondevice.models import all_gates, build_model, model_segments
from ondevice.models.context_norm import ContextBatchNorm2d
from ondevice.models.norm_stats import (
    enable_entry_contexts,
    has_entry_contexts,
    recalibrate_norms,
    refinement_gaps,
)
from ondevice.train import TrainConfig, train


def _model(name="resnet10_adn", **kw):
    torch.manual_seed(0)
    return build_model(name, num_classes=4, in_chans=1, image_size=8, **kw)


def _images(n=48, seed=1):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


def _batch_stats_oracle(model, images, settings):
    """What every BatchNorm should hold: the mean over settings of its statistics in one train-mode pass
    over all images as a single batch (momentum 1 keeps exactly the last batch's statistics)."""
    sums = {}
    for gates in settings:
        probe = copy.deepcopy(model)
        for m in probe.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = 1.0
        probe.eval()
        for m in probe.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.train()
        with torch.no_grad():
            probe(images, gates)
        for name, m in probe.named_modules():
            if isinstance(m, nn.BatchNorm2d) and int(m.num_batches_tracked):
                mean, var, n = sums.get(name, (0, 0, 0))
                sums[name] = (mean + m.running_mean, var + m.running_var, n + 1)
    return {name: (mean / n, var / n) for name, (mean, var, n) in sums.items()}


def test_recalibration_averages_each_norm_over_the_settings_that_use_it():
    model, images = _model(), _images()
    settings = all_gates(model.num_stages)
    expected = _batch_stats_oracle(model, images, settings)
    recalibrate_norms(model, images, settings, batch_size=len(images))
    modules = dict(model.named_modules())
    assert set(expected) == {n for n, m in modules.items() if isinstance(m, nn.BatchNorm2d)}  # every norm saw data
    for name, (mean, var) in expected.items():
        torch.testing.assert_close(modules[name].running_mean, mean, msg=name)
        torch.testing.assert_close(modules[name].running_var, var, msg=name)
        assert modules[name].momentum == 0.1  # restored
    assert not model.training


def test_recalibration_leaves_weights_alone_and_rejects_empty_input():
    model, images = _model(), _images()
    before = {k: v.clone() for k, v in model.named_parameters()}
    recalibrate_norms(model, images, all_gates(2))
    for name, value in model.named_parameters():
        assert torch.equal(value, before[name]), name
    with pytest.raises(ValueError, match="at least one image"):
        recalibrate_norms(model, images[:0], all_gates(2))


def test_entry_contexts_hold_the_statistics_of_each_previous_gate():
    model, images = _model(), _images()
    settings = all_gates(model.num_stages)
    recalibrate_norms(model, images, settings, entry_contexts=True, batch_size=len(images))
    entry = model.get_submodule("layer2.0.bn1")
    assert isinstance(entry, ContextBatchNorm2d) and has_entry_contexts(model)
    for previous, context in ((False, "after_run"), (True, "after_skip")):
        subset = [g for g in settings if g[0] == previous]  # stage 0's gate is stage 1's previous gate
        mean, var = _batch_stats_oracle(model, images, subset)["layer2.0.bn1"]
        torch.testing.assert_close(getattr(entry, f"running_mean_{context}"), mean)
        torch.testing.assert_close(getattr(entry, f"running_var_{context}"), var)
    assert not isinstance(model.get_submodule("layer1.0.bn1"), ContextBatchNorm2d)  # stage 0 has no previous gate
    assert not isinstance(model.get_submodule("layer2.0.bn2"), ContextBatchNorm2d)  # not an entry norm


def test_each_sub_network_uses_its_own_previous_gate_context():
    model, images = _model(), _images()
    recalibrate_norms(model, images, all_gates(2), entry_contexts=True)
    x = images[:4]
    for gates in all_gates(2):
        reference = copy.deepcopy(model)  # plain BatchNorms holding only this sub-network's entry statistics
        context = "after_skip" if gates[0] else "after_run"
        for name in reference.entry_norms(1):
            parent, _, attr = name.rpartition(".")
            bn = reference.get_submodule(name)
            plain = nn.BatchNorm2d(bn.num_features).eval()
            plain.load_state_dict(
                {
                    "weight": bn.weight,
                    "bias": bn.bias,
                    "num_batches_tracked": bn.num_batches_tracked,
                    "running_mean": getattr(bn, f"running_mean_{context}"),
                    "running_var": getattr(bn, f"running_var_{context}"),
                }
            )
            setattr(reference.get_submodule(parent), attr, plain)
        assert not has_entry_contexts(reference)
        with torch.no_grad():
            torch.testing.assert_close(model(x, gates), reference(x, gates), msg=str(gates))
    with torch.no_grad():  # the two contexts really differ, so picking the wrong one would show
        h = model.run_stage(0, model.forward_stem(x), False, None)
        assert not torch.allclose(model.run_stage(1, h, False, False), model.run_stage(1, h, False, True))


def _save(path, model):
    state = {
        "model_name": "resnet10_adn",
        "model_kwargs": {"num_classes": 4, "in_chans": 1, "image_size": 8},
        "model": model.state_dict(),
        "train_config": {"method": "adn"},
    }
    return save_checkpoint(path, state)


def test_contexts_survive_save_and_load_and_official_keys_are_unchanged(tmp_path):
    model, images = _model(), _images()
    official_keys = set(model.state_dict())
    recalibrate_norms(model, images, all_gates(2), entry_contexts=True)
    added = set(model.state_dict()) - official_keys
    assert official_keys <= set(model.state_dict()) and added
    assert all((".running_" in k and "_after_" in k) or ".batches_after_" in k for k in added)
    loaded, _ = load_model(_save(tmp_path / "c.pt", model))
    x = images[:3]
    with torch.no_grad():
        for gates in all_gates(2):
            torch.testing.assert_close(loaded(x, gates), model(x, gates), rtol=0, atol=0)
    plain = _model()  # a checkpoint of the previous format (no contexts) still loads, with plain norms
    old, _ = load_model(_save(tmp_path / "old.pt", plain))
    assert not has_entry_contexts(old)


def test_unseen_context_falls_back_to_the_averaged_statistics():
    model, images = _model(), _images()
    recalibrate_norms(model, images, ["FF", "FT"], entry_contexts=True)  # stage 0 always ran
    bn = model.get_submodule("layer2.0.bn1")
    assert int(bn.batches_after_skip) == 0
    torch.testing.assert_close(bn.running_mean_after_skip, bn.running_mean)
    torch.testing.assert_close(bn.running_var_after_skip, bn.running_var)


def test_segments_have_one_branch_per_previous_and_own_gate():
    model = _model("resnet20_adn")
    recalibrate_norms(model, _images(), all_gates(3), entry_contexts=True)
    segments = model_segments(model)
    assert segments.contextual
    assert set(segments.branches[0]) == {(None, False), (None, True)}
    assert set(segments.branches[2]) == {(p, s) for p in (False, True) for s in (False, True)}
    x = _images(2)
    with torch.no_grad():
        for gates in all_gates(3):
            torch.testing.assert_close(segments(x, gates), model(x, gates), rtol=0, atol=0, msg=str(gates))


def test_mobilenet_entry_norms_exist_and_follow_the_previous_gate():
    torch.manual_seed(0)
    model = build_model("mobilenet_v2_adn_small", num_classes=4, in_chans=1, image_size=16)
    names = [n for i in range(1, model.num_stages) for n in model.entry_norms(i)]
    assert len(names) == 8 and all(isinstance(model.get_submodule(n), nn.BatchNorm2d) for n in names)
    enable_entry_contexts(model)
    assert all(isinstance(model.get_submodule(n), ContextBatchNorm2d) for n in names)
    assert model.entry_norms(0) == ()


def test_refinement_gap_is_zero_when_the_skippable_path_adds_nothing():
    model = _model().eval()
    with torch.no_grad():
        for index in range(model.num_stages):  # skippable blocks add zero; *_skip norms equal the main norms
            stage = model.stage(index)
            for block in list(stage)[stage.n_mandatory :]:
                block.bn2.weight.zero_()
                block.bn2.bias.zero_()
    gaps = refinement_gaps(model, _images())
    assert gaps == pytest.approx([0.0, 0.0], abs=1e-6)
    with torch.no_grad():
        model.layer2[1].bn2.bias.fill_(3.0)
    assert refinement_gaps(model, _images())[1] > 0.1


def _with_statistics(model, images, gates):
    """A copy whose every BatchNorm holds the hand-computed statistics of ``gates`` alone on ``images``."""
    copy_ = copy.deepcopy(model)
    modules = dict(copy_.named_modules())
    for name, (mean, var) in _batch_stats_oracle(model, images, [gates]).items():
        modules[name].running_mean.copy_(mean)
        modules[name].running_var.copy_(var)
        if isinstance(modules[name], ContextBatchNorm2d):
            for context in ("after_run", "after_skip"):
                getattr(modules[name], f"running_mean_{context}").copy_(mean)
                getattr(modules[name], f"running_var_{context}").copy_(var)
    return copy_


def test_training_ends_with_exact_statistics_and_diagnostics_report_each_sub_networks_own(tmp_path):
    cfg = TrainConfig(model="resnet10_adn", data="digits", limit=512, batch_size=32, epochs=3, norm_images=512)
    path = train(cfg, tmp_path, progress=False)
    model, state = load_model(path)
    assert state["norm_stats"]["entry_contexts"] and has_entry_contexts(model)
    data = checkpoint_data(state)
    history = load_checkpoint(path)["history"][-1]  # the last epoch reports the accuracy of the saved statistics
    assert history["test_top1_super"] == accuracy(model, data.test, "FF")
    assert history["test_top1_base"] == accuracy(model, data.test, "TT")

    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.layer2[0].bn2.running_mean.add_(5.0)  # used by FF and TF only
    calibration = data.train.tensors[0][:150]  # one batch: the hand-computed statistics are exact
    rows = {r.gates: r for r in evaluate(broken, data.test, progress=False, calibration=calibration)}
    for gates, row in rows.items():
        assert row.top1 == accuracy(broken, data.test, gates)  # the broken model itself is scored, untouched
        assert row.top1_own_stats == accuracy(_with_statistics(broken, calibration, gates), data.test, gates)
    for gates in ("FF", "TF"):
        assert rows[gates].top1_own_stats - rows[gates].top1 > 0.2, rows[gates]
    assert full_front_shortfall(list(rows.values())) == pytest.approx(
        max(0.0, min(rows["FF"].top1, rows["TT"].top1) - min(r.top1 for r in rows.values()))
    )


def test_gated_executorch_program_follows_the_previous_gate(tmp_path):
    from executorch.runtime import Runtime

    from ondevice.export.common import PARITY_ATOL
    from ondevice.export.executorch import export_executorch
    from ondevice.models import gates_tensor

    model = contextual_tiny_model()
    entry = export_executorch(model, tmp_path / "model.pte", share_weights="none", share_contexts=True)
    assert entry["parity_max_abs_diff"] <= PARITY_ATOL
    contexts = sum(isinstance(m, ContextBatchNorm2d) for m in model.modules())
    assert entry["entry_norms_shared"] == contexts == 6  # each entry conv stored once, not once per context
    none = export_executorch(model, tmp_path / "none.pte", share_weights="none")
    assert none["entry_norms_shared"] == 0 and none["size_bytes"] > entry["size_bytes"]  # "none": nothing rewritten
    forward = Runtime.get().load_program(tmp_path / "model.pte").load_method("forward")
    pooled = copy.deepcopy(model)  # the same network without contexts: what a program that ignored them computes
    for m in pooled.modules():
        if isinstance(m, ContextBatchNorm2d):
            m.__class__ = nn.BatchNorm2d
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    for gates in all_gates(3):
        got = forward.execute([x, gates_tensor(gates, 3)])[0]
        with torch.no_grad():
            assert (got - model(x, gates)).abs().max() <= PARITY_ATOL, gates
            assert (got - pooled(x, gates)).abs().max() > 100 * PARITY_ATOL, gates


def test_shared_entry_contexts_compute_each_context_from_the_after_run_one():
    """The export's rewrite: after-skip statistics as the after-run ones plus a per-channel affine, the same numbers
    for every sub-network; a context whose ratio would lose precision keeps its own statistics."""
    from ondevice.export.norm_sharing import share_entry_contexts

    model = contextual_tiny_model()
    extreme = next(m for m in model.modules() if isinstance(m, ContextBatchNorm2d))
    with torch.no_grad():
        extreme.running_var_after_skip[0] = 1e-6  # scale ratio ~ sqrt(var_run / 1e-6) > 64
    shared, rewritten, kept = share_entry_contexts(model)
    assert (rewritten, kept) == (5, 1)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for gates in all_gates(3):
            torch.testing.assert_close(shared(x, gates), model(x, gates), rtol=1e-6, atol=1e-5, msg=str(gates))


def test_the_sharing_plan_counts_every_folded_copy_of_an_entry_conv():
    """By hand on resnet20_adn with entry contexts: a conv folds once per (norm, context) it meets. An entry conv
    with a main and a skip norm, each with two contexts, is stored 4 times; one with a single context norm (the
    downsample) twice; every other mandatory conv twice (main and skip norm)."""
    from ondevice.export.norm_sharing import plan_norm_sharing

    model = contextual_tiny_model()
    total = unshareable = affines = 0
    for module in model.modules():
        for attr, norm in module.named_children():
            if not isinstance(norm, nn.BatchNorm2d) or attr.endswith("_skip"):
                continue
            conv = module.get_submodule("0" if attr == "1" else attr.replace("bn", "conv"))
            folded = (conv.weight.numel() + conv.out_channels) * 4
            twin = getattr(module, f"{attr}_skip", None)
            norms = [n for n in (norm, twin) if n is not None]
            copies = sum(2 if isinstance(n, ContextBatchNorm2d) else 1 for n in norms)
            total += (copies - 1) * folded
            if twin is not None and isinstance(twin, ContextBatchNorm2d):
                unshareable += folded  # main vs skip of an entry conv: both follow the previous gate
            affines += (
                (copies - 1 - (twin is not None and isinstance(twin, ContextBatchNorm2d))) * 8 * conv.out_channels
            )
    assert total > 0 and unshareable > 0
    assert plan_norm_sharing(model, float("inf")).extra_bytes == total  # nothing rewritten
    everything = plan_norm_sharing(model, 1.0)  # every rewrite that saves bytes
    assert everything.extra_bytes == unshareable + affines
    assert len(everything.contexts) == sum(isinstance(m, ContextBatchNorm2d) for m in model.modules())


def test_a_checkpoint_without_exact_statistics_converts_by_command(tmp_path, capsys):
    from ondevice.cli import main

    cfg = TrainConfig(model="resnet10_adn", data="digits", limit=128, batch_size=32, epochs=1, norm_images=0)
    old = train(cfg, tmp_path / "old", progress=False)
    assert "norm_stats" not in load_checkpoint(old)  # the previous format: momentum averages only
    new = tmp_path / "new.pt"
    assert main(["recalibrate", str(old), "--out", str(new), "--images", "100"]) == 0
    model, state = load_model(new)
    assert state["norm_stats"]["images"] == 100 and has_entry_contexts(model)
    assert main(["recalibrate", str(old), "--out", str(new)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert torch.equal(load_checkpoint(new)["model"]["conv1.weight"], load_checkpoint(old)["model"]["conv1.weight"])


def test_static_program_of_a_mixed_sub_network_uses_its_contexts(tmp_path):
    from executorch.runtime import Runtime

    from ondevice.export.common import PARITY_ATOL
    from ondevice.export.executorch import export_static_executorch

    model = contextual_tiny_model()
    export_static_executorch(model, "TFT", tmp_path / "static.pte")
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    got = Runtime.get().load_program(tmp_path / "static.pte").load_method("forward").execute([x])[0]
    with torch.no_grad():
        assert (got - model(x, "TFT")).abs().max() <= PARITY_ATOL
