"""Battery- and thermal-aware choice of a sub-network, its parameters (policy.json), simulator and test vectors.

``Policy.from_bundle(bundle).decide(DeviceState(...), now_s, memory)`` picks the gates to run; the apps
mirror it from docs/policy.md and tests/policy_vectors.json.
"""

from .config import (
    POLICY_NAME,
    POLICY_VERSION,
    PolicyConfig,
    PolicyConfigError,
    load_policy_config,
    save_policy_config,
    write_policy_json,
)
from .engine import Decision, Policy, PolicyMemory, PolicySession, SubnetTable, build_table
from .state import DeviceState, Thermal, parse_thermal

__all__ = [
    "POLICY_NAME",
    "POLICY_VERSION",
    "Decision",
    "DeviceState",
    "Policy",
    "PolicyConfig",
    "PolicyConfigError",
    "PolicyMemory",
    "PolicySession",
    "SubnetTable",
    "Thermal",
    "build_table",
    "load_policy_config",
    "parse_thermal",
    "save_policy_config",
    "write_policy_json",
]
