"""``ondevice policy decide|simulate|vectors|init|example``: the policy's command-line verbs.

``add_policy_parser`` adds them to the main parser; ``run_policy`` runs them. Heavy imports happen inside
the verbs so that ``ondevice --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_policy_parser", "run_policy"]


def add_policy_parser(verbs: Any) -> argparse.ArgumentParser:
    """Add ``policy`` and its actions to the main parser's subparsers."""
    policy = verbs.add_parser("policy", help="battery/thermal-aware choice of a sub-network: decide, simulate, vectors")
    policy.set_defaults(run=run_policy)
    actions = policy.add_subparsers(dest="policy_verb", required=True, metavar="ACTION")

    decide = actions.add_parser("decide", help="print the sub-network chosen for one device state, and why")
    decide.add_argument("bundle", help="bundle directory or its manifest.json")
    decide.add_argument("--device", default=None, help="latency table to use (default: the most recent)")
    decide.add_argument("--policy", default=None, help="policy.json (default: the bundle's, else the defaults)")
    decide.add_argument("--battery", default="unknown", help="fraction 0..1, a percentage like 15%%, or unknown")
    decide.add_argument("--charging", action=argparse.BooleanOptionalAction, default=None)
    decide.add_argument("--power-save", action=argparse.BooleanOptionalAction, default=None)
    decide.add_argument(
        "--thermal",
        default="unknown",
        help="Android status 0..6 or name (none .. shutdown), iOS name (nominal, fair, serious, critical), or unknown",
    )
    decide.add_argument("--headroom", type=float, default=None, help="Android thermal headroom (1.0 = SEVERE)")
    decide.add_argument("--budget-ms", type=float, default=None, help="latency budget (default: policy.json's)")
    decide.add_argument(
        "--floor",
        type=_floor,
        default=None,
        help="accuracy floor, a fraction 0..1 or a percentage like 81%% (default: policy.json's)",
    )
    decide.add_argument("--json", action="store_true", help="print the decision as JSON")

    simulate = actions.add_parser("simulate", help="simulate a phone session: super-net, base-net, greedy, policy")
    simulate.add_argument("bundle", help="bundle directory or its manifest.json")
    simulate.add_argument("--minutes", type=float, default=60.0)
    simulate.add_argument("--out", default="policy-sim", help="directory for simulation.json and simulation.png")
    simulate.add_argument("--device", default=None)
    simulate.add_argument("--policy", default=None, help="policy.json (default: the bundle's, else the defaults)")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--request-hz", type=float, default=None, help="requests per second")
    simulate.add_argument("--budget-ms", type=float, default=None, help="deadline per request")
    simulate.add_argument("--start-battery", type=float, default=None, help="battery at the start, 0..1")
    simulate.add_argument("--ambient-c", type=float, default=None, help="room temperature")
    what_if = simulate.add_mutually_exclusive_group()
    what_if.add_argument("--latency-scale", type=float, default=None, help="what-if: multiply the latency table")
    what_if.add_argument("--super-net-ms", type=float, default=None, help="what-if: scale so the super-net takes this")

    vectors = actions.add_parser("vectors", help="write policy_vectors.json (the apps' test vectors)")
    source = vectors.add_mutually_exclusive_group(required=True)
    source.add_argument("bundle", nargs="?", help="bundle directory or manifest.json")
    source.add_argument("--example", action="store_true", help="use the example manifest (ondevice.policy.example)")
    vectors.add_argument("--device", default=None)
    vectors.add_argument("--policy", default=None, help="policy.json (default: the bundle's, else the defaults)")
    vectors.add_argument("--out", default=None, help="where to write (default: print a summary only)")
    vectors.add_argument("--check", default=None, metavar="FILE", help="compare FILE with what the policy gives now")

    init = actions.add_parser("init", help="write the default policy.json into a bundle")
    init.add_argument("bundle", help="bundle directory")
    init.add_argument("--force", action="store_true", help="overwrite an existing policy.json")

    example = actions.add_parser("example", help="write the example bundle (manifest.json + policy.json, no model)")
    example.add_argument("out", help="directory")
    example.add_argument(
        "--thermal", action="store_true", help="add illustrative latency tables measured at MODERATE, SEVERE, CRITICAL"
    )
    return policy


def _battery(text: str) -> float | None:
    key = text.strip().lower()
    if key in ("unknown", "?", ""):
        return None
    try:
        value = float(key[:-1]) / 100.0 if key.endswith("%") else float(key)
    except ValueError:
        raise ValueError(f"--battery {text!r}: use a fraction 0..1, a percentage like 15%, or unknown") from None
    if not key.endswith("%") and value > 1.0:
        raise ValueError(f"--battery {text!r}: a fraction is 0..1; write {text}% for a percentage")
    return value


def _floor(text: str) -> float:
    """--floor as a fraction: 0.81 or 81%; a bare 81 is refused (it would silently ask for more than 100%)."""
    key = text.strip()
    try:
        value = float(key[:-1]) / 100.0 if key.endswith("%") else float(key)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use a fraction 0..1 or a percentage like 81%") from None
    if not 0.0 <= value <= 1.0:
        hint = f"; for a percentage write {key}%" if not key.endswith("%") and 1.0 < value <= 100.0 else ""
        raise argparse.ArgumentTypeError(f"{text!r}: the accuracy floor is a fraction 0..1{hint}")
    return value


def _config(bundle: str | None, policy_path: str | None) -> Any:
    from .config import POLICY_NAME, PolicyConfig, load_policy_config

    if policy_path:
        return load_policy_config(policy_path)
    if bundle:
        folder = Path(bundle) if Path(bundle).is_dir() else Path(bundle).parent
        if (folder / POLICY_NAME).is_file():
            return load_policy_config(folder)
        print(f"note: {folder} has no {POLICY_NAME}; using the default parameters", file=sys.stderr)
    return PolicyConfig()


def run_policy(args: argparse.Namespace) -> int:
    """Run ``ondevice policy ACTION``."""
    verb = args.policy_verb
    if verb == "decide":
        from .engine import Policy
        from .state import DeviceState, parse_thermal

        config = _config(args.bundle, args.policy)
        policy = Policy.from_bundle(args.bundle, device=args.device, config=config)
        state = DeviceState(
            battery=_battery(args.battery),
            charging=args.charging,
            power_save=args.power_save,
            thermal=parse_thermal(args.thermal, config.thermal.ios_levels),
            headroom=args.headroom,
            latency_budget_ms=args.budget_ms,
            accuracy_floor=args.floor,
        )
        decision, _ = policy.decide(state, 0.0)
        if args.json:
            print(json.dumps({"state": state.to_json(), "decision": decision.to_json()}, indent=2))
        else:
            print(f"latency table: {policy.table.source.describe(args.device)}")
            print(policy.explain(decision, state))
        return 0
    if verb == "simulate":
        from dataclasses import replace

        from .simulate import SimConfig, format_report, simulate_bundle

        sim = SimConfig(minutes=args.minutes, seed=args.seed)
        overrides = {
            "request_hz": args.request_hz,
            "latency_budget_ms": args.budget_ms,
            "start_battery": args.start_battery,
            "ambient_c": args.ambient_c,
            "latency_scale": args.latency_scale,
            "super_net_ms": args.super_net_ms,
        }
        sim = replace(sim, **{k: v for k, v in overrides.items() if v is not None})
        config = _config(args.bundle, args.policy)
        report = simulate_bundle(args.bundle, args.out, sim, device=args.device, config=config)
        print(f"latency table: {report['latency_source']}")
        print(format_report(report))
        print(f"wrote {Path(args.out) / 'simulation.json'} and {Path(args.out) / 'simulation.png'}")
        return 0
    if verb == "vectors":
        from .vectors import check_vectors, generate_vectors, write_vectors

        if args.example:
            from .example import EXAMPLE_DEVICE, example_manifest

            manifest, device = example_manifest(), args.device or EXAMPLE_DEVICE
            thermal_latency = example_manifest(thermal=True)["latency"]
            config = _config(None, args.policy)
        else:
            from ..contract.manifest import load_manifest

            manifest, device = load_manifest(args.bundle), args.device
            thermal_latency = None
            config = _config(args.bundle, args.policy)
        command = "ondevice policy vectors " + " ".join(
            shlex.quote(a)
            for a in (["--example"] if args.example else [args.bundle])
            + (["--device", args.device] if args.device else [])
            + (["--policy", args.policy] if args.policy else [])
            + ["--out", args.out or args.check or "policy_vectors.json"]
        )
        vectors = generate_vectors(manifest, config, device, command, thermal_latency)
        if args.check:
            try:
                recorded = json.loads(Path(args.check).read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ValueError(f"{args.check} cannot be read as JSON ({err})") from None
            problems = check_vectors(recorded)
            if recorded != vectors:
                problems.append(f"{args.check} differs from what `{command}` writes now; regenerate it")
            for problem in problems:
                print(problem, file=sys.stderr)
            print(f"{args.check}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
            return 1 if problems else 0
        steps = sum(len(c["steps"]) for c in vectors["cases"])
        if args.out:
            write_vectors(args.out, vectors)
            print(f"wrote {args.out}: {len(vectors['cases'])} cases, {steps} steps")
        else:
            print(f"{len(vectors['cases'])} cases, {steps} steps (pass --out FILE to write them)")
        return 0
    if verb == "init":
        from .config import POLICY_NAME, write_policy_json

        target = Path(args.bundle) / POLICY_NAME
        if target.exists() and not args.force:
            raise ValueError(f"{target} exists; pass --force to overwrite it with the defaults")
        print(f"wrote {write_policy_json(args.bundle)}")
        return 0
    if verb == "example":
        from .example import write_example_bundle

        out = write_example_bundle(args.out, thermal=args.thermal)
        print(f"wrote {out / 'manifest.json'} and {out / 'policy.json'} (illustrative latency; no model files)")
        return 0
    raise AssertionError(f"unhandled policy action {verb}")
