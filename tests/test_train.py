import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ondevice import train as train_module
from ondevice.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from ondevice.cli import main
from ondevice.data import load_data
from ondevice.models import build_model
from ondevice.train import TrainConfig, adn_distillation_loss, train

TINY = {"model": "resnet20_adn", "data": "digits", "limit": 64, "batch_size": 16, "epochs": 2}


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", limit=64)


def _grad_names(model):
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def _one_step(method, digits, **kw):
    cfg = TrainConfig(**{**TINY, "method": method, **kw})
    torch.manual_seed(0)
    model = build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=8)
    x, y = digits.train.tensors[0][:16], digits.train.tensors[1][:16]
    losses = train_module.METHODS[method].step(cfg, model.num_stages)(model, x, y, torch.Generator().manual_seed(0))
    return model, losses


def test_distillation_loss_matches_definition_and_detaches_teacher():
    z_super = torch.randn(4, 10, requires_grad=True)
    z_base = torch.randn(4, 10, requires_grad=True)
    t = 2.0
    loss = adn_distillation_loss(z_base, z_super, t)
    p = F.softmax(z_super / t, 1)
    expected = t**2 * (p * (p.log() - F.log_softmax(z_base / t, 1))).sum(1).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert z_super.grad is None and z_base.grad is not None
    assert adn_distillation_loss(z_super, z_super, t).item() == pytest.approx(0.0, abs=1e-6)


def test_adn_step_trains_super_net_and_base_net_norms(digits):
    model, losses = _one_step("adn", digits, sandwich=0)  # the paper's two passes
    assert set(losses) == {"loss_super", "loss_base"} and all(v >= 0 for v in losses.values())
    names = _grad_names(model)
    assert "layer1.2.conv1.weight" in names  # skippable block: super-net pass
    assert "layer1.0.bn1_skip.weight" in names  # skip norm: base-net pass
    assert "layer1.0.bn1.weight" in names


class _GateRecorder(nn.Module):
    """A fake network that records the gate settings each pass asks for, then runs the real model."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x, gates, **kwargs):
        self.calls.append(str(gates))
        return self.model(x, gates, **kwargs)


def test_sandwich_adds_mixed_sub_networks_distilled_from_the_super_net(digits):
    torch.manual_seed(0)
    recorder = _GateRecorder(build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=8))
    x, y = digits.train.tensors[0][:16], digits.train.tensors[1][:16]
    cfg = TrainConfig(**{**TINY, "sandwich": 3})
    losses = train_module.METHODS["adn"].step(cfg, 3)(recorder, x, y, torch.Generator().manual_seed(0))
    assert recorder.calls[:2] == ["FFF", "TTT"] and len(recorder.calls) == 5
    assert not set(recorder.calls[2:]) & {"FFF", "TTT"}
    assert set(losses) == {"loss_super", "loss_base", "loss_mixed"} and losses["loss_mixed"] > 0


def test_feature_distillation_adds_the_stage_output_mse(digits):
    x, y = digits.train.tensors[0][:16], digits.train.tensors[1][:16]
    base = {}
    for weight in (0.0, 2.0):
        torch.manual_seed(0)
        model = build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=8)
        cfg = TrainConfig(**{**TINY, "sandwich": 0, "feature_kd": weight})
        base[weight] = train_module.METHODS["adn"].step(cfg, 3)(model, x, y, torch.Generator())["loss_base"]
    torch.manual_seed(0)
    model = build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=8)
    with torch.no_grad():  # the oracle: stage outputs of both passes, by hand
        teacher, student = model.forward_stem(x), model.forward_stem(x)
        mse = []
        for i in range(3):
            teacher = model.forward_stage(i, teacher, False)
            student = model.forward_stage(i, student, True)
            mse.append(F.mse_loss(student, teacher))
    assert base[2.0] - base[0.0] == pytest.approx(2.0 * torch.stack(mse).mean().item(), rel=1e-4)


def test_static_step_trains_only_its_gate_setting(digits):
    model, losses = _one_step("static", digits, gates="TTT")
    names = _grad_names(model)
    assert "layer1.0.bn1_skip.weight" in names
    assert "layer1.2.conv1.weight" not in names and "layer1.0.bn1.weight" not in names
    model, _ = _one_step("static", digits)  # default: super-net
    assert "layer1.0.bn1_skip.weight" not in _grad_names(model)


def test_random_skip_step_trains_a_sampled_sub_network(digits):
    model, losses = _one_step("random-skip", digits, skip_prob=1.0)
    names = _grad_names(model)
    assert "layer1.0.bn1_skip.weight" in names and "layer1.2.conv1.weight" not in names


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown training method 'kd'"):
        TrainConfig(method="kd")
    with pytest.raises(ValueError, match="--gates is for --method static"):
        TrainConfig(gates="TTT")
    with pytest.raises(ValueError, match="alpha must be in"):
        TrainConfig(alpha=1.5)


def test_train_writes_self_describing_checkpoint(tmp_path, digits):
    path = train(TrainConfig(**TINY), tmp_path, data=digits, progress=False)
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert state["data_spec"]["image_size"] == 8 and state["model_kwargs"]["in_chans"] == 1
    model, _ = load_model(path)
    assert model(torch.zeros(1, 1, 8, 8), "TFT").shape == (1, 10)


def test_killed_run_resumes_exactly(tmp_path, digits, monkeypatch):
    torch.set_num_threads(1)
    straight = train(TrainConfig(**TINY), tmp_path / "straight", data=digits, progress=False)

    real_save = train_module.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**TINY), tmp_path / "killed", data=digits, progress=False)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["epoch"] == 1
    resumed = train(TrainConfig(), tmp_path / "killed", resume=True, data=digits, progress=False)

    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert b["epoch"] == 2
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=0, msg=key)


def test_truncated_checkpoint_gets_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"model": {"w": torch.randn(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        train(TrainConfig(**TINY), tmp_path, resume=True, progress=False)
    assert not list(tmp_path.glob("*.tmp")), "atomic writes leave no temp files"


def test_foreign_and_missing_checkpoints(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an ondevice checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint.pt"):
        train(TrainConfig(**TINY), tmp_path / "nothing", resume=True)


def test_cli_reports_missing_data_dir(tmp_path, capsys):
    code = main(["train", "--data", "imagefolder", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert code == 2
    assert "missing" in capsys.readouterr().err


def test_cli_train_then_eval(tmp_path, capsys):
    args = ["--data", "digits", "--limit", "64", "--batch-size", "16", "--epochs", "1"]
    assert main(["train", *args, "--out", str(tmp_path)]) == 0
    assert main(["eval", str(tmp_path / "checkpoint.pt")]) == 0
    assert (tmp_path / "eval.json").is_file() and (tmp_path / "pareto.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "base-net" in out
    assert "data digits: 64 train / 16 test, 1x8x8, 10 classes" in out  # what was loaded is said before training


def _two_synchronized_ranks_in_one_process(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The oracle of a 2-rank DDP run, without DDP: each step runs the method's step on each rank's batch (its
    sampler shard, its gate generator), averages the two gradients, as DDP's all-reduce does, and steps once.
    Norm buffers follow rank 0's forwards (DDP broadcasts rank 0's buffers before every forward)."""
    data = load_data(cfg.data, cfg.data_root, image_size=cfg.image_size, seed=cfg.seed, limit=cfg.limit)
    torch.manual_seed(cfg.seed)  # rank 0's initial weights, which DDP broadcasts to rank 1
    model = train_module._build(cfg, data.spec)
    params = [p for p in model.parameters()]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    samplers = [
        torch.utils.data.DistributedSampler(
            data.train, num_replicas=2, rank=r, shuffle=True, seed=cfg.seed, drop_last=True
        )
        for r in range(2)
    ]
    loaders = [
        torch.utils.data.DataLoader(data.train, batch_size=cfg.batch_size, sampler=s, drop_last=True) for s in samplers
    ]
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * len(loaders[0]))
    step_fn = train_module.step_function(cfg, model.num_stages)
    model.train()
    for epoch in range(cfg.epochs):
        for s in samplers:
            s.set_epoch(epoch)
        gate_rngs = [torch.Generator().manual_seed(cfg.seed * 100_003 + epoch * 101 + r) for r in range(2)]
        for batches in zip(*loaders):
            grads = []
            buffers = {k: v.clone() for k, v in model.named_buffers()}
            for rank, (x, y) in enumerate(batches):
                optimizer.zero_grad(set_to_none=False)
                step_fn(model, x, y, gate_rngs[rank])
                grads.append([p.grad.clone() for p in params])
                if rank == 0:
                    after_rank0 = {k: v.clone() for k, v in model.named_buffers()}
                    for k, v in model.named_buffers():
                        v.copy_(buffers[k])
            for p, g0, g1 in zip(params, *grads):
                p.grad.copy_(g0 / 2 + g1 / 2)
            for k, v in model.named_buffers():
                v.copy_(after_rank0[k])
            optimizer.step()
            scheduler.step()
    return dict(model.named_parameters())


def _run_python(*args: str) -> None:
    """``python ARGS`` from the repository root with one thread per process (as each DDP rank gets here)."""
    done = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_ddp_two_processes_on_cpu_train_like_two_synchronized_ranks(tmp_path):
    """torchrun with two gloo workers: rank 0's weights equal the oracle above up to rounding (a run whose ranks
    did not synchronize differs from it by 0.16), and rank 0 writes the checkpoint."""
    args = ["--data", "digits", "--limit", "64", "--batch-size", "8", "--epochs", "1"]
    _run_python(
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ondevice",
        "train",
        *args,
        "--out",
        str(tmp_path),
    )
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    # 64 images / (2 ranks x 8) = 4 steps per epoch
    assert state["scheduler"]["last_epoch"] == 4
    # The oracle runs in a fresh process with the ranks' thread count. Rounding still differs (gloo's all-reduce, the
    # kernels' split of the work) and 4 training steps amplify it to ~4e-3; ranks that never synchronize differ by 0.16.
    oracle = tmp_path / "oracle.pt"
    code = (
        "import sys, torch; sys.path.insert(0, sys.argv[1]); from test_train import TrainConfig, "
        "_two_synchronized_ranks_in_one_process as run; from ondevice.checkpoint import load_checkpoint; "
        "cfg = TrainConfig.from_dict(load_checkpoint(sys.argv[2])['train_config']); "
        "torch.save({k: v.detach() for k, v in run(cfg).items()}, sys.argv[3])"
    )
    _run_python("-c", code, str(Path(__file__).parent), str(tmp_path / "checkpoint.pt"), str(oracle))
    expected = torch.load(oracle, weights_only=True)
    worst = max(float((state["model"][k] - v).abs().max()) for k, v in expected.items())
    assert worst < 0.02, f"rank 0 differs from two synchronized ranks by {worst}"


# --- bad inputs: a clear error, nothing lost ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"momentum": 1.0}, "momentum"),
        ({"method": "static", "gates": ""}, "names no gate setting"),
    ],
)
def test_config_values_that_cannot_train_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**TINY, **change})


def test_fewer_images_than_a_batch_is_an_error_not_an_untrained_checkpoint(tmp_path, digits):
    few = load_data("digits", limit=10)
    with pytest.raises(ValueError, match="make no full batch of 16"):
        train(TrainConfig(**TINY), tmp_path, data=few, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_an_existing_run_is_kept_and_resume_keeps_its_configuration(tmp_path, digits):
    path = train(TrainConfig(**{**TINY, "epochs": 1, "norm_images": 0}), tmp_path, data=digits, progress=False)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run .* --resume"):
        train(TrainConfig(**TINY), tmp_path, data=digits, progress=False)
    with pytest.raises(ValueError, match=r"these options differ: epochs=5 \(run: 1\)"):
        train(TrainConfig(**{**TINY, "epochs": 5}), tmp_path, resume=True, data=digits, progress=False)
    assert path.read_bytes() == before
    assert main(["train", "--data", "digits", "--limit", "64", "--out", str(tmp_path)]) == 2
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"PK\x03\x04" + bytes(50), "cannot be read"),
        (b"r", "cannot be read"),  # found by the fuzz test: the legacy unpickler fails with struct.error
        (None, "refused for safety"),
    ],
)
def test_unreadable_checkpoints_get_a_clear_error(tmp_path, content, message):
    path = tmp_path / "c.pt"
    if content is None:
        torch.save({"config": Path("/etc")}, path)  # a Python object: weights_only refuses it
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_weights_of_another_model_or_class_count_get_a_clear_error(tmp_path):
    model = build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=16)
    state = {"model_name": "resnet20_adn", "model_kwargs": {"num_classes": 10, "in_chans": 1, "image_size": 16}}
    for name, kwargs, weights in [
        ("wrong class count", {"num_classes": 3, "in_chans": 1, "image_size": 16}, model.state_dict()),
        ("missing keys", state["model_kwargs"], {"conv1.weight": model.state_dict()["conv1.weight"]}),
    ]:
        path = save_checkpoint(tmp_path / f"{name}.pt", {**state, "model_kwargs": kwargs, "model": weights})
        with pytest.raises(CheckpointError, match="the weights do not fit model 'resnet20_adn'"):
            load_model(path)
