"""``manifest.json``: the versioned contract between a bundle and the apps, validated by a shipped JSON Schema.

The manifest is plain JSON (the apps parse it with their own JSON libraries); this module builds it,
validates it against ``manifest.schema.json`` and rejects other versions with a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_json_atomic
from ..models import Gates, base_net, super_net
from .schemas import check_version, first_violation, read_bundle_json

__all__ = [
    "GATE_SEMANTICS",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "THERMAL_TABLE_KEYS",
    "ManifestError",
    "load_manifest",
    "new_manifest",
    "save_manifest",
    "thermal_table_problem",
    "validate_manifest",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
# A latency table's thermal tables are keyed by Android's thermal status names above NONE, levels 1..6.
THERMAL_TABLE_KEYS = ("light", "moderate", "severe", "critical", "emergency", "shutdown")
GATE_SEMANTICS = (
    "One letter per stage, T = skip that stage's skippable sub-path (its mandatory blocks then use their *_skip "
    "norms), F = run it. All F is the super-net, all T the base-net. As a tensor: one element per stage, 1/True = skip."
)


class ManifestError(ValueError):
    """A manifest that is missing, of another version, or not valid against the schema."""


def validate_manifest(manifest: dict[str, Any], source: str = "manifest") -> dict[str, Any]:
    """Check version, schema and internal consistency (gate lengths, format tables); return the manifest."""
    check_version(
        manifest,
        "manifest_version",
        MANIFEST_VERSION,
        source,
        fix="Re-export the bundle with `ondevice export`",
        error=ManifestError,
    )
    problem = first_violation(manifest, "manifest")
    if problem is not None:
        raise ManifestError(f"{source} is not a valid manifest at {problem.where}: {problem.message}")
    n = manifest["gates"]["num_stages"]
    seen: set[str] = set()
    for subnet in manifest["subnets"]:
        Gates.parse(subnet["gates"], n)
        if subnet["gates"] in seen:
            raise ManifestError(f"{source} lists sub-network {subnet['gates']} twice; re-export the bundle")
        seen.add(subnet["gates"])
    model = manifest["model"]
    if len(model["class_names"]) != model["num_classes"]:
        raise ManifestError(
            f"{source} has {len(model['class_names'])} class names for num_classes {model['num_classes']}; "
            "re-export the bundle"
        )
    for device, table in manifest["latency"].items():
        unknown = set(table["subnets"]) - {s["gates"] for s in manifest["subnets"]}
        if unknown:
            raise ManifestError(
                f"{source}: latency table {device!r} names sub-networks {sorted(unknown)} "
                "that the manifest does not list"
            )
        problem = thermal_table_problem(device, table)
        if problem:
            raise ManifestError(f"{source}: {problem}")
    return manifest


def thermal_table_problem(device: str, table: dict[str, Any]) -> str | None:
    """Why the thermal tables of a device's latency table cannot be used, or None: each must time exactly the
    sub-networks of the cool table, so that every state ranks the same candidates."""
    for status, hot in (table.get("thermal") or {}).items():
        if set(hot["subnets"]) != set(table["subnets"]):
            return (
                f"latency table {device!r}: the {status!r} thermal table lists {sorted(hot['subnets'])}, the cool "
                f"table {sorted(table['subnets'])}; a thermal table must time the same sub-networks"
            )
    return None


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read and validate a bundle's manifest (``path`` is the file or the bundle directory)."""
    path, manifest = read_bundle_json(
        path, MANIFEST_NAME, missing="create a bundle with `ondevice export CHECKPOINT --out DIR`", error=ManifestError
    )
    return validate_manifest(manifest, str(path))


def save_manifest(path: str | Path, manifest: dict[str, Any]) -> Path:
    """Validate, then write atomically."""
    validate_manifest(manifest, str(path))
    return write_json_atomic(path, manifest)


def new_manifest(
    *,
    model_name: str,
    class_names: list[str],
    input_shape: tuple[int, int, int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    num_stages: int,
    subnets: list[dict[str, Any]],
    precision: dict[str, Any] | None = None,
    checkpoint: str | None = None,
    method: str | None = None,
) -> dict[str, Any]:
    """A manifest with no formats and no latency tables yet; the exporters and ``ondevice profile`` fill those."""
    model: dict[str, Any] = {"name": model_name, "num_classes": len(class_names), "class_names": list(class_names)}
    if checkpoint:
        model["checkpoint"] = checkpoint
    if method:
        model["method"] = method
    return {
        "manifest_version": MANIFEST_VERSION,
        "ondevice_version": __version__,
        "model": model,
        "input": {
            "name": "image",
            "shape": list(input_shape),
            "dtype": "float32",
            "layout": "NCHW",
            "mean": list(mean),
            "std": list(std),
            "value_range": [0.0, 1.0],
            "preprocessing": "resize to shape[2] x shape[3], scale pixels to [0, 1], then (x - mean) / std per channel",
        },
        "gates": {
            "num_stages": num_stages,
            "semantics": GATE_SEMANTICS,
            "super_net": str(super_net(num_stages)),
            "base_net": str(base_net(num_stages)),
        },
        "precision": precision or {"name": "fp32"},
        "subnets": subnets,
        "formats": {},
        "latency": {},
    }
