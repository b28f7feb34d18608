"""ExecuTorch export: one gated program, every heavy op on XNNPACK, parity with eager for every gate setting."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import contextual_tiny_model
from torch import nn

from ondevice.export.common import PARITY_ATOL, ExportError
from ondevice.export.executorch import (
    _channels_last_boundaries,
    _check_delegated,
    _nhwc_boundaries,
    _segments,
    auto_sharing_plan,
    export_executorch,
    export_static_executorch,
    program_ops,
    stage_groups,
)
from ondevice.export.norm_sharing import plan_norm_sharing, share_skip_norms
from ondevice.models import Gates, all_gates, build_model, covering_gates, gates_tensor, model_segments

ROOT = Path(__file__).resolve().parent.parent
GATE_PLUMBING = {"aten::ne.Scalar_out", "aten::select_copy.int_out"}


def tiny_model(seed: int = 0, name: str = "resnet20_adn"):
    """A ResNet-ADN at 16x16 with random BN statistics, so each *_skip norm differs from its main norm."""
    torch.manual_seed(seed)
    model = build_model(name, num_classes=10, in_chans=1, image_size=16).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    out = tmp_path_factory.mktemp("pte")
    calls = []

    def record(module, example):
        calls.append((type(module).__name__, tuple(example.shape)))
        return module

    # Every conv shared here; the default ("auto") is exported below and by test_runtime/test_profile.
    entry = export_executorch(model, out / "model.pte", quantize=lambda s: s.map(record), share_weights="skip")
    static = export_static_executorch(model, "FFF", out / "static_FFF.pte")
    return model, out, entry, static, calls


def test_manifest_entry_describes_the_program(exported):
    _, out, entry, _, _ = exported
    assert entry["file"] == "model.pte" and entry["method"] == "forward"
    assert entry["inputs"] == ["image", "gates"]
    assert entry["gates_input"]["dtype"] == "int32" and entry["gates_input"]["shape"] == [3]
    assert entry["backend"] == "xnnpack"
    assert entry["size_bytes"] == (out / "model.pte").stat().st_size
    assert entry["parity_max_abs_diff"] <= PARITY_ATOL


def test_every_heavy_op_is_delegated_in_the_written_file(exported):
    _, out, entry, static, _ = exported
    ops = program_ops(out / "model.pte")  # read back from disk: covers both branches of every cond
    assert ops["delegates"] == ["XnnpackBackend"]
    assert ops["heavy_non_delegated"] == []
    assert set(ops["non_delegated_ops"]) <= GATE_PLUMBING, ops["non_delegated_ops"]
    assert program_ops(out / "static_FFF.pte")["non_delegated_ops"] == []


def test_a_convolution_on_the_portable_kernels_fails_the_check():
    """The naive design (plain torch.cond): XNNPACK does not enter the branches."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    class NaiveCond(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x, gate):
            return torch.cond(gate[0] != 0, lambda t: t.clone(), lambda t: self.conv(t)[:, :1, :, :].sum() + t, (x,))

    args = (torch.randn(1, 1, 6, 6), torch.zeros(1, dtype=torch.int32))
    program = to_edge_transform_and_lower(
        torch.export.export(NaiveCond(), args, strict=True), partitioner=[XnnpackPartitioner()]
    ).to_executorch()
    assert "aten::convolution.out" in program_ops(program)["heavy_non_delegated"]
    with pytest.raises(ExportError, match=r"convolution.*portable kernels"):
        _check_delegated(program, "naive")


def test_program_matches_eager_for_every_gate_setting(exported):
    from executorch.runtime import Runtime

    model, out, _, _, _ = exported
    forward = Runtime.get().load_program(out / "model.pte").load_method("forward")
    generator = torch.Generator().manual_seed(1)
    for gates in all_gates(3):
        for _ in range(2):
            x = torch.randn(1, 1, 16, 16, generator=generator)
            got = forward.execute([x, gates_tensor(gates, 3)])[0]
            with torch.no_grad():
                expected = model(x, gates)
            assert (got - expected).abs().max().item() <= PARITY_ATOL, gates


def test_static_program_runs_one_sub_network(exported):
    from executorch.runtime import Runtime

    model, out, _, static, _ = exported
    assert static["inputs"] == ["image"] and static["gates"] == "FFF"
    x = torch.randn(1, 1, 16, 16)
    got = Runtime.get().load_program(out / "static_FFF.pte").load_method("forward").execute([x])[0]
    with torch.no_grad():
        torch.testing.assert_close(got, model(x, "FFF"), atol=PARITY_ATOL, rtol=0)


def test_programs_read_their_inputs_in_place_and_leave_them_untouched(exported):
    """Inputs are outside the memory plan (no copy into the arena per call): every call reads the caller's
    current tensors, and the program never writes into them."""
    from executorch.runtime import Runtime

    model, out, _, _, _ = exported
    for name, extra in (("model.pte", [gates_tensor("TFT", 3)]), ("static_FFF.pte", [])):
        program = Runtime.get().load_program(out / name)
        meta = program.metadata("forward")
        assert [meta.input_tensor_meta(i).is_memory_planned() for i in range(meta.num_inputs())] == [False] * (
            1 + len(extra)
        )
        forward = program.load_method("forward")
        gates = "TFT" if extra else "FFF"
        for seed in (1, 2):
            x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(seed))
            kept = x.clone()
            got = forward.execute([x, *extra])[0]
            assert torch.equal(x, kept)
            with torch.no_grad():
                torch.testing.assert_close(got, model(x, gates), atol=PARITY_ATOL, rtol=0)


def test_mandatory_convs_are_stored_once(exported):
    """Skip norms as main norm + affine: the gated program is barely larger than the static super-net."""
    _, _, entry, static, _ = exported
    assert entry["shared_weights"] == "skip"
    assert entry["norm_pairs_shared"] == 12  # 3 stages x 2 mandatory blocks x 2 norms
    assert entry["size_bytes"] / static["size_bytes"] <= 1.10


def _skip_site(model, name: str) -> tuple[int, int]:
    """By hand: (bytes of ``conv<k>`` of its block folded with the ``*_skip`` norm ``layer<s>.<b>.bn<k>_skip``;
    elements it normalizes: out channels x (16 / 2^(s-1))^2 on the 16x16 input)."""
    block, norm = name.rsplit(".", 1)
    conv = model.get_submodule(f"{block}.conv{norm[2]}")
    folded = conv.weight.numel() + conv.out_channels  # weight and the bias the norm folds into it
    return folded * 4, conv.out_channels * (16 >> (int(name[5]) - 1)) ** 2


@pytest.mark.parametrize("budget", [1.0, 1.1, 1.3, 1.5, 2.0])
def test_auto_sharing_takes_the_most_bytes_per_affine_element_until_the_budget_fits(budget):
    model = tiny_model()
    sites = {n: _skip_site(model, n) for n, _ in model.named_modules() if n.endswith("_skip")}
    affine = {n: 2 * 4 * model.get_submodule(n).num_features for n in sites}  # r and c per channel
    saved = {n: b - affine[n] for n, (b, _) in sites.items()}
    plan = plan_norm_sharing(model, budget)
    allowed = (budget - 1) * plan.super_net_bytes
    ratio = {n: saved[n] / e for n, (_, e) in sites.items()}
    extra = sum(b for b, _ in sites.values()) - sum(saved[n] for n in plan.pairs)
    assert plan.contexts == set() and plan.extra_bytes == extra
    if plan.pairs:  # the best bytes per element first, and no more than needed
        assert min(ratio[n] for n in plan.pairs) >= max((ratio[n] for n in sites if n not in plan.pairs), default=0)
        assert extra <= allowed < extra + min(saved[n] for n in plan.pairs) or len(plan.pairs) == len(sites)
    else:
        assert extra <= allowed
    assert 0 < len(plan_norm_sharing(model).pairs) < len(sites)  # the case below is a real choice


@pytest.mark.parametrize("budget", [1.0, 1.1, 1.3])
def test_auto_sharing_puts_each_affine_where_the_worst_sub_network_pays_least(budget):
    """Against an exhaustive search by hand: a pair in layer<s> costs a sub-network its affine's elements when the
    branch that carries it runs (skip branch: gate s-1 skips; run branch: it runs), relative to the sub-network's
    FLOPs. The plan's placement is as good as the best of every placement, and better than all in skip branches."""
    from ondevice.models.cost import count_flops

    model = tiny_model()
    plan = plan_norm_sharing(model, budget)
    pairs = sorted(plan.pairs)
    assert not plan.skip_pairs & plan.run_pairs
    flops = {str(g): count_flops(model, g) for g in all_gates(3)}

    def worst(on_run) -> float:
        return max(
            sum(_skip_site(model, n)[1] for n in pairs if (g[int(n[5]) - 1] == "T") != (n in on_run)) / f
            for g, f in flops.items()
        )

    placements = (set(c) for k in range(len(pairs) + 1) for c in itertools.combinations(pairs, k))
    assert worst(plan.run_pairs) == pytest.approx(min(map(worst, placements)))
    assert worst(plan.run_pairs) < worst(set())


def test_the_sharing_plan_is_the_same_in_every_process():
    """Pairs of equal size tie; the placement must not follow Python's per-process string hashing (set order)."""
    import subprocess
    import sys

    code = (
        "from test_export_executorch import tiny_model; from ondevice.export.norm_sharing import plan_norm_sharing; "
        "p = plan_norm_sharing(tiny_model(), 1.1); print(sorted(p.skip_pairs), sorted(p.run_pairs))"
    )
    tests = str(Path(__file__).parent)
    plans = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=tests,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": tests},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(plans) == 1, plans


def test_auto_sharing_leaves_a_small_program_alone_and_fits_a_large_one_in_the_budget(exported, tmp_path, monkeypatch):
    """share_weights="auto" on a program whose copies are under 1 MB shares nothing (its sub-networks that skip
    pay no affine); with that floor at 0 it stores each planned conv once (the bytes saved are the plan's, less
    the affines) and lands within 1.10x the static super-net (the plan counts ~5 KB per extra delegate)."""
    model, _, _, static, _ = exported
    none = export_executorch(model, tmp_path / "none.pte", share_weights="none")
    small = export_executorch(model, tmp_path / "small.pte")
    assert small["shared_weights"] == "auto" and small["norm_pairs_shared"] == 0
    assert small["size_bytes"] == none["size_bytes"] and none["size_bytes"] / static["size_bytes"] > 1.5

    monkeypatch.setattr("ondevice.export.executorch.SMALL_PROGRAM_EXTRA_BYTES", 0)
    entry = export_executorch(model, tmp_path / "auto.pte")
    plan = auto_sharing_plan(model)
    assert entry["parity_max_abs_diff"] <= PARITY_ATOL
    assert entry["norm_pairs_shared"] == len(plan.pairs) > 0
    saved = sum(_skip_site(model, n)[0] for n in plan.pairs)
    affines = sum(2 * 4 * model.get_submodule(n).num_features for n in plan.pairs)  # r and c per channel
    assert none["size_bytes"] - entry["size_bytes"] == pytest.approx(saved - affines, rel=0.02)
    assert plan.extra_bytes <= 0.10 * plan.super_net_bytes
    assert entry["size_bytes"] / static["size_bytes"] <= 1.10

    # A larger budget keeps more copies: fewer affines for the sub-networks that skip, a larger program.
    roomy = export_executorch(model, tmp_path / "roomy.pte", size_budget=1.3)
    assert roomy["size_budget"] == 1.3 and roomy["norm_pairs_shared"] == len(auto_sharing_plan(model, 1.3).pairs)
    assert 0 < roomy["norm_pairs_shared"] < entry["norm_pairs_shared"]
    assert entry["size_bytes"] < roomy["size_bytes"] <= 1.3 * static["size_bytes"]


@pytest.mark.parametrize("budget", [0.9, float("nan")])
def test_a_size_budget_below_the_super_net_is_a_clear_error_and_writes_nothing(budget, tmp_path):
    with pytest.raises(ValueError, match="at least 1.0"):
        export_executorch(tiny_model(), tmp_path / "model.pte", size_budget=budget)
    assert not list(tmp_path.iterdir())


def test_quantize_hook_sees_every_segment_with_its_input(exported):
    _, _, _, _, calls = exported
    assert len(calls) == 6  # skip and run segment of 3 stages
    stage_inputs = [(1, 1, 16, 16), (1, 16, 16, 16), (1, 32, 8, 8)]  # stage 0 takes the image (stem inside)
    assert [shape for _, shape in calls] == [shape for shape in stage_inputs for _ in range(2)]  # run, skip


@pytest.mark.parametrize("branch", ["run", "skip"])
def test_share_skip_norms_is_exact_and_keeps_extreme_ratios(branch):
    model = tiny_model(1)
    block = model.layer1[0]
    with torch.no_grad():  # the norm the conv folds with has scale ~0: the ratio would lose precision
        (block.bn1_skip if branch == "run" else block.bn1).weight[0] = 1e-9
    shared, rewritten, kept = share_skip_norms(model, branch)
    assert (rewritten, kept) == (11, 1)
    x = torch.randn(2, 1, 16, 16)
    for gates in all_gates(3):
        with torch.no_grad():
            torch.testing.assert_close(shared(x, gates), model(x, gates), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="branch must be one of"):
        share_skip_norms(model, "both")


class _Drifting(nn.Module):
    """Eager output differs from what export traces: the program cannot match eager PyTorch."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        y = self.inner(x)
        return y if torch.compiler.is_exporting() else y * 1.5


def test_parity_failure_raises_and_writes_nothing(tmp_path):
    model = tiny_model()
    target = tmp_path / "model.pte"
    with pytest.raises(ExportError, match=r"parity: sub-network .* differs from eager PyTorch"):
        export_executorch(model, target, quantize=lambda s: s.map(lambda m, x: _Drifting(m)))
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_covering_gates_cover_every_branch_for_deep_models():
    assert covering_gates(3) == all_gates(3)
    deep = covering_gates(8)
    assert len(deep) == 18 and Gates((False,) * 8) in deep and Gates((True,) * 8) in deep
    for i in range(8):  # each stage is skipped in one setting and run in another
        assert any(g[i] for g in deep) and any(not g[i] for g in deep)


def test_activations_cross_stage_boundaries_channels_last():
    """Between the stages of a conv network the activations cross channels-last, XNNPACK's layout (no transpose
    each way at every delegate boundary), with the same values; the image and the logits keep their layout."""
    segments, _, _ = _segments(tiny_model(), None, share_contexts=False)
    nhwc = _nhwc_boundaries(segments.branches, segments.examples)
    assert nhwc == [False, True, True, False]
    stages, examples = _channels_last_boundaries(segments.branches, segments.examples, nhwc)
    assert examples[0] is segments.examples[0]
    assert all(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() for x in examples[1:])
    last = len(stages) - 1
    with torch.no_grad():
        for i, branches in enumerate(stages):
            for key, module in branches.items():
                y = module(examples[i])
                assert torch.allclose(y, segments.branches[i][key](segments.examples[i]), atol=1e-5)
                assert (y.dim() == 4 and y.is_contiguous(memory_format=torch.channels_last)) == (i < last)


def _forward_plan(path):
    """The serialized execution plan of a .pte's forward method."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    return deserialize_pte_binary(Path(path).read_bytes()).program.execution_plan[0]


def program_dim_orders(path) -> list[tuple[int, ...]]:
    """The dim order of every 4D tensor of a .pte's forward plan except its inputs: the activations between
    delegates."""
    plan = _forward_plan(path)
    return [
        tuple(value.val.dim_order)
        for index, value in enumerate(plan.values)
        if index not in plan.inputs and len(getattr(value.val, "sizes", ())) == 4
    ]


def test_neighbouring_stages_share_a_delegate_while_the_cond_tree_stays_two_gates_deep():
    """By hand: pairs of stages; with entry contexts a group after stage 0 also follows the gate before it, so only
    stages 0 and 1 can pair."""
    from types import SimpleNamespace

    def groups(num_stages: int, contextual: bool, merge: bool = True) -> list[tuple[int, ...]]:
        return stage_groups(SimpleNamespace(num_stages=num_stages, contextual=contextual), merge)

    assert groups(5, False) == [(0, 1), (2, 3), (4,)]
    assert groups(4, False) == [(0, 1), (2, 3)]
    assert groups(5, True) == [(0, 1), (2,), (3,), (4,)]
    assert groups(1, True) == [(0,)]
    assert groups(5, False, merge=False) == [(0,), (1,), (2,), (3,), (4,)]
    assert stage_groups(model_segments(contextual_tiny_model())) == [(0, 1), (2,)]


def _delegate_count(path) -> int:
    return len(_forward_plan(path).delegates)


def test_merged_stages_run_every_gate_setting_like_eager_pytorch(tmp_path):
    """Stages 0 and 1 in one delegate per (gate 0, gate 1), stage 2 per (gate 1, gate 2): 8 delegates, not 10."""
    from executorch.runtime import Runtime

    model = contextual_tiny_model()
    split = export_executorch(model, tmp_path / "split.pte", merge_stages=False)
    merged = export_executorch(model, tmp_path / "merged.pte")
    assert split["stage_groups"] == [[0], [1], [2]] and merged["stage_groups"] == [[0, 1], [2]]
    assert [_delegate_count(tmp_path / f) for f in ("split.pte", "merged.pte")] == [2 + 4 + 4, 4 + 4]
    assert set(program_dim_orders(tmp_path / "merged.pte")) == {(0, 2, 3, 1)}
    forward = Runtime.get().load_program(tmp_path / "merged.pte").load_method("forward")
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    for gates in all_gates(3):
        with torch.no_grad():
            got, want = forward.execute([x, gates_tensor(gates, 3)])[0], model(x, gates)
        torch.testing.assert_close(got, want, atol=PARITY_ATOL, rtol=0)
    assert merged["size_bytes"] == pytest.approx(split["size_bytes"], rel=0.05)  # the variants share their weights


# Calls a program under bench_runtime_calls.py's interposer, in a child process: the interposer has to be preloaded
# before the ExecuTorch backend library is loaded.
INTERPOSED_CALLS = """
import gc, json, sys
import torch
from bench_runtime_calls import CallCosts
from executorch.runtime import Runtime
from ondevice.models import Gates, all_gates, gates_tensor

library, program, gates, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
costs = CallCosts(library)
method = Runtime.get().load_program(program).load_method("forward")
x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(5))
arguments = [x, gates_tensor(Gates.parse(gates, len(gates)), len(gates))]
method.execute(arguments)
out = {}
for skip in (False, True):
    costs.skip_unchanged_reshape(skip)
    costs.reset()
    logits = [method.execute(arguments)[0] for _ in range(calls)]
    out[str(skip)] = {
        "counts": {k: v[1] for k, v in costs.read().items()},
        "invoke_us": costs.read()["invoke"][0],
        "logits": [t.tolist() for t in logits],
    }
# Every delegate reshaped once (every gate setting run), then a fresh load after the first is freed, skipping on: its
# runtimes may take the freed ones' addresses, and each must still be reshaped before its first call.
every = [[x, gates_tensor(g, len(gates))] for g in all_gates(len(gates))]
for setting in every:
    method.execute(setting)
shaped = costs.shaped_runtimes()
del method
gc.collect()
out["shaped_runtimes"] = [shaped, costs.shaped_runtimes()]
costs.reset()
method = Runtime.get().load_program(program).load_method("forward")
out["reloaded"] = {"logits": [method.execute(setting)[0].tolist() for setting in every]}
out["reloaded"]["counts"] = {k: v[1] for k, v in costs.read().items()}
print(json.dumps(out))
"""


def test_the_benchmarks_interposer_sees_every_xnnpack_runtime_call_and_a_skipped_reshape_keeps_the_logits(
    exported, tmp_path
):
    """benchmarks/xnn_call_costs.c, the instrument of bench_runtime_calls.py: preloaded, it must see every XNNPACK
    runtime call of the ExecuTorch runtime, and skipping an unchanged reshape must leave the logits as eager PyTorch
    computes them, also in a fresh load whose runtimes may reuse freed ones' addresses."""
    model, out, entry, _, _ = exported
    program = out / "model.pte"
    assert entry["stage_groups"] == [[0, 1], [2]]  # two delegates run per call
    library = tmp_path / "xnn_call_costs.so"
    source = ROOT / "benchmarks" / "xnn_call_costs.c"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"], check=True)
    env = {
        **os.environ,
        "LD_PRELOAD": str(library),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")]),
    }
    calls, gates = 3, "TFT"
    done = subprocess.run(
        [sys.executable, "-c", INTERPOSED_CALLS, str(library), str(program), gates, str(calls)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Each call reshapes, sets up and invokes both delegates it runs; skipping turns every reshape into a skip.
    n = 2 * calls
    assert result["False"]["counts"] == {"reshape": n, "setup": n, "invoke": n, "skipped": 0, "refused": 0}
    assert result["True"]["counts"] == {"reshape": 0, "setup": n, "invoke": n, "skipped": n, "refused": 0}
    assert result["False"]["invoke_us"] > 0
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(5))  # the child's image
    with torch.no_grad():
        want = model(x, Gates.parse(gates, 3))
        for run in ("False", "True"):
            for logits in result[run]["logits"]:
                torch.testing.assert_close(torch.tensor(logits), want, atol=PARITY_ATOL, rtol=0)
        for setting, logits in zip(all_gates(3), result["reloaded"]["logits"], strict=True):
            torch.testing.assert_close(torch.tensor(logits), model(x, setting), atol=PARITY_ATOL, rtol=0)
    # All six delegates (four for stages 0+1, two for stage 2) held a reshape; freeing the method forgot every one.
    assert result["shaped_runtimes"] == [6, 0]
    assert result["reloaded"]["counts"]["skipped"] > 0  # the reload's second use of a delegate skips its reshape
    assert result["reloaded"]["counts"]["refused"] == 0  # and no runtime was left unshaped


def test_the_benchmarks_bound_calls_give_each_sub_network_its_logits(exported, monkeypatch):
    """bench_scale.bound_calls, the ExecuTorch calls every scale benchmark times: inputs bound once, each gated call
    must run its own sub-network (it writes its gates into the bound input), interleaved in any order, and a static
    program's call its one sub-network, all as eager PyTorch computes them."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from bench_scale import bound_calls
    from executorch.runtime import Runtime

    model, out, _, _, _ = exported
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(6))
    settings = list(all_gates(3))
    gated = Runtime.get().load_program(str(out / "model.pte")).load_method("forward")
    calls = bound_calls(gated, x, [gates_tensor(g, 3) for g in settings])
    static = bound_calls(Runtime.get().load_program(str(out / "static_FFF.pte")).load_method("forward"), x)
    assert len(calls) == len(settings) and len(static) == 1
    with torch.no_grad():
        for i in [*range(len(settings)), *reversed(range(len(settings)))]:
            torch.testing.assert_close(calls[i]()[0], model(x, settings[i]), atol=PARITY_ATOL, rtol=0)
        torch.testing.assert_close(static[0]()[0], model(x, Gates.parse("FFF", 3)), atol=PARITY_ATOL, rtol=0)
