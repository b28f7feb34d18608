"""The demo apps (android_demo/, ios_demo/) against the Python policy, as far as this Linux machine can check them.

Kotlin: the plain-Kotlin module android_demo/policy is compiled with kotlinc and its JUnit tests run on the JVM,
every vector of tests/policy_vectors.json and tests/resize_vectors.json included; a small tool in its test sources
then runs the app's own loaders, preprocessing and policy on bundles, images and timings that Python wrote, and the
results are compared with Python's.
Swift: every Swift file, the app's included, must parse with tree-sitter-swift, and the XCTest file must run the
whole vectors file (tests/test_swift.py builds and runs the Swift libraries' XCTests on Linux). Neither app may name
a sub-network: everything comes from the manifest.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import statistics
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ondevice.contract.manifest import new_manifest, save_manifest
from ondevice.policy import DeviceState, Policy, PolicyConfig, PolicySession, write_policy_json
from ondevice.policy.config import BatteryTier
from ondevice.policy.example import EXAMPLE_DEVICE, example_manifest, write_example_bundle

ROOT = Path(__file__).resolve().parents[1]
ANDROID = ROOT / "android_demo"
KOTLIN_MODULE = ANDROID / "policy"
IOS = ROOT / "ios_demo"
VECTORS = ROOT / "tests" / "policy_vectors.json"
RESIZE_VECTORS = ROOT / "tests" / "resize_vectors.json"

KOTLIN_INSTALL = "npm install -g kotlin-compiler@2.4.20 && apt-get update && apt-get install -y junit5"
JUNIT_DIR = Path("/usr/share/java")
JUNIT_CONSOLE = JUNIT_DIR / "junit-platform-console-standalone.jar"
# What the tests compile against (the console launcher brings the engines at run time, Debian's Class-Path)
JUNIT_COMPILE = ("junit-jupiter-api.jar", "opentest4j.jar", "junit-platform-commons.jar", "apiguardian-api.jar")
TOOL = "org.ondevice.tools.ParityToolKt"


def _missing(what: str, install: str) -> None:
    """CI installs the toolchains (.ci/run), so there a missing one fails; elsewhere the test is skipped."""
    message = f"{what} not found; install it with: {install}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _find_kotlinc() -> Path | None:
    """$KOTLINC, kotlinc on PATH, or the npm package's bin/kotlinc (npm links only kotlinc-js onto PATH)."""
    for candidate in (os.environ.get("KOTLINC"), shutil.which("kotlinc")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    npm = shutil.which("npm")
    if npm is None:
        return None
    root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60).stdout.strip()
    candidate = Path(root) / "kotlin-compiler" / "bin" / "kotlinc"
    return candidate if root and candidate.is_file() else None


@pytest.fixture(scope="module")
def kotlin(tmp_path_factory) -> dict[str, Path]:
    """android_demo/policy compiled (main + test sources) into one jar, with the runtime jars to run it."""
    kotlinc = _find_kotlinc()
    if kotlinc is None:
        _missing("kotlinc", KOTLIN_INSTALL)
    if shutil.which("java") is None:
        _missing("java", "apt-get install -y default-jdk-headless")
    jars = [JUNIT_DIR / name for name in JUNIT_COMPILE]
    if not JUNIT_CONSOLE.is_file() or not all(j.is_file() for j in jars):
        _missing(f"the JUnit 5 jars in {JUNIT_DIR}", KOTLIN_INSTALL)
    stdlib = kotlinc.resolve().parent.parent / "lib" / "kotlin-stdlib.jar"
    assert stdlib.is_file(), f"{stdlib} missing: the kotlin-compiler package is incomplete"
    sources = sorted(str(p) for p in KOTLIN_MODULE.rglob("*.kt"))
    out = tmp_path_factory.mktemp("kotlin") / "policy.jar"
    cmd = [str(kotlinc), *sources, "-cp", os.pathsep.join(map(str, jars)), "-d", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and out.is_file(), f"kotlinc failed:\n{done.stdout}\n{done.stderr}"
    return {"jar": out, "stdlib": stdlib}


def _display_name(testcase: ET.Element) -> str:
    """A test's display name: the legacy XML report keeps it in system-out (dynamic tests are named "cases()[3]")."""
    out = testcase.findtext("system-out") or ""
    match = re.search(r"^display-name: (.*)$", out, re.M)
    return match.group(1).strip() if match else testcase.get("name", "")


def _run_junit(
    kotlin: dict[str, Path], vectors: Path, reports: Path, resize_vectors: Path = RESIZE_VECTORS
) -> tuple[subprocess.CompletedProcess, list]:
    """Every JUnit test of the module, with these policy and resize vectors files; returns the run and its cases."""
    classpath = os.pathsep.join(str(kotlin[k]) for k in ("jar", "stdlib"))
    cmd = [
        "java",
        f"-Dondevice.vectors={vectors}",
        f"-Dondevice.resize_vectors={resize_vectors}",
        "-jar",
        str(JUNIT_CONSOLE),
        "--class-path",
        classpath,
        "--scan-class-path",
        "--disable-banner",
        "--details=summary",
        "--reports-dir",
        str(reports),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    report = reports / "TEST-junit-jupiter.xml"
    assert report.is_file(), f"no JUnit report:\n{done.stdout}\n{done.stderr}"
    return done, ET.parse(report).getroot().findall(".//testcase")


def _tool(kotlin: dict[str, Path], *args: str | Path) -> str:
    classpath = os.pathsep.join(str(kotlin[k]) for k in ("jar", "stdlib"))
    done = subprocess.run(
        ["java", "-cp", classpath, TOOL, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"ParityTool {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def vectors() -> dict:
    return json.loads(VECTORS.read_text())


@pytest.fixture(scope="module")
def resize_vectors() -> dict:
    return json.loads(RESIZE_VECTORS.read_text())


def _failed(cases: list) -> list[str]:
    return [_display_name(c) for c in cases if c.find("failure") is not None or c.find("error") is not None]


# ---------------------------------------------------------------------------------------------------
# Kotlin


def test_kotlin_policy_passes_every_vector_on_the_jvm(kotlin, vectors, resize_vectors, tmp_path):
    done, cases = _run_junit(kotlin, VECTORS, tmp_path)
    failed = _failed(cases)
    skipped = [_display_name(c) for c in cases if c.find("skipped") is not None]
    assert done.returncode == 0 and not failed and not skipped, f"{failed or skipped}\n{done.stdout[-4000:]}"
    names = [_display_name(c) for c in cases]
    # one dynamic test per vector: every case, every table variant, every Android reading
    assert sorted(n.removeprefix("case: ") for n in names if n.startswith("case: ")) == sorted(
        c["name"] for c in vectors["cases"]
    )
    assert sum(n.startswith("table selection: ") for n in names) == len(vectors["table_selection"])
    android = [r for r in vectors["normalization"] if r["platform"] == "android"]
    assert sum(n.startswith("android normalization ") for n in names) == len(android) > 0
    assert sum(n.startswith("table for ") for n in names) == 1
    # the thermal section: its table (with a front per measured level) and every one of its cases
    assert vectors["thermal"] and vectors["table"]["thermal"] == [] and vectors["thermal"]["table"]["thermal"]
    assert sum(n.startswith("thermal table for ") for n in names) == 1
    assert sorted(n.removeprefix("thermal case: ") for n in names if n.startswith("thermal case: ")) == sorted(
        c["name"] for c in vectors["thermal"]["cases"]
    )
    assert sorted(n.removeprefix("resize: ") for n in names if n.startswith("resize: ")) == sorted(
        c["name"] for c in resize_vectors["cases"]
    )
    assert len(names) > len(vectors["cases"]) + 20  # and the JSON, config, bundle and policy unit tests


def test_kotlin_tests_catch_a_wrong_vector(kotlin, vectors, tmp_path):
    """The JUnit harness compares for real: one wrong expectation in the file is one failing case."""
    tampered = copy.deepcopy(vectors)
    case = tampered["cases"][-1]
    expect = case["steps"][-1]["expect"]
    expect["cap_ms"] = float(np.nextafter(expect["cap_ms"], np.inf))  # one ulp: numbers are compared bit for bit
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(tampered))
    done, cases = _run_junit(kotlin, path, tmp_path / "reports")
    assert done.returncode != 0 and _failed(cases) == [f"case: {case['name']}"]


def _tamper_table_level(v: dict) -> str:
    case = v["cases"][0]
    case["steps"][0]["expect"]["table_level"] = 1  # no thermal tables in the main manifest: 0 at every level
    return f"case: {case['name']}"


def _tamper_thermal_case_table_level(v: dict) -> str:
    case = v["thermal"]["cases"][-1]  # a choice made cool, replaced when a hotter table ranks it behind another
    step = next(s for s in case["steps"] if s["expect"]["table_level"] == 3)
    step["expect"]["table_level"] = 2
    return f"thermal case: {case['name']}"


def _tamper_thermal_case_switched(v: dict) -> str:
    case = v["thermal"]["cases"][-1]
    step = next(s for s in case["steps"] if s["expect"]["switched"] and s["expect"]["table_level"])
    step["expect"]["switched"] = False  # the replacement counts as a switch
    return f"thermal case: {case['name']}"


def _tamper_thermal_case_cap(v: dict) -> str:
    case = next(c for c in v["thermal"]["cases"] if c["steps"][-1]["expect"]["table_level"] > 0)
    expect = case["steps"][-1]["expect"]
    expect["latency_cap_ms"] = float(np.nextafter(expect["latency_cap_ms"], 0))  # the slowdown division, one ulp
    return f"thermal case: {case['name']}"


def _tamper_thermal_front(v: dict) -> str:
    table = v["thermal"]["table"]
    hot = table["thermal"][-1]
    hot["front"] = hot["front"][:-1]
    return f"thermal table for {table['device']}"


def _tamper_thermal_latency(v: dict) -> str:
    table = v["thermal"]["table"]
    row = table["thermal"][0]["candidates"][0]
    row["latency_ms"] = float(np.nextafter(row["latency_ms"], np.inf))
    return f"thermal table for {table['device']}"


def _tamper_thermal_level(v: dict) -> str:
    table = v["thermal"]["table"]
    table["thermal"][0]["level"] += 1
    return f"thermal table for {table['device']}"


@pytest.mark.parametrize(
    "tamper",
    [
        _tamper_table_level,
        _tamper_thermal_case_table_level,
        _tamper_thermal_case_switched,
        _tamper_thermal_case_cap,
        _tamper_thermal_front,
        _tamper_thermal_latency,
        _tamper_thermal_level,
    ],
    ids=lambda f: f.__name__.removeprefix("_tamper_"),
)
def test_kotlin_tests_catch_a_wrong_thermal_expectation(kotlin, vectors, tmp_path, tamper):
    """table_level, the per-level fronts of the thermal tables and the thermal section's cases are compared for real:
    one wrong expectation is one failing test."""
    tampered = copy.deepcopy(vectors)
    failing = tamper(tampered)
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(tampered))
    done, cases = _run_junit(kotlin, path, tmp_path / "reports")
    assert done.returncode != 0 and _failed(cases) == [failing]


def test_kotlin_tests_catch_a_wrong_resize_vector(kotlin, resize_vectors, tmp_path):
    """One resized value moved by twice the tolerance fails exactly that case."""
    tampered = copy.deepcopy(resize_vectors)
    case = tampered["cases"][0]
    case["resized"][5] += 2 * tampered["tolerance"]
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(tampered))
    done, cases = _run_junit(kotlin, VECTORS, tmp_path / "reports", resize_vectors=path)
    assert done.returncode != 0 and _failed(cases) == [f"resize: {case['name']}"]


def test_resize_vectors_are_what_training_resizes_today(resize_vectors):
    """tests/resize_vectors.json regenerated from ondevice.data's resize: a drift fails until the file is rewritten."""
    from make_resize_vectors import COMMAND, generate, to_text

    regenerated = generate()
    assert resize_vectors == json.loads(to_text(regenerated)), f"training's resize drifted: run `{COMMAND}`"
    assert RESIZE_VECTORS.stat().st_size < 50_000
    cases = regenerated["cases"]
    sizes = [(c["height"], c["width"], c["out_height"], c["out_width"]) for c in cases]
    assert {c["channels"] for c in cases} == {1, 3}
    assert any(h > oh and w > ow and h % oh and w % ow and h != w for h, w, oh, ow in sizes)  # non-integer factors
    assert any(h < oh and w < ow for h, w, oh, ow in sizes) and any((h, w) == (oh, ow) for h, w, oh, ow in sizes)
    plain = [  # the file tells antialiased from plain bilinear: the test could not pass a resize without it
        torch.nn.functional.interpolate(
            torch.tensor(c["pixels"], dtype=torch.float32).view(c["height"], c["width"], -1).permute(2, 0, 1)[None]
            / 255,
            size=(c["out_height"], c["out_width"]),
            mode="bilinear",
            align_corners=False,
        )
        for c in cases
    ]
    worst = max(float((p.reshape(-1) - torch.tensor(c["resized"])).abs().max()) for p, c in zip(plain, cases))
    assert worst > 100 * resize_vectors["tolerance"]


def _changed_config() -> PolicyConfig:
    """The default policy.json with other battery-tier and headroom thresholds and an accuracy slack (0.3 points:
    FFFT, 0.2 points below FFFF, then stands in for it)."""
    default = PolicyConfig()
    return replace(
        default,
        battery=replace(default.battery, tiers=(BatteryTier(0.35, 0.6), BatteryTier(0.6, 0.8))),
        thermal=replace(default.thermal, headroom_thresholds=(0.7, 0.85, 0.95, 1.02)),
        accuracy=replace(default.accuracy, slack=0.003),
    )


def _python_decisions(bundle: Path, cases: list[dict]) -> list[list[dict]]:
    policy = Policy.from_bundle(bundle, device=EXAMPLE_DEVICE)  # reads bundle/policy.json
    out = []
    for case in cases:
        session = PolicySession(policy)
        steps = []
        for step in case["steps"]:
            d = session.decide(DeviceState.from_json(step["state"]), step["t_s"])
            steps.append(
                {
                    "gates": d.gates,
                    "target": d.target,
                    "level": d.level,
                    "switched": d.switched,
                    "energy": d.energy,
                    "cap_ms": d.cap_ms,
                }
            )
        out.append(steps)
    return out


def test_a_changed_threshold_in_policy_json_changes_python_and_kotlin_identically(kotlin, vectors, tmp_path):
    cases = [
        {"name": c["name"], "steps": [{"t_s": s["t_s"], "state": s["state"]} for s in c["steps"]]}
        for c in vectors["cases"]
    ]
    cases_file = tmp_path / "cases.json"
    cases_file.write_text(json.dumps(cases))
    results = {}
    for name, config in (("default", PolicyConfig()), ("changed", _changed_config())):
        bundle = write_example_bundle(tmp_path / name, config)  # manifest.json + policy.json, as the app reads them
        python = _python_decisions(bundle, cases)
        kotlin_out = json.loads(_tool(kotlin, "decide", bundle, cases_file, EXAMPLE_DEVICE))
        assert [c["name"] for c in kotlin_out] == [c["name"] for c in cases]
        for case, py_steps, kt in zip(cases, python, kotlin_out):
            assert kt["steps"] == py_steps, f"{name} policy.json, case {case['name']!r}: Kotlin differs from Python"
        results[name] = python
    changed = sum(
        a["gates"] != b["gates"] for ca, cb in zip(results["default"], results["changed"]) for a, b in zip(ca, cb)
    )
    assert changed >= 5, "the changed thresholds should change some choices, or this test shows nothing"


def _tiny_manifest(channels: int, height: int = 5, width: int = 7) -> dict:
    manifest = example_manifest()
    imagenet_mean, imagenet_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    fresh = new_manifest(
        model_name="tiny",
        class_names=["a", "b"],
        input_shape=(1, channels, height, width),
        mean=imagenet_mean[:channels],
        std=imagenet_std[:channels],
        num_stages=manifest["gates"]["num_stages"],
        subnets=manifest["subnets"],
    )
    fresh["formats"]["executorch"] = {  # the entry ondevice.export.executorch.export_executorch returns
        "file": "model.pte",
        "method": "forward",
        "inputs": ["image", "gates"],
        "gates_input": {
            "dtype": "int32",
            "shape": [manifest["gates"]["num_stages"]],
            "values": "1 = skip the stage's skippable sub-path, 0 = run",
        },
        "backend": "xnnpack",
        "size_bytes": 1,
    }
    return fresh


def _kotlin_normalize(kotlin: dict[str, Path], tmp_path: Path, rgb: np.ndarray) -> np.ndarray:
    """The app's preprocessing (ImageNormalizer, manifest.json in tmp_path) of an RGB image, as packed ARGB."""
    argb = [int(0xFF << 24 | r << 16 | g << 8 | b) - (1 << 32) for r, g, b in rgb.reshape(-1, 3).tolist()]
    (tmp_path / "pixels.json").write_text(json.dumps(argb))
    h, w = rgb.shape[:2]
    out = _tool(kotlin, "normalize", tmp_path / "manifest.json", tmp_path / "pixels.json", w, h)
    return np.array(json.loads(out))


@pytest.mark.parametrize("channels", [3, 1])
def test_kotlin_preprocessing_equals_torch_bit_for_bit(kotlin, tmp_path, channels):
    """Packed ARGB (Android's Bitmap.getPixels) -> normalized NCHW, as training did it (RGB, or PIL's L)."""
    from PIL import Image

    manifest = _tiny_manifest(channels)
    save_manifest(tmp_path / "manifest.json", manifest)
    _, _, h, w = manifest["input"]["shape"]
    rgb = np.random.default_rng(channels).integers(0, 256, (h, w, 3), dtype=np.uint8)
    got = _kotlin_normalize(kotlin, tmp_path, rgb)

    pixels = np.asarray(Image.fromarray(rgb, "RGB").convert("RGB" if channels == 3 else "L"), dtype=np.uint8)
    x = torch.from_numpy(pixels.copy()).float().div_(255)
    x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
    mean = torch.tensor(manifest["input"]["mean"]).view(-1, 1, 1)
    std = torch.tensor(manifest["input"]["std"]).view(-1, 1, 1)
    expected = ((x - mean) / std).reshape(-1).numpy()
    assert got.dtype == np.float64 and got.shape == expected.shape
    np.testing.assert_array_equal(got.astype(np.float32), expected)


@pytest.mark.parametrize("channels", [3, 1])
def test_kotlin_preprocessing_of_a_larger_photo_equals_training(kotlin, tmp_path, channels):
    """A decoded image larger than the model: the app's path equals ondevice.data's (PIL convert, x / 255,
    antialiased resize, clamp), then normalization, within resize_vectors.json's tolerance."""
    from PIL import Image

    from ondevice.data import _pixels, _resize

    manifest = _tiny_manifest(channels, 6, 6)
    save_manifest(tmp_path / "manifest.json", manifest)
    rgb = np.random.default_rng(10 + channels).integers(0, 256, (41, 29, 3), dtype=np.uint8)
    got = _kotlin_normalize(kotlin, tmp_path, rgb)

    x = _resize(_pixels(Image.fromarray(rgb, "RGB"), "RGB" if channels == 3 else "L").unsqueeze(0), 6)[0]
    mean = torch.tensor(manifest["input"]["mean"]).view(-1, 1, 1)
    std = torch.tensor(manifest["input"]["std"]).view(-1, 1, 1)
    expected = ((x - mean) / std).reshape(-1).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=json.loads(RESIZE_VECTORS.read_text())["tolerance"])


def test_kotlin_latency_file_merges_into_the_bundle_and_the_policy_uses_it(kotlin, tmp_path):
    from ondevice.contract.schemas import load_schema
    from ondevice.profile import _percentile, merge_latency

    jsonschema = pytest.importorskip("jsonschema")
    bundle = write_example_bundle(tmp_path / "bundle")
    gates = [s["gates"] for s in example_manifest()["subnets"]]
    rng = np.random.default_rng(0)
    samples = {g: [float(v) for v in rng.gamma(9.0, 2.0 + i, size=23 + i % 2)] for i, g in enumerate(gates)}
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    device = "Google Pixel 8"
    _tool(kotlin, "latency", tmp_path / "latency.json", device, "vit_b_16_adn", tmp_path / "samples.json")

    data = json.loads((tmp_path / "latency.json").read_text())
    jsonschema.validate(data, load_schema("latency"))
    for g, values in samples.items():  # the same statistics as `ondevice profile`, rounded the same way
        assert data["subnets"][g] == {
            "median_ms": round(statistics.median(values), 4),
            "p90_ms": round(_percentile(values, 0.9), 4),
            "min_ms": round(min(values), 4),
        }
    manifest = merge_latency(bundle, tmp_path / "latency.json")
    assert manifest["latency"][device]["source"] == "app"
    policy = Policy.from_bundle(bundle, device=device)
    assert policy.table.source.kind == "device" and policy.table.source.device == device


def _stats(values: list[float]) -> dict[str, float]:
    from ondevice.profile import _percentile

    return {
        "median_ms": round(statistics.median(values), 4),
        "p90_ms": round(_percentile(values, 0.9), 4),
        "min_ms": round(min(values), 4),
    }


def test_kotlin_latency_file_per_thermal_status_merges_and_the_policy_ranks_with_it(kotlin, tmp_path):
    """Rounds timed at NONE, LIGHT (too few) and SEVERE, as the benchmark records them -> the app's grouping and writer
    -> latency.json with a "severe" table, which the schema accepts, `merge_latency` keeps and the Python policy then
    ranks with at SEVERE and above (table_level 3), and not below."""
    from ondevice.contract.schemas import load_schema
    from ondevice.policy.engine.table import monotone_latency
    from ondevice.profile import merge_latency

    jsonschema = pytest.importorskip("jsonschema")
    bundle = write_example_bundle(tmp_path / "bundle")
    gates = [s["gates"] for s in example_manifest()["subnets"]]
    rng = np.random.default_rng(2)
    # the cool times, and at SEVERE 1.6x with FFFT throttled more than FFFF (so that the hot front differs)
    base = {g: 120.0 + 15.0 * i for i, g in enumerate(sorted(gates, key=lambda g: g.count("F")))}
    statuses = [0] * 12 + [1] * 6 + [3] * 25 + [0] * 10  # the phone heats up, then cools down again
    rounds = []
    for status in statuses:
        scale = {0: 1.0, 1: 1.1, 3: 1.6}[status]
        samples = {}
        for g in gates:
            extra = 1.3 if status == 3 and g == "FFFT" else 1.0
            samples[g] = float(base[g] * scale * extra * rng.gamma(50.0, 1 / 50.0))
        rounds.append({"status": status, "samples": samples})
    (tmp_path / "rounds.json").write_text(json.dumps(rounds))
    device = "Google Pixel 8"
    note = _tool(kotlin, "rounds", tmp_path / "latency.json", device, "vit_b_16_adn", tmp_path / "rounds.json")

    data = json.loads((tmp_path / "latency.json").read_text())
    jsonschema.validate(data, load_schema("latency"))
    at = {s: [r["samples"] for r in rounds if r["status"] == s] for s in (0, 1, 3)}
    assert data["runs"] == 22 and data["subnets"] == {g: _stats([r[g] for r in at[0]]) for g in gates}
    assert data["thermal"] == {"severe": {"runs": 25, "subnets": {g: _stats([r[g] for r in at[3]]) for g in gates}}}
    assert "cool table: 22 rounds at NONE" in note and "severe: 25 rounds" in note and "dropped light (6)" in note

    table = merge_latency(bundle, tmp_path / "latency.json")["latency"][device]
    assert table["thermal"] == data["thermal"] and table["runs"] == 22
    policy = Policy.from_bundle(bundle, device=device)
    assert [hot.level for hot in policy.table.thermal] == [3]
    severe = monotone_latency({g: e["p90_ms"] for g, e in data["thermal"]["severe"]["subnets"].items()})
    assert {s.gates: s.latency_ms for s in policy.table.thermal[0].candidates} == severe
    assert policy.front_at(3) != policy.front  # FFFT, throttled more, drops off the hot front
    for level, expected in ((0, 0), (2, 0), (3, 3), (4, 3), (6, 3)):
        state = DeviceState(battery=1.0, charging=True, thermal=level, latency_budget_ms=1000.0)
        decision, _ = policy.decide(state, 0.0)
        assert decision.table_level == expected, level
        assert policy.front_at(level) == (policy.front if expected == 0 else policy.front_at(3))


def _readings(rng, seconds: float, current_ua: float, volts_mv: int, counter_nwh_per_s: int | None, start_ms: int):
    """Battery readings every 100 ms as the app takes them: [time_ms, current_ua, voltage_mv, energy_nwh]. The current's
    sign flips at random (vendors differ) around a noisy magnitude; the counter, when given, steps once a second."""
    rows = []
    for i in range(int(seconds * 10) + 1):
        magnitude = int(current_ua * (1 + 0.05 * rng.standard_normal()))
        counter = None if counter_nwh_per_s is None else 90_000_000_000 - counter_nwh_per_s * ((i + 4) // 10)
        rows.append([start_ms + 100 * i, magnitude * int(rng.choice([-1, 1])), volts_mv, counter])
    return rows


def _python_power(idle: list, busy: list, method: str) -> dict[str, float]:
    """The numbers the app should write, worked out here from the same readings (before rounding)."""

    def window(rows):
        if method == "current-voltage":
            t = [r[0] for r in rows]
            return float(np.mean([abs(r[1]) * r[2] * 1e-9 for r in rows])), (t[-1] - t[0]) / 1000
        steps = [i for i in range(1, len(rows)) if rows[i][3] != rows[i - 1][3]]
        first, last = rows[steps[0]], rows[steps[-1]]
        ms = last[0] - first[0]
        return (first[3] - last[3]) * 3.6e-3 / ms, ms / 1000

    (idle_w, idle_s), (busy_w, busy_s) = window(idle), window(busy)
    return {
        "idle_w": idle_w,
        "busy_w": busy_w,
        "active_w": max(0.0, busy_w - idle_w),
        "idle_s": idle_s,
        "busy_s": busy_s,
    }


@pytest.mark.parametrize("method", ["current-voltage", "energy-counter"])
def test_kotlin_power_in_the_latency_file_validates_and_merges(kotlin, tmp_path, method):
    """Readings as the app takes them -> the app's estimator and writer -> latency.json with "power", which the
    schema accepts and `ondevice profile --merge` keeps; the watts are the ones worked out here from the readings."""
    from ondevice.contract.schemas import load_schema
    from ondevice.profile import merge_latency

    jsonschema = pytest.importorskip("jsonschema")
    bundle = write_example_bundle(tmp_path / "bundle")
    manifest = example_manifest()
    gates = [s["gates"] for s in manifest["subnets"]]
    super_net = "F" * manifest["gates"]["num_stages"]
    rng = np.random.default_rng(1)
    counter = method == "energy-counter"
    # ~1.95 W idle (500 mA at 3.9 V; the counter: 0.5 mWh a second = 1.8 W), ~4.7 W busy (1.3 mWh a second = 4.68 W)
    idle = _readings(rng, 10, 500_000, 3_900, 500_000 if counter else None, 1_000)
    busy = _readings(rng, 20, 1_200_000, 3_850, 1_300_000 if counter else None, 12_000)
    power_file = tmp_path / "power.json"
    power_file.write_text(json.dumps({"gates": super_net, "idle": idle, "busy": busy}))
    (tmp_path / "samples.json").write_text(json.dumps({g: [1.0 + i, 2.0 + i] for i, g in enumerate(gates)}))
    device = "Google Pixel 8"
    args = (tmp_path / "latency.json", device, "vit_b_16_adn", tmp_path / "samples.json", power_file)
    assert _tool(kotlin, "latency", *args) == ""

    data = json.loads((tmp_path / "latency.json").read_text())
    jsonschema.validate(data, load_schema("latency"))
    power = data["power"]
    assert list(power) == ["method", "idle_w", "busy_w", "active_w", "idle_s", "busy_s", "samples", "gates"]
    assert power["method"] == method and power["gates"] == super_net and power["samples"] == len(idle) + len(busy)
    expected = _python_power(idle, busy, method)
    for key, value in expected.items():
        assert power[key] == pytest.approx(value, abs=0.5e-4 + 1e-12), key  # written rounded to 4 decimals
        assert power[key] == round(power[key], 4)
    if counter:
        assert (power["idle_w"], power["busy_w"], power["active_w"]) == (1.8, 4.68, 2.88)
    else:
        assert 1.8 < power["idle_w"] < 2.1 and 4.3 < power["busy_w"] < 4.9
    table = merge_latency(bundle, tmp_path / "latency.json")["latency"][device]
    assert table["power"] == power


def test_kotlin_writes_no_power_when_the_readings_give_none(kotlin, tmp_path):
    """No voltage (and no energy counter): the file has no "power", and the tool says why."""
    gates = [s["gates"] for s in example_manifest()["subnets"]]
    rows = [[100 * i, 500_000, None, None] for i in range(20)]
    power_file = tmp_path / "power.json"
    power_file.write_text(json.dumps({"gates": gates[0], "idle": rows, "busy": rows}))
    (tmp_path / "samples.json").write_text(json.dumps({g: [1.0] for g in gates}))
    out = _tool(kotlin, "latency", tmp_path / "latency.json", "Phone", "m", tmp_path / "samples.json", power_file)
    assert out.startswith("refused NO_CURRENT_OR_VOLTAGE")
    assert "power" not in json.loads((tmp_path / "latency.json").read_text())


# ---------------------------------------------------------------------------------------------------
# Swift


def _swift_parser():
    try:
        import tree_sitter_swift
        from tree_sitter import Language, Parser
    except ImportError:
        _missing("tree-sitter / tree-sitter-swift", "pip install -e '.[test]'")
    return Parser(Language(tree_sitter_swift.language()))


def _swift_files() -> list[Path]:
    files = sorted(IOS.rglob("*.swift"))
    assert files, f"no Swift files under {IOS}"
    return files


def _syntax_errors(node) -> list[str]:
    found = []
    if node.type == "ERROR" or node.is_missing:
        kind = "missing " + node.type if node.is_missing else "syntax error"
        found.append(f"{kind} at line {node.start_point[0] + 1}: {node.text[:60]!r}")
    for child in node.children:
        found += _syntax_errors(child)
    return found


def test_every_swift_file_parses():
    parser = _swift_parser()
    layout = {
        p.relative_to(IOS).parts[0] if p.parent == IOS else "/".join(p.relative_to(IOS).parts[:2])
        for p in _swift_files()
    }
    assert {"Package.swift", "Sources/Policy", "Sources/Model", "Sources/App", "Tests/PolicyTests"} <= layout
    problems = {
        str(p.relative_to(ROOT)): errs
        for p in _swift_files()
        if (errs := _syntax_errors(parser.parse(p.read_bytes()).root_node))
    }
    assert not problems, problems


def _nodes(node, kind: str) -> list:
    found = [node] if node.type == kind else []
    for child in node.children:
        found += _nodes(child, kind)
    return found


def test_the_xctest_runs_every_vector_from_the_file(vectors):
    path = IOS / "Tests" / "PolicyTests" / "PolicyVectorsTests.swift"
    tree = _swift_parser().parse(path.read_bytes())
    loops = set()
    for loop in _nodes(tree.root_node, "for_statement"):
        kinds = [child.type for child in loop.children]
        loops.add(loop.children[kinds.index("in") + 1].text.decode())  # what the loop runs over
    assert {"vectors.cases", "testCase.steps.enumerated()", "vectors.tableSelection", "rows"} <= loops, loops
    text = path.read_text()
    assert "tests/policy_vectors.json" in text and "ONDEVICE_VECTORS" in text
    assert "vectors.cases.map(\\.steps.count).reduce(0, +)" in text  # it counts the steps it checked
    literals = {s.text.decode().strip('"') for s in _nodes(tree.root_node, "line_string_literal")}
    hard_coded = sorted(literals & {c["name"] for c in vectors["cases"]})
    assert not hard_coded, f"the XCTest names cases instead of reading them all: {hard_coded}"
    expect_keys = set(vectors["cases"][0]["steps"][0]["expect"])
    state_keys = set(vectors["cases"][0]["steps"][0]["state"])
    missing = [k for k in sorted(expect_keys | state_keys) if not re.search(rf'\b{k}\b|"{k}"', text)]
    assert not missing, f"the XCTest does not decode {missing}"


# ---------------------------------------------------------------------------------------------------
# Both apps


def _app_sources() -> list[Path]:
    """What ships in the apps (tests may name sub-networks; the apps may not)."""
    roots = [ANDROID / "app" / "src" / "main", KOTLIN_MODULE / "src" / "main", IOS / "Sources"]
    files = [p for root in roots for p in sorted(root.rglob("*")) if p.suffix in (".kt", ".swift", ".xml")]
    assert len(files) > 10
    return files


_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _code(text: str) -> str:
    """Kotlin/Swift source without comments (docs may show "TFFT" as an example; code may not)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = []
    for line in text.splitlines():
        cut = next((m.start() for m in re.finditer("//", line) if line[: m.start()].count('"') % 2 == 0), None)
        lines.append(line if cut is None else line[:cut])
    return "\n".join(lines)


def test_no_sub_network_input_size_or_statistics_is_hard_coded():
    problems = []
    for path in _app_sources():
        text = (
            _code(path.read_text())
            if path.suffix != ".xml"
            else re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
        )
        for literal in _STRING.findall(text):
            body = literal[1:-1]
            if re.fullmatch(r"[TF]{2,}", body) or "subnet_" in body:
                problems.append(f"{path.relative_to(ROOT)}: {literal}")
        code = _STRING.sub('""', text)
        for number in ("224", "0.485", "0.456", "0.406", "0.229", "0.224", "0.225"):
            if re.search(rf"(?<![\w.]){re.escape(number)}(?![\w.])", code):
                problems.append(f"{path.relative_to(ROOT)}: {number}")
    assert not problems, "the apps must read sub-networks, input size and statistics from the manifest: " + str(
        problems
    )


def test_the_kotlin_policy_module_is_plain_kotlin():
    files = sorted(KOTLIN_MODULE.rglob("*.kt"))
    assert files
    android_import = re.compile(r"^\s*import\s+(android|androidx)\.", re.M)
    android = [str(p.relative_to(ROOT)) for p in files if android_import.search(p.read_text())]
    assert not android, f"android imports in the plain-Kotlin module: {android}"
    build = (KOTLIN_MODULE / "build.gradle.kts").read_text()
    assert "libs.plugins.kotlin.jvm" in build and "com.android" not in build and "android {" not in build
    assert 'project(":policy")' in (ANDROID / "app" / "build.gradle.kts").read_text()


def test_the_policy_json_the_apps_read_is_the_one_python_writes(tmp_path):
    """The apps parse policy.json strictly, so the file must keep exactly the keys the readers list."""
    path = write_policy_json(tmp_path)
    data = json.loads(path.read_text())
    kotlin = (KOTLIN_MODULE / "src/main/kotlin/org/ondevice/policy/PolicyConfig.kt").read_text()
    swift = (IOS / "Sources" / "Policy" / "PolicyConfig.swift").read_text()
    for section, values in data.items():
        keys = [section] + (list(values) if isinstance(values, dict) else [])
        for key in keys:
            for name, source in (("Kotlin", kotlin), ("Swift", swift)):
                assert re.search(rf'"{key}"|\b{key}\b', source), f"{name} PolicyConfig does not read {key}"
