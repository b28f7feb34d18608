"""tests/policy_vectors.json is what the Python policy decides today: regenerate it and compare (a drift fails)."""

import copy
import json
from pathlib import Path

import pytest

from ondevice.cli import main
from ondevice.policy import PolicyConfig
from ondevice.policy.example import EXAMPLE_DEVICE, example_manifest
from ondevice.policy.vectors import check_vectors, generate_vectors

VECTORS = Path(__file__).parent / "policy_vectors.json"
COMMAND = "ondevice policy vectors --example --out tests/policy_vectors.json"


def _strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise ValueError(f"{path} holds {token}, which JSON parsers of the apps reject")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def recorded() -> dict:
    return _strict_json(VECTORS)


def test_checked_in_vectors_match_the_policy(recorded):
    regenerated = generate_vectors(
        example_manifest(), PolicyConfig(), EXAMPLE_DEVICE, COMMAND, example_manifest(thermal=True)["latency"]
    )
    assert recorded["generated_by"] == COMMAND
    assert recorded == json.loads(json.dumps(regenerated)), f"policy drifted: regenerate with `{COMMAND}`"


def test_vectors_replay_from_their_own_contents(recorded):
    assert check_vectors(recorded) == []


def test_a_changed_expectation_is_caught(recorded):
    tampered = copy.deepcopy(recorded)
    step = tampered["cases"][0]["steps"][0]["expect"]
    step["gates"] = "TTTT" if step["gates"] != "TTTT" else "FFFF"
    tampered["normalization"][0]["state"]["battery"] = 0.99
    problems = check_vectors(tampered)
    assert len(problems) == 2 and "case 'cool' step 0" in problems[1]


def test_vectors_are_self_contained(recorded):
    assert recorded["policy"]["policy_version"] == 1
    assert PolicyConfig.from_dict(recorded["policy"]) == PolicyConfig()
    assert {s["gates"] for s in recorded["manifest"]["subnets"]} == set(recorded["table"]["front"])
    for row in recorded["table"]["candidates"]:
        assert set(row) == {"gates", "latency_ms", "accuracy"}


def test_vectors_cover_unknowns_boundaries_and_hysteresis(recorded):
    states = [step["state"] for case in recorded["cases"] for step in case["steps"]]
    assert any(s["battery"] is None for s in states)
    assert any(s["thermal"] is None and s["headroom"] is None for s in states)
    assert any(s["thermal"] is not None and s["headroom"] is None for s in states)
    assert any(s["latency_budget_ms"] is None for s in states) and any(s["accuracy_floor"] is None for s in states)
    expects = [step["expect"] for case in recorded["cases"] for step in case["steps"]]
    assert any(e["below_floor"] for e in expects) and any(e["over_budget"] for e in expects)
    assert any(e["held"] for e in expects) and any(e["switched"] for e in expects)
    assert {e["level"] for e in expects} == set(range(7))
    names = {case["name"] for case in recorded["cases"]}
    for name in (
        "battery at tier 0 boundary",
        "budget equals latency 0",
        "headroom at threshold 1",
        "upgrade margin",
        "heat then cool",
        "noisy headroom",
        "clock goes backwards",
        "interrupted upgrade",
    ):
        assert name in names
    platforms = {row["platform"] for row in recorded["normalization"]}
    assert platforms == {"android", "ios"}
    kinds = {case["expect"]["source"]["kind"] for case in recorded["table_selection"]}
    assert kinds == {"device", "fallback-table", "flops-estimate"}


def _switches(recorded: dict, name: str) -> list[bool]:
    case = next(c for c in recorded["cases"] if c["name"] == name)
    return [step["expect"]["switched"] for step in case["steps"]]


def test_hysteresis_cases_do_what_their_names_say(recorded):
    assert sum(_switches(recorded, "noisy headroom")) == 1  # one downgrade, then held through the noise
    heat = _switches(recorded, "heat then cool")
    assert heat == [False, True, False, False, False, False, False, True, False]
    assert sum(_switches(recorded, "interrupted upgrade")) == 2
    assert _switches(recorded, "upgrade margin")[-1] is True and sum(_switches(recorded, "upgrade margin")) == 1


def test_vectors_command_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "v.json"
    assert main(["policy", "vectors", "--example", "--out", str(out)]) == 0
    assert main(["policy", "vectors", "--example", "--check", str(out)]) == 0
    data = json.loads(out.read_text())
    data["cases"][1]["steps"][0]["expect"]["gates"] = "XXXX"
    out.write_text(json.dumps(data))
    assert main(["policy", "vectors", "--example", "--check", str(out)]) == 1
    assert "problem" in capsys.readouterr().out


@pytest.mark.parametrize("content", ['{"a": 1}', "[1, 2]", '{"policy": 3}', "{not json"])
def test_check_of_a_file_of_another_shape_is_an_error(tmp_path, capsys, content):
    path = tmp_path / "v.json"
    path.write_text(content)
    assert main(["policy", "vectors", "--example", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ondevice policy: error:" in err and ("not a policy vectors file" in err or "as JSON" in err)
