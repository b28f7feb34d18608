"""Early-exit evaluation: FLOPs per piece and per chain, the report, and ``ondevice exits eval``."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ondevice.cli import main
from ondevice.exits.costs import PieceCosts, chain_costs, piece_costs
from ondevice.exits.evaluate import split_holdout
from ondevice.exits.heads import MultiExitModel
from ondevice.exits.msdnet import msdnet_tiny
from ondevice.models import build_model


def test_chain_costs_reuse_shared_gate_prefixes():
    pieces = PieceCosts(segment=((10, 6), (20, 12), (30, 18)), head=((1, 1), (2, 2), (3, 3)), isc=(0, 0, 0))
    ttt, ttf, fff = (True, True, True), (True, True, False), (False, False, False)
    # exits of one sub-network: segments and heads accumulate
    assert chain_costs(pieces, [(fff, 0), (fff, 1), (fff, 2)]) == [11, 33, 66]
    # network selection: TTF after TTT reuses stages 0-1 (same gates there); FFF shares nothing
    assert chain_costs(pieces, [(ttt, 2), (ttf, 2), (fff, 2)]) == [39, 72, 135]


def test_chain_costs_of_isc_exits_include_every_earlier_head():
    pieces = PieceCosts(segment=((10, 10), (20, 20)), head=((1, 1), (2, 2)), isc=(5, 7), exits_chained=True)
    flags = (False, False)
    assert chain_costs(pieces, [(flags, 1)]) == [10 + 20 + 1 + 5 + 2 + 7]


@pytest.mark.parametrize("gates", ["FFF", "TFT"])
def test_piece_costs_add_up_to_the_flops_of_a_forward_pass(gates):
    model = MultiExitModel(build_model("resnet20_adn", num_classes=10, in_chans=1, image_size=16)).eval()
    pieces = piece_costs(model)
    skips = tuple(c == "T" for c in gates)
    for k in range(3):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.forward_exits(torch.zeros(1, 1, 16, 16), gates, upto=k)
        assert chain_costs(pieces, [(skips, j) for j in range(k + 1)])[-1] == counter.get_total_flops()


def test_split_holdout_is_stratified_and_disjoint():
    from torch.utils.data import TensorDataset

    data = TensorDataset(torch.arange(40).float().view(40, 1), torch.arange(40) % 4)
    hold, test = split_holdout(data, 0.5, seed=0)
    assert len(hold) == len(test) == 20
    assert set(hold.tensors[0].flatten().tolist()).isdisjoint(test.tensors[0].flatten().tolist())
    assert torch.bincount(hold.tensors[1]).tolist() == [5, 5, 5, 5]
    with pytest.raises(ValueError, match="holdout fraction"):
        split_holdout(data, 1.0)


def test_msdnet_piece_costs_have_no_gate_dimension():
    pieces = piece_costs(msdnet_tiny().eval())
    assert len(pieces.segment) == 4 and all(a == b for a, b in pieces.segment)


def test_cli_exits_eval_writes_curves_and_plot(tmp_path, capsys):
    args = ["--data", "digits", "--limit", "96", "--batch-size", "16", "--epochs", "1"]
    assert main(["train", *args, "--method", "exits-sum", "--out", str(tmp_path)]) == 0
    code = main(["exits", "eval", str(tmp_path / "checkpoint.pt"), "--lambdas", "0,0.1,1"])
    assert code == 0
    report = json.loads((tmp_path / "exits.json").read_text())
    assert (tmp_path / "exits.png").stat().st_size > 5000
    assert len(report["anytime"]) == 8 and len(report["anytime"][0]["top1"]) == 3
    assert set(report["policies"]) >= {"exits", "combined"}
    exits = report["policies"]["exits"]
    assert len(exits["learned"]) == 3 and len(exits["matched"]) == 3 and len(exits["thresholds"]) == 15
    assert "cost at reference - 1 pt" in capsys.readouterr().out


def test_cli_exits_eval_rejects_single_exit_checkpoints(tmp_path, capsys):
    args = ["--data", "digits", "--limit", "64", "--batch-size", "16", "--epochs", "1"]
    assert main(["train", *args, "--out", str(tmp_path)]) == 0
    assert main(["exits", "eval", str(tmp_path / "checkpoint.pt")]) == 2
    assert "--method exits-" in capsys.readouterr().err
