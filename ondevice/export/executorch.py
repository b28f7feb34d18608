"""ExecuTorch export: one ``.pte`` whose ``forward(image, gates)`` switches sub-networks at run time.

The program is a chain of S ``torch.cond`` calls, one per stage. Each cond picks between two
branches that were lowered to XNNPACK *before* the cond was built (the XNNPACK partitioner does not
look inside cond branches, so a plain cond would run them on the slow portable kernels):

    skip branch i: stage i's mandatory blocks with their ``*_skip`` norms   (gates[i] != 0)
    run branch i:  stage i's mandatory blocks with their main norms, then its skippable blocks

A model whose entry norms follow the previous stage's gate (``norm_stats.enable_entry_contexts``) has
two of each for stages 1..S-1, picked by a second cond on ``gates[i-1]``.
The stem is lowered into both branches of stage 0 and the head into both branches of stage S-1,
so a call runs S delegates, not S + 2. Two neighbouring stages share their delegates where the cond
tree that picks them stays two gates deep (``stage_groups``): one delegate per setting of their gates,
a two-level cond tree, one delegate call and cond fewer per call. The variants share their weights,
so the program hardly grows; a large boundary gains most (resnet50_adn at 224x224: the 3.2 MB map
after its first stage cost its base-net ~2% between two delegates).

XNNPACK stores constants by content hash, so weights that are byte-identical in two branches are
stored once. But XNNPACK folds each BatchNorm into its conv,
and a conv that meets two norms (a mandatory conv's main and ``*_skip`` norm, an entry conv's two
contexts) is stored twice unless one norm is computed as the other plus a per-channel affine
(``norm_sharing``). ``share_weights="auto"`` (default) does that for the norms that save the most
bytes per activation element the affine touches, each pair's affine in whichever branch keeps the
worst sub-network's affine work per FLOP lowest, until the program is within 1.10x the static
super-net program (estimated from the weights and ~5 KB per extra delegate; a program whose extra
copies stay under 1 MB keeps them); ``"none"`` stores
every such conv twice, ``"skip"`` shares all of them (affines in the skip branches), ``"run"`` puts
the affines in the run branches. docs/export.md has the measured trade-off.

A feature map that crosses from one stage's delegate to the next crosses channels-last (NHWC, as
XNNPACK computes), so no boundary transposes it twice (see ``_channels_last_boundaries``).

``gates`` is an int32 tensor of shape [S], 1 = skip (the Gates convention), as
:func:`ondevice.models.gates_tensor` builds it: int32 is the one dtype both apps' ExecuTorch tensors
take without conversion.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..atomic import atomic_path
from ..models import AdnModel, Gates, GatesLike, Segments, covering_gates, gates_tensor, model_segments
from ..models.modes import eval_mode
from ..native_log import start_executorch_threadpool
from .common import PARITY_ATOL, ExportError, FixedGates, parity_inputs
from .norm_sharing import (
    DEFAULT_SIZE_BUDGET,
    SHARE_BRANCHES,
    SMALL_PROGRAM_EXTRA_BYTES,
    SharingPlan,
    check_size_budget,
    plan_norm_sharing,
    share_entry_contexts,
    share_skip_norms,
)

__all__ = [
    "XNNPACK_DECOMPOSITIONS",
    "QuantizeSegments",
    "auto_sharing_plan",
    "export_executorch",
    "export_static_executorch",
    "program_ops",
    "stage_groups",
]

# Operators that must never run outside a delegate: a convolution or matmul left to ExecuTorch's portable
# kernels runs ~300x slower than on XNNPACK. Matched against ExecuTorch operator names such as "aten::convolution".
HEAVY_OPS = ("conv", "mm", "linear", "matmul", "batch_norm", "layer_norm", "scaled_dot_product", "pool")
# What each XNNPACK delegate adds to a program beyond its weights (its graph): ~4 KB for resnet20_adn's segments,
# ~5 KB for mobilenet_v2_adn's at 224x224.
_DELEGATE_BYTES = 5 * 1024

# Quantization of a program's segments (the recipes of ``ondevice.quant``): float segments -> quantized segments.
QuantizeSegments = Callable[[Segments], Segments]


# ---------------------------------------------------------------------------------------------------
# Lowering.


def _layer_norm_for_xnnpack(
    x: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
    cudnn_enable: bool = True,
) -> Tensor:
    """``aten.layer_norm`` over the last dim, written with ops XNNPACK takes.

    XNNPACK (ExecuTorch 1.5) has no layer norm and averages only the last two dims of a 4D tensor, so
    ``[..., C]`` is viewed as ``[1, M, C, 1]`` and normalised with mean/rsqrt. Only the ExecuTorch
    lowering uses this: Core ML and LiteRT keep their own fused layer norm.
    """
    if len(normalized_shape) != 1:
        raise ExportError(f"layer_norm over {list(normalized_shape)}: only the last dim is lowered to XNNPACK")
    x4 = x.reshape(1, -1, x.shape[-1], 1)
    centred = x4 - x4.mean(dim=(2, 3), keepdim=True)
    variance = (centred * centred).mean(dim=(2, 3), keepdim=True)
    y = (centred * torch.rsqrt(variance + eps)).reshape(x.shape)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def _adaptive_avg_pool_for_xnnpack(x: Tensor, output_size: Sequence[int]) -> Tensor:
    """``aten.adaptive_avg_pool2d`` to 1x1 as a mean over H and W.

    The default decomposition of a channels-last input (the activations between stages, see
    :class:`_ChannelsLast`) restores its strides with ``as_strided``, which XNNPACK does not take.
    """
    if list(output_size) == [1, 1]:
        return x.mean(dim=(-2, -1), keepdim=True)
    return torch.ops.aten._adaptive_avg_pool2d.default(x, output_size)


# Decompositions applied before lowering, for ops XNNPACK lacks but can compute from the ones it has.
XNNPACK_DECOMPOSITIONS: dict[Any, Callable[..., Tensor]] = {
    torch.ops.aten.layer_norm.default: _layer_norm_for_xnnpack,
    torch.ops.aten.adaptive_avg_pool2d.default: _adaptive_avg_pool_for_xnnpack,
}


def _lower_to_edge(programs: dict[str, torch.export.ExportedProgram]) -> Any:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    programs = {name: program.run_decompositions(XNNPACK_DECOMPOSITIONS) for name, program in programs.items()}
    return to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])


def _to_executorch(edge: Any) -> Any:
    """The ExecuTorch program of an edge program, its inputs left out of the memory plan: the runtime then reads
    the caller's tensors where they are instead of copying them into its arena first (a 3x224x224 image: 1.3%
    of a mobilenet_v2_adn call, docs/export.md)."""
    from executorch.exir import ExecutorchBackendConfig
    from executorch.exir.passes import MemoryPlanningPass

    return edge.to_executorch(ExecutorchBackendConfig(memory_planning_pass=MemoryPlanningPass(alloc_graph_input=False)))


class _Delegate(nn.Module):
    """A segment's XNNPACK delegate called with the activation and the constants it reads as inputs.

    The XNNPACK partitioner bakes the weights of convs and linears into the delegate, but a parameter
    that meets an elementwise op (a LayerNorm's scale, ViT's position embedding) stays an input of the
    delegate; it is kept here as a buffer, so the gated program holds it as a constant and passes it in.
    """

    def __init__(self, lowered: nn.Module, slots: list[Tensor | None]) -> None:
        super().__init__()
        self.lowered = lowered
        self.activation_slot = slots.index(None)
        self.constants = [f"constant{i}" for i in range(len(slots) - 1)]
        for name, tensor in zip(self.constants, (t for t in slots if t is not None)):
            self.register_buffer(name, tensor.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        args = [getattr(self, name) for name in self.constants]
        args.insert(self.activation_slot, x)
        return self.lowered(*args)[0]


def _delegate_slots(program: torch.export.ExportedProgram, call: torch.fx.Node) -> list[Tensor | None]:
    """The delegate call's inputs after the lowered module: None for the user input, else the constant's value."""
    signature = program.graph_signature
    named = {
        **{i: program.state_dict[t] for i, t in signature.inputs_to_parameters.items()},
        **{i: program.state_dict.get(t, program.constants.get(t)) for i, t in signature.inputs_to_buffers.items()},
        **{i: program.constants[t] for i, t in signature.inputs_to_lifted_tensor_constants.items()},
    }
    return [None if arg.name in signature.user_inputs else named[arg.name] for arg in call.args[1:]]


def _lowered_delegates(segments: dict[str, tuple[nn.Module, Tensor]]) -> dict[str, _Delegate]:
    """Each segment lowered to one XNNPACK delegate, to call inside a cond branch.

    All segments go through one multi-method ``to_edge_transform_and_lower`` call (faster than one call each).
    """
    from executorch.exir.lowered_backend_module import get_lowered_submodules

    programs = {name: torch.export.export(m, (x,), strict=False) for name, (m, x) in segments.items()}
    edge = _lower_to_edge(programs)
    delegates = {}
    for name in segments:
        program = edge.exported_program(name)
        lowered = get_lowered_submodules(program.graph_module)
        calls = [n for n in program.graph.nodes if n.target is torch.ops.higher_order.executorch_call_delegate]
        slots = _delegate_slots(program, calls[0]) if len(calls) == 1 else []
        if len(lowered) != 1 or slots.count(None) != 1:
            raise ExportError(
                f"segment {name} lowered to {len(lowered)} XNNPACK delegates (expected one, taking the activation "
                f"and constants); not delegated: {sorted(_outside_delegates(program))} -- an op XNNPACK does not "
                "support splits the segment: write the model with ops it takes, or add a decomposition to "
                "XNNPACK_DECOMPOSITIONS"
            )
        delegates[name] = _Delegate(lowered[0][1], slots)
    return delegates


class _ChannelsLast(nn.Module):
    """A segment whose 4D output is channels-last (NHWC in memory), the layout XNNPACK computes in: a delegate
    boundary then passes the activation on as it is, with no NHWC -> NCHW -> NHWC transposes.

    ``convert_input``: the segment takes an NCHW map (the image) and converts it inside the delegate, where XNNPACK
    transposes it for the first conv anyway. An int8 delegate with an NCHW input and an NHWC output is rejected at
    run time (ExecuTorch 1.5: "Attempted to resize a static tensor"); one that is NHWC on both sides runs. A float
    delegate runs either way, and is 0.2-0.3% faster letting XNNPACK transpose the image itself (mobilenet_v2_adn
    at 224x224, paired).
    """

    def __init__(self, segment: nn.Module, convert_input: bool = False) -> None:
        super().__init__()
        self.segment = segment
        self.convert_input = convert_input

    def forward(self, x: Tensor) -> Tensor:
        if self.convert_input:
            x = x.to(memory_format=torch.channels_last)
        y = self.segment(x)
        return y.to(memory_format=torch.channels_last) if y.dim() == 4 else y


def _feeds_conv(segment: nn.Module, x: Tensor) -> bool:
    """Whether ``segment`` passes its input ``x`` straight to a Conv2d: an NCHW map (not Swin's [B, H, W, C])."""
    fed = False

    def hook(_: nn.Module, args: tuple[Any, ...]) -> None:
        nonlocal fed
        fed = fed or args[0] is x

    handles = [m.register_forward_pre_hook(hook) for m in segment.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            segment(x)
    finally:
        for handle in handles:
            handle.remove()
    return fed


def _nhwc_boundaries(stages: list[dict[Any, nn.Module]], examples: list[Tensor]) -> list[bool]:
    """Per delegate (and one past the last), whether its input crosses channels-last: a 4D map after the first
    delegate that every variant feeds straight to a conv. Decided on float segments, whose convs are modules."""
    return [
        i > 0 and x.dim() == 4 and all(_feeds_conv(m, x) for m in variants.values())
        for i, (variants, x) in enumerate(zip(stages, examples))
    ] + [False]


def _channels_last_boundaries(
    stages: list[dict[Any, nn.Module]], examples: list[Tensor], nhwc: list[bool], quantized: bool = False
) -> tuple[list[dict[Any, nn.Module]], list[Tensor]]:
    """Each delegate's variants and example input (per stage or group of stages), with the activations that
    ``nhwc`` (``_nhwc_boundaries``) marks crossing channels-last between delegates.

    Inside a delegate XNNPACK computes convs in NHWC; an NCHW activation at a delegate's input or output costs a
    transpose each way, on every boundary. A marked map crosses channels-last instead: the producing variants end
    in a channels-last copy, the consuming ones are exported with a channels-last example. The image and the
    logits keep their layout (a ``quantized`` delegate that takes the image and passes on a marked map converts the
    image: ``_ChannelsLast``).
    """
    stages = [
        {
            key: _ChannelsLast(m, convert_input=quantized and not nhwc[i] and examples[i].dim() == 4)
            if nhwc[i + 1]
            else m
            for key, m in variants.items()
        }
        for i, variants in enumerate(stages)
    ]
    return stages, [x.contiguous(memory_format=torch.channels_last) if nhwc[i] else x for i, x in enumerate(examples)]


def _outside_delegates(program: torch.export.ExportedProgram) -> set[str]:
    """Names of the operators of an edge program that run outside its delegates."""
    skip = (torch.ops.higher_order.executorch_call_delegate, operator.getitem)
    return {n.target.__name__ for n in program.graph.nodes if n.op == "call_function" and n.target not in skip}


def stage_groups(segments: Segments, merge: bool = True) -> list[tuple[int, ...]]:
    """The stages each delegate runs: a stage joins the one before it where the group's cond tree stays two deep
    (its own gates, and the previous gate for a group with entry contexts after stage 0). ``merge=False``: one
    stage per delegate."""
    groups = [[0]]
    for index in range(1, segments.num_stages):
        group = groups[-1]
        depth = len(group) + 1 + (segments.contextual and group[0] > 0)
        if merge and depth <= 2:
            group.append(index)
        else:
            groups.append([index])
    return [tuple(group) for group in groups]


def _group_gates(group: tuple[int, ...], contextual: bool) -> tuple[int, ...]:
    """The gates that pick a group's delegate: its own, then the previous stage's where its entry norms follow it."""
    return (*group, group[0] - 1) if contextual and group[0] > 0 else group


def _group_variants(segments: Segments, group: tuple[int, ...]) -> dict[tuple[bool, ...], nn.Module]:
    """One module per setting of the group's gates (``_group_gates`` order): its stages' segments in a row."""
    gates = _group_gates(group, segments.contextual)
    variants = {}
    for setting in itertools.product((True, False), repeat=len(gates)):
        value = dict(zip(gates, setting))
        stages = [segments.branches[i][(value[i - 1] if segments.contextual and i else None, value[i])] for i in group]
        variants[setting] = stages[0] if len(stages) == 1 else nn.Sequential(*stages)
    return variants


class _Switch(nn.Module):
    """``(x, skipped, *rest) -> cond(skipped, on_skip, on_run)(x, *rest)``: one level of a group's cond tree, whose
    leaves are its delegates. The predicates come in computed: an op inside a nested cond branch gets memory that
    overlaps the activations of the program around it (ExecuTorch 1.5)."""

    def __init__(self, on_skip: nn.Module, on_run: nn.Module) -> None:
        super().__init__()
        self.on_skip = on_skip
        self.on_run = on_run

    def forward(self, x: Tensor, skipped: Tensor, *rest: Tensor) -> Tensor:
        return torch.cond(skipped, self.on_skip, self.on_run, (x, *rest))


def _variant_name(group: tuple[int, ...], setting: tuple[bool, ...]) -> str:
    """The lowering's method name of one variant: its stages and the setting of its gates, e.g. ``stages0to1_TF``."""
    stages = f"stages{group[0]}" + (f"to{group[-1]}" if len(group) > 1 else "")
    return f"{stages}_{''.join('T' if skipped else 'F' for skipped in setting)}"


def _cond_tree(leaves: dict[tuple[bool, ...], nn.Module], setting: tuple[bool, ...] = ()) -> nn.Module:
    """The leaf for every setting of the gates, picked one gate per level."""
    if setting in leaves:
        return leaves[setting]
    return _Switch(_cond_tree(leaves, (*setting, True)), _cond_tree(leaves, (*setting, False)))


class _Gated(nn.Module):
    """``forward(image, gates)``: per group of stages (usually one) a cond tree on its gates over its pre-lowered
    delegates."""

    def __init__(self, groups: list[tuple[tuple[int, ...], dict[tuple[bool, ...], nn.Module]]]) -> None:
        super().__init__()
        self.group_gates = [gates for gates, _ in groups]
        self.trees = nn.ModuleList(_cond_tree(leaves) for _, leaves in groups)

    def forward(self, image: Tensor, gates: Tensor) -> Tensor:
        skipped = gates != 0
        x = image
        for indices, tree in zip(self.group_gates, self.trees):
            x = tree(x, *(skipped[i] for i in indices))
        return x


def auto_sharing_plan(model: AdnModel, size_budget: float = DEFAULT_SIZE_BUDGET) -> SharingPlan:
    """The norms ``share_weights="auto"`` rewrites: the program's extra delegates (the static one has one) count
    against the budget too, and a program whose extra bytes stay under ``SMALL_PROGRAM_EXTRA_BYTES`` is left
    as it is (its sub-networks that skip pay no affine)."""
    delegates = sum(1 for _ in model_segments(model).items())
    fixed = (delegates - 1) * _DELEGATE_BYTES
    return plan_norm_sharing(model, size_budget, fixed_bytes=fixed, floor_bytes=SMALL_PROGRAM_EXTRA_BYTES + fixed)


def _segments(
    model: AdnModel, share_weights: str | None, share_contexts: bool, size_budget: float = DEFAULT_SIZE_BUDGET
) -> tuple[Segments, int, int]:
    """The model's segments, norms rewritten per ``share_weights`` (None, "auto", "skip" or "run") and
    ``share_contexts``; returns them, how many norm pairs share and how many entry norms share their contexts' conv.
    """
    # Per branch side, the pairs whose affine it carries (None: every pair); contexts None: every entry norm.
    pairs: dict[str, Collection[str] | None]
    if share_weights == "auto":
        plan = auto_sharing_plan(model, size_budget)
        contexts, pairs = plan.contexts, {"skip": plan.skip_pairs, "run": plan.run_pairs}
    else:
        contexts, pairs = None, {share_weights: None} if share_weights else {}
    contexts_shared = 0
    if share_contexts or share_weights == "auto":
        model, contexts_shared, _ = share_entry_contexts(model, contexts)
    branches = {"skip": model, "run": model}
    shared = 0
    for branch, names in pairs.items():
        if names is None or names:
            branches[branch], rewritten, _ = share_skip_norms(model, branch, names)
            shared += rewritten
    return model_segments(branches["run"], skip_model=branches["skip"]), shared, contexts_shared


SHARE_MODES = ("auto", *SHARE_BRANCHES)


def _share_mode(share_weights: bool | str | None) -> str | None:
    if share_weights is True:
        return "skip"
    if share_weights in (False, None, "none"):
        return None
    if share_weights not in SHARE_MODES:
        raise ValueError(f"share_weights must be True, False, 'none' or one of {SHARE_MODES}, got {share_weights!r}")
    return share_weights


def program_ops(program: Any) -> dict[str, Any]:
    """Operators outside delegates, and delegate backends, of an ``ExecutorchProgramManager`` or a .pte path.

    The operator table of a method covers every branch of its conds, so this holds for every gate setting.
    """
    if isinstance(program, str | Path):
        from executorch.exir._serialize._program import deserialize_pte_binary

        schema = deserialize_pte_binary(Path(program).read_bytes()).program
    else:
        schema = program.executorch_program
    ops: list[str] = []
    delegates: list[str] = []
    for plan in schema.execution_plan:
        ops += [f"{op.name}.{op.overload}" if op.overload else op.name for op in plan.operators]
        delegates += [d.id for d in plan.delegates]
    heavy = sorted({op for op in ops if any(h in op.split("::")[-1] for h in HEAVY_OPS)})
    return {"non_delegated_ops": sorted(set(ops)), "heavy_non_delegated": heavy, "delegates": sorted(set(delegates))}


def _check_delegated(program: Any, what: str) -> dict[str, Any]:
    info = program_ops(program)
    if info["heavy_non_delegated"]:
        raise ExportError(
            f"{what}: {info['heavy_non_delegated']} run outside XNNPACK on the portable kernels (~300x slower); "
            "the model uses an op the XNNPACK partitioner does not take. Non-delegated ops: "
            f"{info['non_delegated_ops']}"
        )
    return info


def _load_program(buffer: bytes) -> Any:
    """The program in ``buffer`` loaded by the ExecuTorch runtime (methods are loaded on demand)."""
    from executorch.runtime import Runtime

    start_executorch_threadpool()
    return Runtime.get().load_program(buffer)


def _check_parity(
    settings: Sequence[Gates],
    inputs: Sequence[Tensor],
    reference: Callable[[Tensor, Gates], Tensor],
    run: Callable[[Tensor, Gates], Tensor],
    atol: float,
    rtol: float = 0.0,
) -> float:
    """Max |program - eager| over ``settings`` x ``inputs``; raises ExportError past ``atol + rtol * max|eager|``
    (or on NaN). Quantized programs get an ``rtol``: XNNPACK and PyTorch's reference int8 kernels round apart."""
    worst = 0.0
    for gates in settings:
        for x in inputs:
            with torch.no_grad():
                expected = reference(x, gates)
            diff = float((run(x, gates) - expected).abs().max())
            limit = atol + rtol * float(expected.abs().max())
            if not diff <= limit:  # also catches NaN
                raise ExportError(
                    f"parity: sub-network {gates} differs from eager PyTorch by max |diff| {diff:.3g} > {limit:.3g} "
                    "on fixed inputs; the program is not written"
                )
            worst = max(worst, diff)
    return worst


def _write(path: str | Path, buffer: bytes) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer)
    return path


def export_executorch(
    model: AdnModel,
    path: str | Path,
    *,
    quantize: QuantizeSegments | None = None,
    share_weights: bool | str = "auto",
    share_contexts: bool | None = None,
    size_budget: float = DEFAULT_SIZE_BUDGET,
    merge_stages: bool = True,
    atol: float = PARITY_ATOL,
    rtol: float = 0.0,
) -> dict[str, Any]:
    """Write one ``.pte`` whose ``forward(image, gates)`` runs any sub-network; return its manifest entry.

    Args:
        model: the ADN model (put in eval mode here).
        path: the .pte to write (atomically, after the checks pass).
        quantize: float segments -> quantized segments (a recipe of ``ondevice.quant``); parity is then
            checked against the quantized segments run eagerly, as one chain per sub-network.
        share_weights: "auto" (default): the norms whose rewrite saves the most weight bytes per activation
            element its affine touches are computed as "other norm + per-channel affine" (each main/skip pair's
            affine in the branch that keeps the worst sub-network's affine work per FLOP lowest; after-skip
            contexts), until the program is within ``size_budget`` x the static super-net's (estimated:
            ``norm_sharing.plan_norm_sharing``); under 1 MB of copies, none (``auto_sharing_plan``).
            False / "none": every mandatory conv folded with each norm, stored twice. "skip" (or True): every
            one stored once, the skip branches pay a per-channel affine per rewritten norm; "run": stored once,
            the run branches pay it (slow at larger inputs, see docs/export.md).
        share_contexts: with a share_weights other than "auto", whether entry norms that follow the previous gate
            compute their after-skip statistics as the after-run ones plus a per-channel affine, so each entry
            conv is stored once, not once per context (False folds each context into its own copy). None
            (default): as share_weights says, so "skip" and "run" rewrite them and "none" rewrites nothing.
        size_budget: the "auto" plan's target, program size / static super-net program size (1.10; >= 1). A larger
            budget keeps more copies and rewrites fewer norms, so the sub-networks that skip pay fewer affines
            (docs/export.md, "Size against speed").
        merge_stages: neighbouring stages share delegates (and a cond tree) where it stays two gates deep
            (``stage_groups``). False: one delegate per stage.
        atol, rtol: parity tolerance, max |program - eager| <= atol + rtol * max |eager| over the covering
            gate settings (rtol for quantized programs).

    Raises:
        ExportError: a heavy op is not delegated to XNNPACK, or a sub-network fails parity.
    """
    from executorch.exir import to_edge

    check_size_budget(size_budget)
    with eval_mode(model):
        n = model.num_stages
        mode = _share_mode(share_weights)
        contexts = mode is not None if share_contexts is None else share_contexts
        segments, norms_shared, contexts_shared = _segments(model, mode, contexts, size_budget)
        groups = stage_groups(segments, merge_stages)
        examples = [segments.examples[group[0]] for group in groups]
        variants = [_group_variants(segments, group) for group in groups]
        nhwc = _nhwc_boundaries(variants, examples)
        if quantize is not None:
            segments = quantize(segments)
            variants = [_group_variants(segments, group) for group in groups]
        variants, examples = _channels_last_boundaries(variants, examples, nhwc, quantize is not None)
        delegates = _lowered_delegates(
            {
                _variant_name(group, setting): (m, examples[g])
                for g, group in enumerate(groups)
                for setting, m in variants[g].items()
            }
        )
        trees = [
            (_group_gates(group, segments.contextual), {s: delegates[_variant_name(group, s)] for s in variants[g]})
            for g, group in enumerate(groups)
        ]
        example = model.example_input()
        # strict=True: the composite of pre-lowered delegates fails non-strict ("convert all Tensors to FakeTensors").
        gated = torch.export.export(_Gated(trees), (example, gates_tensor(None, n)), strict=True)
        # The top level holds only delegates, gate selects and conds: no partitioner needed (2x faster).
        program = _to_executorch(to_edge(gated))
        ops = _check_delegated(program, "gated program")
        forward = _load_program(program.buffer).load_method("forward")
        worst = _check_parity(
            covering_gates(n),
            parity_inputs(model),
            model if quantize is None else segments,
            lambda x, g: forward.execute([x, gates_tensor(g, n)])[0],
            atol,
            rtol,
        )
        _write(path, program.buffer)
    return {
        "file": Path(path).name,
        "method": "forward",
        "inputs": ["image", "gates"],
        "gates_input": {"dtype": "int32", "shape": [n], "values": "1 = skip the stage's skippable sub-path, 0 = run"},
        "backend": "xnnpack",
        "size_bytes": len(program.buffer),
        "sha256": hashlib.sha256(program.buffer).hexdigest(),
        "layout": "torch.cond per stage over pre-lowered XNNPACK branches",
        "shared_weights": mode or "none",
        "norm_pairs_shared": norms_shared,
        "entry_norms_shared": contexts_shared,
        **({"size_budget": size_budget} if mode == "auto" else {}),
        "stage_groups": [list(group) for group in groups],
        "non_delegated_ops": ops["non_delegated_ops"],
        "parity_max_abs_diff": worst,
    }


def export_static_executorch(
    model: AdnModel,
    gates: GatesLike,
    path: str | Path,
    *,
    atol: float = PARITY_ATOL,
) -> dict[str, Any]:
    """One sub-network alone as ``forward(image)`` (no cond, one delegate): the baseline for gate overhead."""
    with eval_mode(model):
        g = Gates.coerce(gates, model.num_stages)
        example = model.example_input()
        module = FixedGates(model, g).eval()
        exported = torch.export.export(module, (example,), strict=True)
        program = _to_executorch(_lower_to_edge({"forward": exported}))
        ops = _check_delegated(program, f"static program {g}")
        forward = _load_program(program.buffer).load_method("forward")
        worst = _check_parity(
            [g], parity_inputs(model), lambda x, _: module(x), lambda x, _: forward.execute([x])[0], atol
        )
        _write(path, program.buffer)
    return {
        "file": Path(path).name,
        "method": "forward",
        "inputs": ["image"],
        "gates": str(g),
        "backend": "xnnpack",
        "size_bytes": len(program.buffer),
        "sha256": hashlib.sha256(program.buffer).hexdigest(),
        "non_delegated_ops": ops["non_delegated_ops"],
        "parity_max_abs_diff": worst,
    }
