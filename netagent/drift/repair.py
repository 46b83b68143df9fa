"""Repairs the differences a check found, each by the `Fix` its kind was given.

Owns no kernel object of its own: every repair goes through the data plane that made
the object (or, for a task's veths, through the same task_ns steps that built them),
so a repaired object is exactly what a fresh build would make. Why each fix is enough:

  REAPPLY       FDB/neighbour entries, nft tables, sandbox links and addresses, the
                gateway bridge, the ingress sandbox: the data plane remembers what it
                wrote (to keep applies cheap) and only writes differences against that
                memory. Forgetting the memory of the namespaces concerned makes the
                next apply dump the kernel and rewrite what differs, touching nothing
                else — the same code path as the first apply after a start.
  REBUILD_TASK  a task's veth, address or default route: an apply never touches a
                running task's interfaces, so they are rebuilt in place with the same
                names, MAC and addresses (netagent.network.task_ns.add_veth); the process
                keeps running and its connections to others resume.
  REPLACE_TASK  a task's namespace is gone: nothing can be rebuilt into it, so the task
                is stopped; it ends FAILED and the restart policy replaces it.
  REPORT_TASK   a task's process is gone: it is reported FAILED to the manager (the
                heartbeat is woken), whose restart policy replaces it.
  REATTACH_DNS  a resolver that does not answer: its sockets are closed and reopened.
  SET_SYSCTL    the value is written again.
  REMOVE_NETNS  a namespace of this node that no network or task uses is deleted.

Order: namespaces and sysctls, one apply for every REAPPLY, then the task steps
(their veths need the sandboxes the apply restored). Each repaired difference is
logged (one line) and counted in vxswarm_repairs_total{kind=...}.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netagent.contract.errors import VxswarmError
from netagent.drift.model import Difference, Fix
from netagent.kernel import links, netns
from netagent.kernel.naming import GW_BRIDGE, SANDBOX_BRIDGE
from netagent.kernel.netns import kernel_errors
from netagent.network import task_ns
from netagent.network.gwbridge import GW_GATEWAY, GW_MTU

if TYPE_CHECKING:
    from netagent.agent.dataplane import DataPlane

log = logging.getLogger(__name__)

#: The order in which fixes run (see the module docstring).
ORDER = (
    Fix.REMOVE_NETNS,
    Fix.SET_SYSCTL,
    Fix.REAPPLY,
    Fix.REBUILD_TASK,
    Fix.REPLACE_TASK,
    Fix.REPORT_TASK,
    Fix.REATTACH_DNS,
)


@dataclass
class Repaired:
    fixed: list[Difference] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def repair(dp: DataPlane, diffs: Sequence[Difference], why: str = "verify --fix") -> Repaired:
    """Repair `diffs` on data plane `dp`; what was fixed and what failed."""
    out = Repaired()
    by_fix: dict[Fix, list[Difference]] = {}
    for d in diffs:
        by_fix.setdefault(d.fix, []).append(d)
    for fix in ORDER:
        group = by_fix.get(fix, [])
        if not group:
            continue
        try:
            done = _STEPS[fix](dp, group)
        except VxswarmError as exc:
            out.errors.append(f"{fix.value}: {exc}")
            log.warning("drift repair %s failed: %s", fix.value, exc)
            continue
        for d in done:
            log.info("repaired (%s) %s %s: %s [%s]", why, d.kind, d.object, d.problem, fix.value)
            dp.metrics.repaired(d.kind.value)
        out.fixed += done
    return out


def _remove_netns(dp: DataPlane, group: list[Difference]) -> list[Difference]:
    done = []
    for d in group:
        name = d.netns
        # Only this node's own names: the check found them by the same rule.
        if name and (dp.names.owns_ns(name) or name == dp.names.ingress_ns()):
            netns.remove(name)
            done.append(d)
    return done


def _set_sysctl(dp: DataPlane, group: list[Difference]) -> list[Difference]:
    for d in group:
        key, _, value = d.want.partition("=")
        netns.write_sysctl(d.netns, key, value)
    return group


def _reapply(dp: DataPlane, group: list[Difference]) -> list[Difference]:
    for ns in {d.netns for d in group}:
        dp.forget_programmed(ns)
    result = dp.reapply()
    if result is not None and result.errors:
        log.warning("reapply after drift: task errors %s", result.errors)
    return group


def _rebuild_tasks(dp: DataPlane, group: list[Difference]) -> list[Difference]:
    done = []
    for task_id in dict.fromkeys(d.task_id for d in group):
        if rebuild_task_links(dp, task_id):
            done += [d for d in group if d.task_id == task_id]
    return done


def _replace_tasks(dp: DataPlane, group: list[Difference]) -> list[Difference]:
    return [d for d in group if dp.replace_task(d.task_id)]


def _report_tasks(dp: DataPlane, group: list[Difference]) -> list[Difference]:
    return [d for d in group if dp.report_task(d.task_id)]


def _reattach_dns(dp: DataPlane, group: list[Difference]) -> list[Difference]:
    done = []
    for task_id in dict.fromkeys(d.task_id for d in group):
        if dp.reattach_dns(task_id):
            done += [d for d in group if d.task_id == task_id]
    return done


_STEPS: dict[Fix, Callable[[DataPlane, list[Difference]], list[Difference]]] = {
    Fix.REMOVE_NETNS: _remove_netns,
    Fix.SET_SYSCTL: _set_sysctl,
    Fix.REAPPLY: _reapply,
    Fix.REBUILD_TASK: _rebuild_tasks,
    Fix.REPLACE_TASK: _replace_tasks,
    Fix.REPORT_TASK: _report_tasks,
    Fix.REATTACH_DNS: _reattach_dns,
}


def rebuild_task_links(dp: DataPlane, task_id: str) -> bool:
    """Give a running task back its veths, addresses and default route, as task_ns.build
    made them; False if the task is not (or no longer) one to rebuild."""
    with dp.lock:
        desired, built = dp.last_desired, dp.built()
        rec = built.tasks.get(task_id)
        task = next((t for t in desired.tasks if t.id == task_id), None) if desired else None
        if rec is None or task is None or desired is None or not netns.exists(rec.netns):
            return False
        networks = {n.id: n for n in desired.networks}
        names, ns = dp.names, rec.netns
        plan: list[tuple[str | None, str, str, str, dict[str, object], bool]] = []
        addresses = {}
        for n, att in enumerate(task.attachments[: len(rec.veths) - 1]):
            ifname = names.task_ifname(n)
            peer = {"ifname": ifname, "mtu": networks[att.network_id].mtu, "address": att.mac}
            plan.append((rec.veths[n].netns, rec.veths[n].link, SANDBOX_BRIDGE, ifname, peer, True))
            addresses[ifname] = att.address
        gw_if = names.task_ifname(len(task.attachments))
        gw = rec.veths[-1]
        plan.append((gw.netns, gw.link, GW_BRIDGE, gw_if, {"ifname": gw_if, "mtu": GW_MTU}, False))
        if rec.gw_address is not None:
            addresses[gw_if] = rec.gw_address
        with netns.IprPool() as pool, kernel_errors(ns, "rebuild task links"):
            tn = pool.get(ns)
            for where, host, bridge, ifname, peer, hairpin in plan:
                where = where if where is not None else dp.node_ns
                label = where or dp.label
                ipr = pool.get(where)
                if links.get_link(ipr, host) is None or links.get_link(tn, ifname) is None:
                    # One end alone is useless: make the pair again from scratch.
                    links.delete_link(ipr, host, label)
                    links.delete_link(tn, ifname, ns)
                    task_ns.add_veth(ipr, label, host, bridge, ns, peer, hairpin=hairpin)
                else:
                    master = links.index_of(ipr, bridge, label)
                    links.ensure_up(ipr, links.index_of(ipr, host, label), label, master=master)
            links.ensure_up(tn, links.index_of(tn, "lo", ns), f"{ns}/lo")
            for ifname, address in addresses.items():
                index = links.index_of(tn, ifname, ns)
                links.ensure_addresses(tn, index, [address], f"{ns}/{ifname}")
                links.ensure_up(tn, index, f"{ns}/{ifname}")
            # Route last: the gateway is reachable only once the gateway veth is up.
            links.ensure_default_route(tn, GW_GATEWAY, ns)
    return True
