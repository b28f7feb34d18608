"""From a manifest to the policy's table: one latency and one accuracy per sub-network, then the Pareto front.

Rules the apps re-implement (docs/policy.md, "The sub-network table"):

1. Latency table: the one named after this device; else the most recently measured one (largest
   ``measured_at`` string, a table without it counting as older than any with it; ties: the larger device
   name); else no table: ``latency_ms = flops / 1e9 * latency.fallback_ms_per_gflop`` for every sub-network.
2. A sub-network's latency is its entry's ``latency.statistic`` (p90 by default), or its median when the
   entry lacks that statistic; sub-networks without an entry in the chosen table are left out.
2b. Monotone latency: skipping more stages never costs more, so a sub-network's latency is the smallest of
   its own and those of every listed sub-network that skips a subset of its stages (runs at least its
   stages). One burst of noise on a cheap sub-network cannot then push it above a costlier one.
3. Thermal tables: the chosen table's ``thermal`` entries (latency measured at a hotter status, keyed by its
   Android name) go through rules 2 and 2b as well, and each gives its own front (rule 5) over the same
   candidates; each must list exactly the sub-networks of the cool table.
4. Accuracy column: ``accuracy.precision`` from policy.json; if null, the bundle's precision
   (``manifest.precision.name``) when every listed sub-network has it, else ``fp32`` when every one has it.
5. Front: sort by (latency ascending, accuracy descending, gates string ascending) and keep each sub-network
   whose accuracy is strictly higher than every one before it. The front is then strictly increasing in
   both latency and accuracy: "most accurate that fits" is "the last one that fits".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...contract.manifest import THERMAL_TABLE_KEYS, thermal_table_problem
from ...models.gates import Gates
from ...pareto import pareto_front
from ..config import PolicyConfig

__all__ = [
    "LatencySource",
    "SubNetwork",
    "SubnetTable",
    "ThermalTable",
    "build_table",
    "monotone_latency",
    "select_latency",
    "select_thermal_latency",
    "thermal_level_of",
]


@dataclass(frozen=True)
class SubNetwork:
    """One row of the policy's table."""

    gates: str
    name: str
    latency_ms: float
    accuracy: float
    flops: int


@dataclass(frozen=True)
class LatencySource:
    """Where the latencies come from: ``kind`` is "device", "fallback-table" or "flops-estimate"."""

    kind: str
    device: str | None
    backend: str | None

    def describe(self, requested: str | None) -> str:
        if self.kind == "device":
            return f"measured on {self.device!r} ({self.backend})"
        if self.kind == "fallback-table":
            wanted = f"no table for {requested!r}; " if requested else ""
            return f"{wanted}using the most recent table, {self.device!r} ({self.backend}), as measured there"
        return "no latency table in the manifest: estimated from FLOPs (latency.fallback_ms_per_gflop)"


@dataclass(frozen=True)
class ThermalTable:
    """Rule 3: latency measured at thermal level ``level`` (>= 1) and its own front over the same candidates."""

    level: int
    front: tuple[SubNetwork, ...]
    candidates: tuple[SubNetwork, ...]


@dataclass(frozen=True)
class SubnetTable:
    """The Pareto front the policy chooses from (index 0 = cheapest), plus every candidate and its provenance;
    ``thermal`` holds the fronts of latency measured hotter, by ascending level (empty without such tables)."""

    front: tuple[SubNetwork, ...]
    candidates: tuple[SubNetwork, ...]
    source: LatencySource
    accuracy_key: str
    device: str | None
    thermal: tuple[ThermalTable, ...] = ()

    def index(self, gates: str) -> int:
        for i, s in enumerate(self.front):
            if s.gates == gates:
                return i
        raise KeyError(f"{gates!r} is not on the policy's front {[s.gates for s in self.front]}")


def thermal_level_of(name: str) -> int:
    """The level of a thermal table's key (Android's status name in lower case: "severe" -> 3)."""
    return THERMAL_TABLE_KEYS.index(name) + 1


def _chosen_table(manifest: Mapping[str, Any], device: str | None) -> tuple[str | None, str]:
    """Rule 1: (name of the latency table, source kind); (None, "flops-estimate") without tables."""
    tables: Mapping[str, Any] = manifest.get("latency") or {}
    if device is not None and device in tables:
        return device, "device"
    if tables:
        key = max(
            tables, key=lambda d: (tables[d].get("measured_at") is not None, tables[d].get("measured_at") or "", d)
        )
        return key, "fallback-table"
    return None, "flops-estimate"


def _statistic(entries: Mapping[str, Any], statistic: str) -> dict[str, float]:
    """Rules 2 and 2b on one table's entries."""
    return monotone_latency(
        {gates: float(entry.get(statistic, entry["median_ms"])) for gates, entry in entries.items()}
    )


def select_thermal_latency(
    manifest: Mapping[str, Any], device: str | None, config: PolicyConfig
) -> dict[int, dict[str, float]]:
    """Rule 3: thermal level -> gates -> latency of the chosen table's thermal entries (empty without them)."""
    name, _ = _chosen_table(manifest, device)
    if name is None:
        return {}
    cool = manifest["latency"][name]
    hot: dict[int, dict[str, float]] = {}
    problem = thermal_table_problem(name, cool)
    if problem:
        raise ValueError(problem)
    for key, entry in (cool.get("thermal") or {}).items():
        hot[thermal_level_of(key)] = _statistic(entry["subnets"], config.latency.statistic)
    return dict(sorted(hot.items()))


def select_latency(
    manifest: Mapping[str, Any], device: str | None, config: PolicyConfig
) -> tuple[dict[str, float], LatencySource]:
    """Rules 1 and 2: gates -> latency in ms, and where it came from."""
    name, kind = _chosen_table(manifest, device)
    if name is None:
        per_gflop = config.latency.fallback_ms_per_gflop
        latency = {s["gates"]: s["flops"] / 1e9 * per_gflop for s in manifest["subnets"]}
        return latency, LatencySource(kind, None, None)
    table = manifest["latency"][name]
    return _statistic(table["subnets"], config.latency.statistic), LatencySource(kind, name, table.get("backend"))


def _runs_at_least(other: str, gates: str) -> bool:
    """True when ``other`` runs every stage ``gates`` runs (an ``F`` wherever ``gates`` has one)."""
    return len(other) == len(gates) and all(o == "F" or g == "T" for o, g in zip(other, gates))


def monotone_latency(latency: Mapping[str, float]) -> dict[str, float]:
    """Rule 2b: each sub-network's latency capped by that of every sub-network that runs a superset of its stages."""
    for gates in sorted(latency):
        if not latency[gates] >= 0:
            raise ValueError(f"sub-network {gates}: latency {latency[gates]!r} ms is not a number >= 0")
    return {
        gates: min(ms for other, ms in latency.items() if other == gates or _runs_at_least(other, gates))
        for gates in latency
    }


def _accuracy_key(manifest: Mapping[str, Any], subnets: list[Mapping[str, Any]], config: PolicyConfig) -> str:
    if config.accuracy.precision is not None:
        key = config.accuracy.precision
        missing = [s["gates"] for s in subnets if key not in s["accuracy"]]
        if missing:
            raise ValueError(
                f"policy.json asks for accuracy {key!r} but sub-networks {missing} have none; "
                f"they list {sorted(subnets[0]['accuracy'])}"
            )
        return key
    preferred = (manifest.get("precision") or {}).get("name")
    for key in (preferred, "fp32"):
        if key and all(key in s["accuracy"] for s in subnets):
            return key
    raise ValueError(
        f"the manifest's sub-networks do not all have a {preferred!r} or 'fp32' accuracy, which the policy ranks "
        "them by; evaluate the checkpoint (`ondevice eval`) and re-export the bundle"
    )


def _front(
    listed: list[Mapping[str, Any]], latency: Mapping[str, float], key: str, num_stages: int
) -> tuple[tuple[SubNetwork, ...], tuple[SubNetwork, ...]]:
    """Rule 5: (front, candidates) of the listed sub-networks at these latencies."""
    rows = []
    for s in sorted(listed, key=lambda s: s["gates"]):
        Gates.parse(s["gates"], num_stages)
        ms = latency[s["gates"]]
        if not ms >= 0:
            raise ValueError(f"sub-network {s['gates']}: latency {ms!r} ms is not a number >= 0")
        rows.append(SubNetwork(s["gates"], s["name"], ms, float(s["accuracy"][key]), int(s["flops"])))
    keep = pareto_front([r.latency_ms for r in rows], [r.accuracy for r in rows])
    return tuple(rows[i] for i in keep), tuple(rows)


def build_table(manifest: Mapping[str, Any], config: PolicyConfig, device: str | None = None) -> SubnetTable:
    """Rules 1-5 on a validated manifest (``ondevice.contract.manifest.load_manifest``)."""
    num_stages = manifest["gates"]["num_stages"]
    latency, source = select_latency(manifest, device, config)
    listed = [s for s in manifest["subnets"] if s["gates"] in latency]
    if not listed:
        raise ValueError(
            f"the latency table {source.device!r} lists none of the manifest's sub-networks; profile the bundle "
            "(`ondevice profile`)"
        )
    key = _accuracy_key(manifest, listed, config)
    front, candidates = _front(listed, latency, key, num_stages)
    thermal = tuple(
        ThermalTable(level, *_front(listed, hot, key, num_stages))
        for level, hot in select_thermal_latency(manifest, device, config).items()
    )
    return SubnetTable(front, candidates, source, key, device, thermal)
