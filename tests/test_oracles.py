"""Numbers the toolkit reports, checked against models and programs whose right answer is known by construction."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import TensorDataset

from ondevice.evaluate import evaluate
from ondevice.models import Gates, all_gates
from ondevice.models.adn import InputSpec
from ondevice.profile import interleaved_latency, measure_latency, median_ci95


class SkipCounter(nn.Module):
    """A 3-stage "model" that predicts the class equal to the number of stages its gates skip."""

    num_stages = 3
    input_spec = InputSpec(in_chans=1, image_size=4)

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, gates: Gates) -> torch.Tensor:
        skipped = sum(Gates.coerce(gates, self.num_stages).skip)
        logits = torch.zeros(x.shape[0], 4)
        logits[:, skipped] = 1.0
        return logits * self.scale


def test_evaluate_scores_each_gate_setting_with_its_own_sub_network():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 3])  # 0 skipped: 4/8 right, 1: 2/8, 2: 1/8, 3: 1/8
    test = TensorDataset(torch.zeros(len(labels), 1, 4, 4), labels)
    rows = {r.gates: r.top1 for r in evaluate(SkipCounter(), test, progress=False)}
    expected = {str(g): [4, 2, 1, 1][sum(g.skip)] / 8 for g in all_gates(3)}
    assert rows == expected


class _SleepyMethod:
    """Stands in for a loaded ExecuTorch method: sleeps 4 ms per stage it runs and records the gates it was given."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def execute(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        gates = Gates(tuple(bool(v) for v in inputs[1].tolist()))
        self.calls.append(str(gates))
        time.sleep(0.004 * (3 - sum(gates.skip)) + 0.001)
        return [torch.zeros(1, 4)]


class _FakeProgram:
    num_stages = 3
    input_shape = (1, 1, 4, 4)

    def __init__(self) -> None:
        self.method = _SleepyMethod()


def test_profiler_times_each_gate_setting_with_its_own_gates():
    program = _FakeProgram()
    settings = all_gates(3)
    table = measure_latency(program, settings, runs=5, warmup=1)  # type: ignore[arg-type]
    assert sorted(program.method.calls) == sorted(str(g) for g in settings for _ in range(6))  # warmup + 5 runs
    for g in settings:
        expected_ms = 4.0 * (3 - sum(g.skip)) + 1.0  # a sleep never ends early; 3 ms of slack for a busy machine
        assert expected_ms <= table[str(g)]["min_ms"] < expected_ms + 3.0, (str(g), table[str(g)])


def test_median_confidence_interval_by_order_statistics():
    """Hand-computed: for 1..100 the ranks are 50 -+ 9.8, i.e. the 40th and the 60th values."""
    assert median_ci95([float(v) for v in range(100, 0, -1)]) == (40.0, 60.0)
    assert median_ci95([3.0, 1.0, 2.0, 5.0, 4.0]) == (1.0, 5.0)  # five runs: the interval is the whole range


def test_primed_calls_are_timed_right_after_untimed_calls_of_themselves():
    """A fake that is slow (8 ms) after a different call and fast (1 ms) after itself: primed timing sees only
    the fast calls, and every timed call comes after ``primed`` calls of its own."""
    record: list[str] = []

    def call(name: str) -> None:
        time.sleep(0.001 if record and record[-1] == name else 0.008)
        record.append(name)

    calls = {name: (lambda n=name: call(n)) for name in ("a", "b", "c")}
    table = interleaved_latency(calls, runs=4, warmup=1, primed=2, keep_samples=True)
    timed = record[3:]  # after one warm-up round
    assert len(timed) == 4 * 3 * 3
    assert all(len(set(timed[i : i + 3])) == 1 for i in range(0, len(timed), 3))
    assert all(row["median_ms"] < 5.0 for row in table.values()), table
    for row in table.values():  # the samples are the timed calls the row summarises
        assert len(row["samples_ms"]) == 4 and round(min(row["samples_ms"]), 4) == row["min_ms"]
    cold = interleaved_latency(calls, runs=4, warmup=0)  # the shuffle puts "a" after "a" only at round edges
    assert max(row["median_ms"] for row in cold.values()) >= 8.0, cold
