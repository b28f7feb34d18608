"""The decision engine: the sub-network table (``table``) and the policy with hysteresis (``policy``)."""

from .policy import Decision, Policy, PolicyMemory, PolicySession
from .table import LatencySource, SubnetTable, SubNetwork, build_table, select_latency

__all__ = [
    "Decision",
    "LatencySource",
    "Policy",
    "PolicyMemory",
    "PolicySession",
    "SubNetwork",
    "SubnetTable",
    "build_table",
    "select_latency",
]
