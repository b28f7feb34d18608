"""Early exits on the embedded MNIST, side by side in one run: same data, same seed, same total epochs.

    python benchmarks/bench_exits.py --out bench-exits --ablations     # the numbers in docs/early_exits.md
    python benchmarks/bench_exits.py --out /tmp/b --epochs 1 1 --limit 600   # a quick smoke run
    python -m pytest benchmarks/bench_exits.py                         # the smoke run as a test

Data: the first 3,000 images of the MNIST train split train every network; the other 1,000 train
images are the held-out split the policies are fitted on (no network saw them); the 1,000 test
images report everything.

1. Training (IMTA: Li et al., ICCV 2019) for MSDNet-tiny (28 px; one pass per step) and ResNet-20-ADN (16 px, to fit
   the CPU budget; two ADN passes per step), following the IMTA paper's protocol: plain summed exit
   losses for E1 epochs; GE for E1 epochs (reported alone, "ge"); then, from that GE network, the
   frozen trunk's new ISC classifiers trained with OFA-KD for E2 more epochs (IMTA stage 2, cheap: only
   linear layers learn). With ``--ablations`` also OFA-KD alone for E1 epochs. Metric: mean anytime
   accuracy (the mean of the exits' test top-1; for the ADN model with super-net and base-net gates).
2. Policies (Bolukbasi et al., ICML 2017) on every ResNet-20-ADN run: Bolukbasi's learned exit policy vs confidence
   thresholds fitted to the same held-out average cost, and each policy's lowest average cost at the
   super-net's accuracy minus one point (also network selection over the sub-networks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from ondevice.checkpoint import load_model
from ondevice.data import DataSplits, load_data
from ondevice.exits.evaluate import evaluate_exits
from ondevice.exits.plots import plot_exits
from ondevice.train import TrainConfig, train

MODELS = {"msdnet_tiny": 28, "resnet20_adn": 16}  # model -> image size


def _splits(image_size: int, limit: int | None) -> tuple[DataSplits, TensorDataset]:
    data = load_data("mnist", image_size=image_size, seed=0)
    x, y = data.train.tensors
    n_train = 3000 if limit is None else limit
    n_hold = 1000 if limit is None else max(limit // 3, 50)
    train_split = TensorDataset(x[:n_train], y[:n_train])
    holdout = TensorDataset(x[n_train : n_train + n_hold], y[n_train : n_train + n_hold])
    test = data.test if limit is None else TensorDataset(*(t[: max(limit // 3, 50)] for t in data.test.tensors))
    return DataSplits(train_split, test, data.spec), holdout


def _train(cfg: TrainConfig, out: Path, data: DataSplits) -> tuple[Path, float]:
    start = time.perf_counter()
    path = train(cfg, out, data=data, progress=False)
    return path, time.perf_counter() - start


def _runs(e1: int, e2: int, ablations: bool) -> dict[str, dict[str, Any]]:
    """name -> (the run it starts from, its train config); stage-2 runs get ``init_from`` from the run before."""
    runs: dict[str, dict[str, Any]] = {
        "sum": {"method": "exits-sum", "epochs": e1},
        "ge": {"method": "exits-ge", "epochs": e1},
        "ge+isc+ofa (IMTA)": {"method": "exits-imta", "epochs": e2, "after": "ge"},
    }
    if ablations:
        runs["ofa"] = {"method": "exits-ofa", "epochs": e1}
    return runs


def run(out: Path, e1: int, e2: int, *, limit: int | None = None, ablations: bool = False) -> dict[str, Any]:
    """Train every run, evaluate anytime accuracy and the policies; write bench_exits.{json,md} in ``out``."""
    torch.manual_seed(0)
    results: dict[str, Any] = {"epochs": [e1, e2], "limit": limit, "models": {}}
    for model_name, size in MODELS.items():
        data, holdout = _splits(size, limit)
        rows: dict[str, Any] = {}
        paths: dict[str, Path] = {}
        for run_name, spec in _runs(e1, e2, ablations).items():
            spec = dict(spec)
            after = spec.pop("after", None)
            init = {"init_from": str(paths[after])} if after else {}
            cfg = TrainConfig(model=model_name, data="mnist", image_size=size, seed=0, **spec, **init)
            path, seconds = _train(cfg, out / model_name / run_name.split()[0], data)
            if after:
                seconds += rows[after]["train_seconds"]
            paths[run_name] = path
            model, _ = load_model(path)
            report = evaluate_exits(model, holdout, data.test, progress=False)
            plot_exits(report, out / model_name / f"{run_name.split()[0]}.png", title=f"{model_name}: {run_name}")
            rows[run_name] = {"train_seconds": seconds, "report": report}
            print(f"{model_name:<14} {run_name:<20} {_anytime_line(report)}  ({seconds:.0f} s)", flush=True)
        results["models"][model_name] = rows
    (out / "bench_exits.json").write_text(json.dumps(results, indent=1))
    markdown = to_markdown(results)
    (out / "bench_exits.md").write_text(markdown + "\n")
    print(markdown)
    return results


def _anytime_line(report: dict[str, Any]) -> str:
    row = report["anytime"][0]
    cells = " ".join(f"{100 * a:5.2f}" for a in row["top1"])
    return f"exits {cells}  mean {100 * row['mean_top1']:.2f}"


def to_markdown(results: dict[str, Any]) -> str:
    """The tables of docs/early_exits.md."""
    e1, e2 = results["epochs"]
    lines = [f"Epochs: {e1} (IMTA: {e1} of GE, then {e2} of stage 2; train s include both). Test top-1 (%).", ""]
    lines += ["| model | training | exits (super-net gates) | mean anytime | mean anytime, base-net | train s |"]
    lines += ["|---|---|---|---:|---:|---:|"]
    for model_name, rows in results["models"].items():
        for run_name, row in rows.items():
            anytime = row["report"]["anytime"]
            base = anytime[-1]["mean_top1"] if len(anytime) > 1 else None
            exits = " / ".join(f"{100 * a:.2f}" for a in anytime[0]["top1"])
            base_text = "-" if base is None else f"{100 * base:.2f}"
            lines.append(
                f"| {model_name} | {run_name} | {exits} | {100 * anytime[0]['mean_top1']:.2f} | {base_text} | "
                f"{row['train_seconds']:.0f} |"
            )
    for model_name, rows in results["models"].items():
        if model_name == "msdnet_tiny":
            continue
        for run_name, row in rows.items():
            report = row["report"]
            ref = report["reference"]
            lines += [
                "",
                f"**{model_name}, {run_name}**: super-net {100 * ref['top1']:.2f}% at {ref['mflops']:.2f} MFLOPs. "
                "Learned exit policy vs thresholds at the same held-out average cost (test):",
                "",
                "| lambda | learned MFLOPs | learned top-1 | thresholds MFLOPs | thresholds top-1 | gain (pt) |",
                "|---:|---:|---:|---:|---:|---:|",
            ]
            for m in report["policies"]["exits"]["matched"]:
                lines.append(
                    f"| {m['lambda']:g} | {m['learned_mflops']:.2f} | {100 * m['learned_top1']:.2f} | "
                    f"{m['thresholds_mflops']:.2f} | {100 * m['thresholds_top1']:.2f} | "
                    f"{100 * (m['learned_top1'] - m['thresholds_top1']):+.2f} |"
                )
            lines += ["", "| policy | MFLOPs at super-net - 1 pt | speed-up |", "|---|---:|---:|"]
            for key, value in report["at_reference_minus_1pt"].items():
                if key != "target_top1":
                    cost = "not reached" if value["mflops"] is None else f"{value['mflops']:.2f}"
                    speedup = "-" if value["speedup"] is None else f"{value['speedup']:.2f}x"
                    lines.append(f"| {key} | {cost} | {speedup} |")
    return "\n".join(lines)


def test_bench_exits_smoke(tmp_path):
    """The whole benchmark on a few hundred images and one epoch per stage (checks the script, not the numbers)."""
    results = run(tmp_path, 1, 1, limit=300)
    assert (tmp_path / "bench_exits.md").read_text().count("|") > 20
    assert set(results["models"]) == set(MODELS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-exits"))
    parser.add_argument("--epochs", type=int, nargs=2, default=(5, 3), metavar=("STAGE1", "STAGE2"))
    parser.add_argument("--limit", type=int, default=None, help="train images (default 3000)")
    parser.add_argument("--ablations", action="store_true", help="also OFA-KD alone")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    run(args.out, *args.epochs, limit=args.limit, ablations=args.ablations)


if __name__ == "__main__":
    main()
