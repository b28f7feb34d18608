"""Multi-exit models and IMTA's training techniques: GE, OFA-KD, ISC, the exits-* training methods."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.gradcheck import GradcheckError

from ondevice import train as train_module
from ondevice.checkpoint import load_model
from ondevice.data import load_data
from ondevice.exits.heads import MultiExitModel, MultiExitNet
from ondevice.exits.losses import (
    GradientRescale,
    adn_exits_distillation_loss,
    gradient_rescale,
    ofa_kd_loss,
    summed_exit_loss,
)
from ondevice.exits.msdnet import msdnet_cifar, msdnet_tiny
from ondevice.exits.training import build_exit_model
from ondevice.models import all_gates, build_model
from ondevice.models.swin_adn import AdnSwinTransformer
from ondevice.train import TrainConfig, train

TINY = {"model": "resnet20_adn", "data": "digits", "limit": 64, "batch_size": 16, "epochs": 1}


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", limit=64)


# --- gradient rescaling (GE) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.0, 0.25, 1.0 / 3.0, 2.0])
def test_gradient_rescale_is_identity_forward_and_scales_backward(scale):
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = gradient_rescale(x, scale)
    assert torch.equal(y, x)
    upstream = torch.randn(3, 4, dtype=torch.float64)
    (grad,) = torch.autograd.grad(y, x, upstream)
    assert torch.equal(grad, upstream * scale)


def test_gradient_rescale_jacobian_is_scaled_identity_while_finite_differences_see_identity():
    """Autograd's Jacobian is scale * I; the numerical Jacobian of the forward pass is I (the forward is identity)."""
    x = torch.randn(5, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: GradientRescale.apply(t, 0.5), x)
    torch.testing.assert_close(jac, 0.5 * torch.eye(5, dtype=torch.float64), rtol=0, atol=0)
    assert torch.autograd.gradcheck(lambda t: GradientRescale.apply(t, 1.0), (x.clone().requires_grad_(),))
    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        torch.autograd.gradcheck(lambda t: GradientRescale.apply(t, 0.5), (x.clone().requires_grad_(),))


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "2"])
def test_gradient_rescale_rejects_bad_scales(bad):
    with pytest.raises(ValueError, match="gradient scale"):
        gradient_rescale(torch.zeros(1), bad)


class _IdentityTrunk(MultiExitNet):
    """K identity segments with one linear exit each: GE's effect on the trunk gradient is exact and known."""

    def __init__(self, ge: bool, k: int = 3, dim: int = 4) -> None:
        super().__init__()
        self.num_exits, self.num_stages, self.num_classes = k, 0, 5
        self.feature_dims, self.gradient_equilibrium, self.isc = [dim] * k, ge, None
        self.exits = nn.ModuleList(nn.Linear(dim, 5) for _ in range(k))

    def segment(self, k, x, skip):
        return x

    def exit_head(self, k, x, skip, *, with_features=True):
        return x, self.exits[k](x)


def test_ge_averages_the_exits_gradients_in_the_trunk_and_leaves_the_heads_alone():
    torch.manual_seed(0)
    plain, ge = _IdentityTrunk(False), _IdentityTrunk(True)
    ge.load_state_dict(plain.state_dict())
    x = torch.randn(6, 4)
    y = torch.randint(0, 5, (6,))
    grads = {}
    for name, model in (("plain", plain), ("ge", ge)):
        xi = x.clone().requires_grad_()
        summed_exit_loss(model(xi, exits=True).logits, y).backward()
        grads[name] = (xi.grad, [e.weight.grad.clone() for e in model.exits])
    # Identity segments: with GE the gradient entering the trunk is the mean over the K exits, not their sum.
    torch.testing.assert_close(grads["ge"][0], grads["plain"][0] / 3)
    for a, b in zip(grads["ge"][1], grads["plain"][1]):
        torch.testing.assert_close(a, b)


# --- OFA-KD ---------------------------------------------------------------------------------------------------------


def test_ofa_kd_matches_its_definition_and_detaches_the_teacher():
    torch.manual_seed(0)
    logits = [torch.randn(8, 10, requires_grad=True) for _ in range(3)]
    y = torch.randint(0, 10, (8,))
    gamma, t = 0.9, 3.0
    loss = ofa_kd_loss(logits, y, gamma=gamma, temperature=t)
    assert loss.shape == ()
    teacher = F.softmax(logits[-1].detach() / t, 1)
    expected = F.cross_entropy(logits[-1], y)
    for z in logits[:-1]:
        kl = (teacher * (teacher.log() - F.log_softmax(z / t, 1))).sum(1).mean()
        expected = expected + (1 - gamma) * F.cross_entropy(z, y) + gamma * t * t * kl
    torch.testing.assert_close(loss, expected)
    loss.backward()
    # The last exit's gradient is its CE gradient only: the KD terms do not reach the teacher.
    (ce_grad,) = torch.autograd.grad(F.cross_entropy(logits[-1], y), logits[-1])
    torch.testing.assert_close(logits[-1].grad, ce_grad)
    assert all(z.grad is not None and z.grad.abs().sum() > 0 for z in logits[:-1])


def test_ofa_kd_with_gamma_zero_is_the_summed_loss_and_takes_an_external_teacher():
    logits = [torch.randn(4, 3) for _ in range(3)]
    y = torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(ofa_kd_loss(logits, y, gamma=0.0), summed_exit_loss(logits, y))
    teacher = torch.randn(4, 3, requires_grad=True)
    students = [z.clone().requires_grad_() for z in logits]
    ofa_kd_loss(students, y, teacher=teacher).backward()
    assert teacher.grad is None and all(z.grad is not None for z in students)
    z = torch.randn(4, 3, requires_grad=True)
    loss = adn_exits_distillation_loss([z, z], teacher, 1.0)
    loss.backward()
    assert loss.item() > 0 and teacher.grad is None and z.grad is not None


@pytest.mark.parametrize(
    ("gamma", "t", "match"), [(1.5, 3.0, "gamma"), (-0.1, 3.0, "gamma"), (0.5, 0.0, "temperature")]
)
def test_ofa_kd_rejects_bad_parameters(gamma, t, match):
    with pytest.raises(ValueError, match=match):
        ofa_kd_loss([torch.randn(2, 3)] * 2, torch.tensor([0, 1]), gamma=gamma, temperature=t)
    with pytest.raises(ValueError, match="at least one exit"):
        summed_exit_loss([], torch.tensor([0]))


# --- multi-exit models ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_exits():
    torch.manual_seed(0)
    return MultiExitModel(build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=16)).eval()


def test_exits_work_with_every_gate_setting_and_the_last_exit_is_the_backbone(resnet_exits):
    x = torch.randn(2, 1, 16, 16)
    for g in all_gates(3):
        out = resnet_exits(x, g, exits=True)
        assert [z.shape for z in out.logits] == [(2, 10)] * 3
        torch.testing.assert_close(out.logits[-1], resnet_exits.backbone(x, g))
        torch.testing.assert_close(resnet_exits(x, g), out.logits[-1])
    a, b = resnet_exits(x, "FFF", exits=True), resnet_exits(x, "TFF", exits=True)
    assert not torch.allclose(a.logits[0], b.logits[0])  # stage 0 skipped: its exit uses its *_skip norms


def test_exit_heads_use_skip_norms_when_their_stage_skips(resnet_exits):
    model = MultiExitModel(build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=16)).train()
    summed_exit_loss(model(torch.randn(4, 1, 16, 16), "TFT", exits=True).logits, torch.arange(4)).backward()
    assert model.heads[0].bn1.norm_skip.weight.grad is not None and model.heads[0].bn1.norm.weight.grad is None
    assert model.heads[1].bn1.norm.weight.grad is not None and model.heads[1].bn1.norm_skip.weight.grad is None


def _tiny_swin():
    return AdnSwinTransformer(2, 16, (2, 2), (1, 2), window_size=4, num_classes=10, in_chans=1, image_size=16)


@pytest.mark.parametrize(
    ("build", "layout"),
    [
        (lambda: build_model("vit_tiny_adn", num_classes=10, in_chans=1, image_size=16), "nlc"),
        (lambda: build_model("mobilenet_v2_adn_small", num_classes=10, in_chans=1, image_size=16), "nchw"),
        (_tiny_swin, "nhwc"),
    ],
)
def test_exits_fit_transformers_and_mobilenets(build, layout):
    model = MultiExitModel(build()).eval()
    out = model.forward_exits(torch.randn(2, 1, 16, 16), None, features=True)
    assert len(out.logits) == model.num_stages and all(z.shape == (2, 10) for z in out.logits)
    assert model.heads[0].layout == layout and [f.shape[1] for f in out.features] == model.feature_dims


def test_isc_shapes_gradients_and_frozen_trunk(resnet_exits):
    model = MultiExitModel(build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=16))
    model.add_isc()
    model.freeze_trunk()
    model.train()
    assert not model.backbone.training and model.isc.training  # frozen norms keep their statistics
    out = model.forward_exits(torch.randn(4, 1, 16, 16), "FTF", features=True)
    assert [z.shape for z in out.logits] == [(4, 10)] * 3
    assert [f.shape[1] for f in out.features] == model.feature_dims
    assert [fc.in_features for fc in model.isc.fcs] == [model.feature_dims[0]] + [2 * d for d in model.feature_dims[1:]]
    F.cross_entropy(out.logits[2], torch.arange(4)).backward()
    # Exit 2's loss reaches exits 1 and 0 through the ISC links (collaboration), and nothing frozen.
    assert model.isc.fcs[0].weight.grad.abs().sum() > 0 and model.isc.links[0][0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("isc."))
    assert out.teacher is not None and not out.teacher.requires_grad


def test_msdnet_exits_and_cifar_configuration():
    tiny = msdnet_tiny().eval()
    out = tiny(torch.randn(2, 1, 28, 28), exits=True)
    assert len(out.logits) == 4 and all(z.shape == (2, 10) for z in out.logits)
    x = torch.randn(1, 1, 28, 28)
    torch.testing.assert_close(tiny(x), tiny.forward_exits(x).logits[-1])  # forward skips the early classifiers
    cifar = msdnet_cifar()
    assert cifar.num_exits == 7 and [len(b) for b in cifar.blocks][:2] == [5, 2]  # first layer + base 4, then step 2
    with pytest.raises(ValueError, match="no depth gates"):
        tiny(torch.randn(1, 1, 28, 28), "FFF")


# --- training methods -----------------------------------------------------------------------------------------------


def _grads(model):
    return {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


@pytest.mark.parametrize("method", ["exits-sum", "exits-ge", "exits-ofa"])
def test_one_step_trains_every_exit_in_both_adn_passes(method, digits):
    cfg = TrainConfig(**{**TINY, "method": method})
    torch.manual_seed(0)
    model = build_exit_model("resnet20_adn", {"num_classes": 10, "in_chans": 1, "image_size": 8}, method)
    x, y = digits.train.tensors[0][:16], digits.train.tensors[1][:16]
    losses = train_module.METHODS[method].step(cfg, model.num_stages)(model, x, y, torch.Generator())
    assert set(losses) == {"loss_super", "loss_base"}
    names = _grads(model)
    assert {"heads.0.fc.weight", "heads.1.fc.weight", "backbone.fc.weight"} <= names
    assert "heads.0.bn1.norm_skip.weight" in names  # base-net pass


def test_stage_two_trains_only_isc_from_a_stage_one_checkpoint(tmp_path, digits):
    stage1 = train(TrainConfig(**{**TINY, "method": "exits-ge"}), tmp_path / "ge", data=digits, progress=False)
    cfg = TrainConfig(**{**TINY, "method": "exits-imta", "init_from": str(stage1)})
    stage2 = train(cfg, tmp_path / "imta", data=digits, progress=False)
    ge_model, _ = load_model(stage1)
    model, state = load_model(stage2)
    assert state["train_config"]["method"] == "exits-imta" and model.isc is not None
    for key, value in ge_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)  # trunk frozen
    with pytest.raises(ValueError, match="stage-1 multi-exit checkpoint"):
        train(TrainConfig(**{**TINY, "method": "exits-isc", "init_from": str(stage2)}), tmp_path / "x", data=digits)


def test_msdnet_trains_with_the_loop_and_reloads(tmp_path, digits):
    cfg = TrainConfig(**{**TINY, "model": "msdnet_tiny", "method": "exits-ofa"})
    path = train(cfg, tmp_path, data=digits, progress=False)
    model, state = load_model(path)
    assert "test_top1" in state["history"][-1] and model.num_exits == 4
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_exit_method_configs_are_checked(tmp_path, digits):
    with pytest.raises(ValueError, match="--init-from"):
        TrainConfig(method="exits-imta")
    with pytest.raises(ValueError, match="--init-from"):
        TrainConfig(method="exits-sum", init_from="x.pt")
    with pytest.raises(ValueError, match="ofa_gamma"):
        TrainConfig(method="exits-ofa", ofa_gamma=2.0)
    adn = train(TrainConfig(**TINY), tmp_path / "adn", data=digits, progress=False)
    with pytest.raises(ValueError, match="not one trained with --method adn"):
        train(TrainConfig(**{**TINY, "method": "exits-imta", "init_from": str(adn)}), tmp_path / "y", data=digits)
    with pytest.raises(ValueError, match="unknown model 'resnet99'"):
        build_exit_model("resnet99", {}, "exits-sum")
