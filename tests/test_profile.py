"""``ondevice profile``: latency table into the manifest, plot, app latency files, ETDump operator breakdown."""

import json
import math
import shutil

import pytest
from test_export_executorch import tiny_model
from test_runtime import write_run

from ondevice.bundle import export_bundle
from ondevice.cli import main
from ondevice.contract.manifest import ManifestError, load_manifest
from ondevice.models import all_gates
from ondevice.policy import Policy
from ondevice.policy.config import PolicyConfig, load_policy_config, write_policy_json
from ondevice.profile import (
    device_name,
    format_latency_table,
    merge_latency,
    operator_breakdown,
    profile_bundle,
)

GATES = [str(g) for g in all_gates(3)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile")
    ckpt = write_run(root / "run", tiny_model())
    export_bundle(ckpt, root / "bundle", log=lambda _: None)
    return root / "bundle"


def test_profile_writes_latency_table_and_plot(bundle):
    result = profile_bundle(bundle, threads=1, runs=5, warmup=1, device="test host")
    manifest = load_manifest(bundle)
    table = manifest["latency"]["test host"]
    assert result["device"] == "test host" and table["threads"] == 1 and table["runs"] == 5
    assert "profile with --runs 20 or more" in table["warning"]  # 5 runs are too few for a p90
    for row in table["subnets"].values():
        lo, hi = row["median_ci95_ms"]
        assert lo <= row["median_ms"] <= hi
    assert table["backend"] == "xnnpack" and table["program_size_bytes"] == (bundle / "model.pte").stat().st_size
    assert sorted(table["subnets"]) == sorted(GATES)
    for row in table["subnets"].values():
        assert 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"]
    assert table["peak_rss_delta_bytes"] > 0 and "VmHWM" in table["memory_note"]
    assert (bundle / "latency.png").stat().st_size > 1000
    text = format_latency_table(manifest, "test host")
    assert all(g in text for g in GATES) and "super-net" in text


def test_default_device_name_names_host_and_cpu():
    name = device_name()
    assert "cores)" in name and "(" in name


def _phone(**overrides):
    data = {
        "format": "ondevice-latency",
        "version": 1,
        "device": "Pixel 8 (Tensor G3), Android 15",
        "model": "resnet20_adn",
        "backend": "xnnpack",
        "threads": 4,
        "runs": 50,
        "subnets": {g: {"median_ms": 1.0 + i, "p90_ms": 1.5 + i, "min_ms": 0.9 + i} for i, g in enumerate(GATES)},
    }
    data.update(overrides)
    return data


def test_merge_app_latency_file(bundle, tmp_path):
    phone = tmp_path / "phone.json"
    phone.write_text(json.dumps(_phone()))
    manifest = merge_latency(bundle, phone)
    table = manifest["latency"]["Pixel 8 (Tensor G3), Android 15"]
    assert table["source"] == "app" and table["threads"] == 4 and table["subnets"]["TTT"]["median_ms"] == 8.0
    assert "Pixel 8 (Tensor G3), Android 15" in load_manifest(bundle)["latency"]


def test_merge_keeps_the_thermal_tables_measured_on_the_phone(bundle, tmp_path):
    hot = {g: {"median_ms": 2.0 + i, "p90_ms": 2.5 + i, "min_ms": 1.9 + i} for i, g in enumerate(GATES)}
    phone = tmp_path / "phone.json"
    phone.write_text(json.dumps(_phone(thermal={"moderate": {"runs": 30, "subnets": hot}})))
    table = merge_latency(bundle, phone)["latency"]["Pixel 8 (Tensor G3), Android 15"]
    assert table["thermal"] == {"moderate": {"runs": 30, "subnets": hot}}
    phone.write_text(json.dumps(_phone(thermal={"moderate": {"runs": 30, "subnets": {"FFF": hot["FFF"]}}})))
    with pytest.raises(ManifestError, match="must time the same sub-networks"):
        merge_latency(bundle, phone)


POWER = {
    "method": "energy-counter",
    "idle_w": 1.2,
    "busy_w": 3.4,
    "active_w": 2.2,
    "idle_s": 10.0,
    "busy_s": 20.0,
    "samples": 300,
    "gates": "FFF",
}


def test_merge_keeps_the_power_measured_on_the_phone(bundle, tmp_path):
    phone = tmp_path / "phone.json"
    phone.write_text(json.dumps(_phone(power=POWER)))
    table = merge_latency(bundle, phone)["latency"]["Pixel 8 (Tensor G3), Android 15"]
    assert table["power"] == POWER


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_phone(format="other"), r"not an ondevice latency file at format"),
        (_phone(power={**POWER, "active_w": -0.1}), r"at power\.active_w"),
        (_phone(power={**POWER, "watts": 1.0}), r"at power\.watts: Additional properties"),
        (_phone(power={**POWER, "method": "guess"}), r"at power\.method"),
        (_phone(subnets={"FFF": {"p90_ms": 1.0}}), r"'median_ms' is a required property"),
        (_phone(subnets={"FFFF": {"median_ms": 1.0}}), r"names sub-networks \['FFFF'\]"),
        (_phone(model="mobilenetv2_adn"), r"measured on model 'mobilenetv2_adn', this bundle holds 'resnet20_adn'"),
        # the apps' JSON parsers refuse NaN and Infinity, so they may not enter the manifest
        (_phone(subnets={"FFF": {"median_ms": math.nan, "p90_ms": 1.0, "min_ms": 1.0}}), r"at subnets\.FFF\.median_ms"),
        (_phone(subnets={"FFF": {"median_ms": 1.0, "p90_ms": math.inf, "min_ms": 1.0}}), r"at subnets\.FFF\.p90_ms"),
        (json.dumps(_phone()).replace('"median_ms": 1.0,', '"median_ms": 1e309,', 1), r"at subnets\.FFF\.median_ms"),
    ],
)
def test_merge_rejects_bad_files(bundle, tmp_path, data, message):
    phone = tmp_path / "phone.json"
    phone.write_text(data if isinstance(data, str) else json.dumps(data))
    before = (bundle / "manifest.json").read_bytes()
    with pytest.raises(ManifestError, match=message):
        merge_latency(bundle, phone)
    assert (bundle / "manifest.json").read_bytes() == before


def test_operator_breakdown_from_etdump(bundle):
    ops = operator_breakdown(bundle, "FFF", runs=3)
    by_name = {(r["name"], r["delegated"]): r for r in ops["operators"]}
    conv = by_name[("Convolution (NHWC, F32) IGEMM", True)]
    assert conv["kind"] == "operator" and conv["calls_per_run"] >= 9 and conv["ms_per_run"] > 0
    groups = load_manifest(bundle)["formats"]["executorch"]["stage_groups"]
    assert by_name[("DELEGATE_CALL", False)]["calls_per_run"] == len(groups) == 2  # stages 0 and 1 share one
    portable = [r["name"] for r in ops["operators"] if r["name"].startswith("native_call_")]
    assert portable and all("conv" not in name for name in portable)
    assert ops["method_ms"] > 0


def test_cli_profile_and_merge(bundle, tmp_path, capsys):
    assert main(["profile", str(bundle), "--runs", "2", "--warmup", "0", "--threads", "1", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert "median ms" in out and '"subnets"' in out
    phone = tmp_path / "phone.json"
    phone.write_text(json.dumps(_phone(device="iPhone 15")))
    assert main(["profile", str(bundle), "--merge", str(phone)]) == 0
    assert "merged" in capsys.readouterr().out
    assert "iPhone 15" in load_manifest(bundle)["latency"]


def test_profile_records_a_thermal_table_beside_the_cool_one(bundle, monkeypatch):
    import ondevice.profile as profile

    with pytest.raises(ValueError, match="profile the device cool first"):
        profile_bundle(bundle, runs=2, warmup=0, threads=1, device="warm host", memory=False, thermal="severe")
    profile_bundle(bundle, runs=2, warmup=0, threads=1, device="warm host", memory=False)
    timed = profile.measure_latency
    slow = lambda *args, **kwargs: {  # noqa: E731 -- a run on a hot device, 3x the cool latency
        gates: {key: value * 3 if isinstance(value, float) else value for key, value in row.items()}
        for gates, row in timed(*args, **kwargs).items()
    }
    monkeypatch.setattr(profile, "measure_latency", slow)
    profile_bundle(bundle, runs=2, warmup=0, threads=1, device="warm host", memory=False, thermal="severe")
    table = load_manifest(bundle)["latency"]["warm host"]
    severe = table["thermal"]["severe"]
    assert severe["runs"] == 2 and sorted(severe["subnets"]) == sorted(table["subnets"]) == sorted(GATES)
    policy = Policy.from_bundle(bundle, device="warm host")
    assert [hot.level for hot in policy.table.thermal] == [3]
    assert policy.latency_at(3, policy.front_at(3)[-1]) > policy.latency_at(0, policy.front[-1])
    monkeypatch.setattr(profile, "measure_latency", timed)
    profile_bundle(bundle, runs=2, warmup=0, threads=1, device="warm host", memory=False)  # cool again
    assert load_manifest(bundle)["latency"]["warm host"]["thermal"] == {"severe": severe}  # the hot table stays


def test_re_export_keeps_the_phones_latency_and_the_users_policy(tmp_path):
    """A re-export of the same weights gives the same program: what was measured on it and the user's policy.json
    edits stay; other weights give another program, whose latency must be measured again."""
    ckpt = write_run(tmp_path / "run", tiny_model())
    bundle = tmp_path / "bundle"
    export_bundle(ckpt, bundle, log=lambda _: None)
    phone = tmp_path / "phone.json"
    phone.write_text(json.dumps(_phone()))
    merge_latency(bundle, phone)
    edited = PolicyConfig().with_hysteresis(min_dwell_up_s=45.0)
    write_policy_json(bundle, edited)
    manifest = export_bundle(ckpt, bundle, log=lambda _: None)
    assert list(manifest["latency"]) == ["Pixel 8 (Tensor G3), Android 15"]
    assert load_manifest(bundle)["latency"] == manifest["latency"]
    assert load_policy_config(bundle) == edited
    other = write_run(tmp_path / "other", tiny_model(seed=1))
    assert export_bundle(other, bundle, log=lambda _: None)["latency"] == {}
    assert load_policy_config(bundle) == edited


def test_a_full_disk_during_export_is_an_error_and_keeps_the_old_bundle(bundle, tmp_path, monkeypatch, capsys):
    """Root ignores read-only folders, so the failing write is simulated: ENOSPC from the last file written."""
    import errno

    import ondevice.bundle as bundle_module

    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bundle_module, "write_policy_json", disk_full)
    ckpt = load_manifest(bundle)["model"]["checkpoint"]
    assert main(["export", ckpt, "--out", str(target)]) == 2
    assert "ondevice export: error: [Errno 28] No space left on device" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no scratch folder left behind
