"""The bundle contract's one validator: the shipped schemas, finite numbers, and rules named in words."""

from __future__ import annotations

import dataclasses
import math

import pytest
from policy_helpers import make_manifest

from ondevice.contract.manifest import ManifestError, validate_manifest
from ondevice.contract.schemas import first_violation, load_schema
from ondevice.policy import PolicyConfig
from ondevice.policy.config import BatteryTier


def test_policy_schema_and_policy_config_name_the_same_keys():
    """The schema the apps read and the dataclasses Python reads cannot drift apart."""
    schema = load_schema("policy")["properties"]
    config = PolicyConfig()
    for section in dataclasses.fields(config):
        fields = {f.name for f in dataclasses.fields(getattr(config, section.name))}
        assert set(schema[section.name]["properties"]) == fields
        assert set(schema[section.name]["required"]) == fields
    tier = schema["battery"]["properties"]["tiers"]["items"]
    assert set(tier["properties"]) == {f.name for f in dataclasses.fields(BatteryTier)}


def test_the_default_policy_is_valid_and_a_broken_one_is_located():
    data = PolicyConfig().to_dict()
    assert first_violation(data, "policy") is None
    data["battery"]["tiers"][1]["energy"] = 1.5
    problem = first_violation(data, "policy")
    assert (problem.kind, problem.where, problem.value, problem.rule) == (
        "value",
        "battery.tiers[1].energy",
        1.5,
        "must be in [0.0, 1.0]",
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_in_the_manifest(bad):
    """The apps' JSON parsers refuse NaN and Infinity, so a manifest may not hold them."""
    manifest = make_manifest([("FF", 0.9, 2.0), ("TT", 0.8, 1.0)])
    validate_manifest(manifest)
    manifest["subnets"][0]["accuracy"]["fp32"] = bad
    with pytest.raises(ManifestError, match=r"subnets\[0\]\.accuracy\.fp32"):
        validate_manifest(manifest)


def test_missing_and_unknown_keys_are_reported_by_path():
    manifest = make_manifest([("FF", 0.9, 2.0), ("TT", 0.8, 1.0)])
    del manifest["subnets"][1]["flops"]
    problem = first_violation(manifest, "manifest")
    assert (problem.kind, problem.where) == ("missing", "subnets[1].flops")
    manifest = make_manifest([("FF", 0.9, 2.0), ("TT", 0.8, 1.0)])
    manifest["input"]["colour"] = "rgb"
    problem = first_violation(manifest, "manifest")
    assert (problem.kind, problem.where, problem.value) == ("unknown", "input.colour", "rgb")


def test_a_sub_network_listed_twice_or_class_names_of_another_count_are_refused():
    manifest = make_manifest([("FF", 0.9, 2.0), ("TT", 0.8, 1.0)])
    manifest["subnets"].append(dict(manifest["subnets"][1]))
    with pytest.raises(ManifestError, match="lists sub-network TT twice"):
        validate_manifest(manifest)
    manifest = make_manifest([("FF", 0.9, 2.0), ("TT", 0.8, 1.0)])
    manifest["model"]["class_names"].append("extra")
    with pytest.raises(ManifestError, match="3 class names for num_classes 2"):
        validate_manifest(manifest)
