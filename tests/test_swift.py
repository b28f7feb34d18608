"""The iOS demo's Swift libraries, built and tested on Linux (ios_demo/swift-on-linux: swiftlang in a Debian 13 root).

Every XCTest runs, the shared policy vectors included; a one-ulp change in the vectors and planted bugs in the Swift
policy must make them fail. CI installs the toolchain (.ci/run); elsewhere these tests are skipped without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
