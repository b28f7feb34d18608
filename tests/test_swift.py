"""The iOS demo's Swift libraries, built and tested on Linux (ios_demo/swift-on-linux: swiftlang in a Debian 13 root).

Every XCTest runs, the shared policy vectors included; a one-ulp change in the vectors and planted bugs in the Swift
policy must make them fail. The latency file the Swift benchmark code writes from rounds timed at several thermal
states must validate against the schema and merge into a bundle. CI installs the toolchain (.ci/run); elsewhere
these tests are skipped without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_apps import _missing

ROOT = Path(__file__).resolve().parents[1]
IOS = ROOT / "ios_demo"
SCRIPT = IOS / "swift-on-linux"
VECTORS = ROOT / "tests" / "policy_vectors.json"
SUMMARY = re.compile(
    r"Test Suite 'All tests' (?:passed|failed).*\n"
    r"\s*Executed (\d+) tests?, with (?:(\d+) tests? skipped and )?(\d+) fail"
)


def _swift(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})}
    )


def _summary(done: subprocess.CompletedProcess[str]) -> tuple[int, int, int]:
    """(tests executed, skipped, failed) of the whole XCTest run (a test whose setUp throws counts as skipped)."""
    found = SUMMARY.search(done.stdout)
    assert found, f"no XCTest summary (rc {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return int(found[1]), int(found[2] or 0), int(found[3])


@pytest.fixture(scope="module")
def swift_root() -> Path:
    if os.geteuid() != 0 or shutil.which("chroot") is None:
        _missing("chroot as root (the Swift root runs through it)", "run the tests as root, as CI does")
    root = Path(_swift("root").stdout.strip())
    if not (root / "usr" / "libexec" / "swift" / "bin" / "swift").is_file():
        _missing(f"a Swift toolchain at {root}", "ios_demo/swift-on-linux install")
    return root


def _declared_tests() -> list[str]:
    """Every `func test...()` of the package's test targets (Tests/AppTests needs a phone): what a run must execute."""
    files = [p for target in ("PolicyTests", "ModelTests") for p in sorted((IOS / "Tests" / target).glob("*.swift"))]
    return [name for p in files for name in re.findall(r"func (test\w+)\(", p.read_text())]


def test_every_xctest_passes_on_linux(swift_root):
    done = _swift("test")
    executed, skipped, failed = _summary(done)
    print(f"Swift: {executed} XCTests run on Linux, {skipped} skipped, {failed} failed")
    assert done.returncode == 0 and skipped == failed == 0, done.stdout[-3000:]
    assert executed == len(_declared_tests()) > 10


def _tampered_run(swift_root: Path, *package: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The vectors tests against a copy of the vectors with one number one ulp off; returns the failed tests."""
    vectors = json.loads(VECTORS.read_text())
    expect = vectors["cases"][-1]["steps"][-1]["expect"]
    expect["cap_ms"] = float(np.nextafter(expect["cap_ms"], np.inf))
    (swift_root / "tmp" / "tampered_vectors.json").write_text(json.dumps(vectors))
    done = _swift(
        "test", *package, "--filter", "PolicyVectorsTests", env={"ONDEVICE_VECTORS": "/tmp/tampered_vectors.json"}
    )
    return done, set(re.findall(r"Test Case '\S*?(test\w+)'.* failed", done.stdout))


def test_the_swift_vectors_test_fails_on_a_one_ulp_change(swift_root):
    """The bit-for-bit comparison is real: one number one ulp off fails the step-by-step test, and only it."""
    done, failed = _tampered_run(swift_root)
    assert done.returncode != 0 and failed == {"testEveryCaseStepByStep"}, done.stdout[-3000:]


def _planted(tmp_path: Path, path: str, right: str, wrong: str) -> Path:
    """A copy of the package with `right` replaced by `wrong` in `path` (built from scratch, away from the
    package's own incremental build: switching sources under one build folder can leave stale objects)."""
    package = tmp_path / "ios_demo"
    shutil.copytree(IOS, package, ignore=shutil.ignore_patterns(".build"))
    source = package / path
    text = source.read_text()
    assert text.count(right) == 1, f"{path} no longer holds the line to plant the bug in: {right}"
    source.write_text(text.replace(right, wrong))
    return package


def test_the_one_ulp_test_notices_a_loosened_comparison(swift_root, tmp_path):
    """With the numbers compared within 1e-6 instead of bit for bit, the tampered vectors pass: the test above fails."""
    package = _planted(
        tmp_path,
        "Tests/PolicyTests/PolicyVectorsTests.swift",
        "XCTAssertEqual(got.bitPattern, expected.bitPattern,",
        "XCTAssertEqual(got, expected, accuracy: 1e-6,",
    )
    done, failed = _tampered_run(swift_root, "--package", str(package), "--fresh")
    assert done.returncode == 0 and not failed, done.stdout[-3000:]


PLANTED = {
    # the battery tiers apply below their threshold, not at it
    "battery_tier_at_its_threshold": (
        "Sources/Policy/Policy.swift",
        "bat.tiers.first(where: { battery < $0.below })",
        "bat.tiers.first(where: { battery <= $0.below })",
    ),
    # a table measured hot already holds the throttling up to its level: the slowdown must be only the heat beyond it
    "thermal_slowdown_not_beyond_the_measured_table": (
        "Sources/Policy/Policy.swift",
        "slowdown[level.rawValue] / slowdown[m.rawValue]",
        "slowdown[level.rawValue]",
    ),
    # a choice that a hotter table ranks behind a better one is no longer replaced by it at once
    "dominated_choice_not_replaced": (
        "Sources/Policy/Policy.swift",
        "} else if let held = accuracyOf[previous] {",
        "} else if let held = accuracyOf[previous], held > 1 {",
    ),
    # a policy.json key spelled differently in the Swift reader
    "policy_json_key_renamed": (
        "Sources/Policy/PolicyConfig.swift",
        'unknownFraction = "unknown_fraction"',
        'unknownFraction = "unknown_battery_fraction"',
    ),
    # shrinking with plain bilinear (two source pixels per output), not training's antialiased filter
    "resize_without_antialiasing": (
        "Sources/Model/ImageResize.swift",
        "let invScale = scale >= 1 ? 1 / scale : 1",
        "let invScale = 1.0",
    ),
}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_a_planted_bug_fails_the_swift_tests(swift_root, bug, tmp_path):
    done = _swift("test", "--package", str(_planted(tmp_path, *PLANTED[bug])), "--fresh")
    assert done.returncode != 0 and _summary(done)[2] > 0, f"{bug} went unnoticed:\n{done.stdout[-3000:]}"


def test_the_swift_latency_file_of_thermal_rounds_validates_and_merges(swift_root, tmp_path):
    """Rounds timed at iOS thermal states (written here) -> the Swift grouping and writer -> latency.json: it validates
    against the schema; the coolest state's rounds are the table and each hotter state's with >= 20 rounds a thermal
    table, each with `ondevice profile`'s statistics of its rounds (a state with 19 rounds is left out); merged into
    a bundle, the policy ranks with those thermal tables."""
    from ondevice.contract.schemas import load_schema
    from ondevice.policy import DeviceState, Policy, PolicyConfig
    from ondevice.policy.example import example_manifest, write_example_bundle
    from ondevice.profile import _percentile, merge_latency

    jsonschema = pytest.importorskip("jsonschema")
    bundle = write_example_bundle(tmp_path / "bundle")
    manifest = example_manifest()
    gates = [s["gates"] for s in manifest["subnets"]]
    ios_levels = list(PolicyConfig().thermal.ios_levels)  # nominal NONE, fair LIGHT, serious SEVERE, critical CRITICAL
    rng = np.random.default_rng(0)
    states = [state for state, n in {0: 23, 1: 21, 2: 20, 3: 19}.items() for _ in range(n)]
    rng.shuffle(states)
    rounds = [
        {
            "thermal_state": int(state),
            "samples_ms": {g: float(rng.gamma(9.0, 2.0 + i + 3 * state)) for i, g in enumerate(gates)},
        }
        for state in states
    ]
    device = "Apple iPhone16,1"
    source = {"device": device, "model": manifest["model"]["name"], "backend": "xnnpack", "warmup": 5}
    source |= {"app": "test_swift", "ios_levels": ios_levels, "rounds": rounds}
    (swift_root / "tmp" / "latency_rounds.json").write_text(json.dumps(source))
    out = swift_root / "tmp" / "swift_latency.json"
    out.unlink(missing_ok=True)
    done = _swift(
        "test",
        "--filter",
        "LatencyReportTests/testWritesTheLatencyFileOfTimedRounds",
        env={"ONDEVICE_LATENCY_ROUNDS": "/tmp/latency_rounds.json", "ONDEVICE_LATENCY_OUT": "/tmp/swift_latency.json"},
    )
    ran = "Test Suite 'Selected tests' passed" in done.stdout and "Executed 1 test, with 0 failures" in done.stdout
    assert done.returncode == 0 and ran, done.stdout[-3000:]
    data = json.loads(out.read_text())
    jsonschema.validate(data, load_schema("latency"))

    def table(state: int) -> dict[str, dict[str, float]]:
        """`ondevice profile`'s statistics of the rounds timed at this iOS thermal state, rounded as it writes them."""
        at = [r["samples_ms"] for r in rounds if r["thermal_state"] == state]
        return {
            g: {
                "median_ms": round(statistics.median([r[g] for r in at]), 4),
                "p90_ms": round(_percentile([r[g] for r in at], 0.9), 4),
                "min_ms": round(min(r[g] for r in at), 4),
            }
            for g in gates
        }

    assert data["runs"] == 23 and data["subnets"] == table(0)
    assert data["thermal"] == {"light": {"runs": 21, "subnets": table(1)}, "severe": {"runs": 20, "subnets": table(2)}}

    merged = merge_latency(bundle, out)["latency"][device]
    assert merged["thermal"] == data["thermal"] and merged["source"] == "app"
    policy = Policy.from_bundle(bundle, device=device)
    assert [hot.level for hot in policy.table.thermal] == [1, 3]
    state = DeviceState(battery=1.0, charging=True, power_save=False, thermal=3, latency_budget_ms=1000.0)
    assert policy.decide(state, 0.0)[0].table_level == 3
