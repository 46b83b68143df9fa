"""One node's drift check: expectations, observations, differences; and `verify_node`.

Owns no kernel object. A check takes the data plane's lock while it reads the records
and the kernel, so it sees both at an apply boundary (an apply half-way through would
look like drift); the DNS questions, which may wait for a timeout, are asked after
the lock is released. `verify_node` is what the agent's API runs for
`vxswarm verify [--fix]`: check against the manager's desired state for this node,
repair on request, and report both.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from netagent.contract.desired import NodeDesiredState
from netagent.drift.diff import diff
from netagent.drift.expect import expect_cached
from netagent.drift.model import Difference, NodeReport, VerifyRequest
from netagent.drift.observe import observe, observe_dns
from netagent.drift.repair import repair

if TYPE_CHECKING:
    from netagent.agent.dataplane import DataPlane


def check(
    dp: DataPlane,
    desired: NodeDesiredState | None = None,
    *,
    dns: bool = True,
    iptables: bool = True,
) -> list[Difference]:
    """Differences between `desired` (default: the last applied) and this node's kernel
    and processes; [] when nothing was ever applied and nothing is given."""
    with dp.lock:
        desired = desired if desired is not None else dp.last_desired
        if desired is None:
            return []
        built = dp.built()
        expected = expect_cached(desired, built)
        if not dns:
            expected = replace(expected, dns=[])
        observed = observe(expected, built, check_iptables=iptables)
    if expected.dns:
        observed.dns = observe_dns(expected.dns)
    return diff(expected, observed, desired, built)


def verify_node(dp: DataPlane, req: VerifyRequest) -> NodeReport:
    """Check this node against the manager's desired state; with `req.fix`, repair what
    differs (the manager checks again afterwards, once the cluster took it in)."""
    found = check(dp, req.desired, dns=req.dns)
    if not req.fix or not found:
        return NodeReport(differences=tuple(found))
    done = repair(dp, found)
    return NodeReport(differences=tuple(found), fixed=tuple(done.fixed), errors=tuple(done.errors))
