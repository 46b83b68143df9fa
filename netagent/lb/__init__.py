"""Service VIPs, the ingress routing mesh and host-mode ports: the node's load balancing.

Swarm's load balancing rebuilt with nftables (no IPVS): one `table ip vxswarm` per
namespace that balances, regenerated from the desired state and loaded atomically
only when its text changed. The parts, one job each:
  rules.py        pure ruleset text (unit-tested exactly)
  nft.py          loads a table into a namespace, skipping unchanged text
  libnft.py       the load, in-process through libnftables
  vip.py          VIPs, once per network in its overlay sandbox (bridge path)
  ingress.py      the ingress sandbox namespace of the routing mesh
  nodeports.py    the node namespace's published ports (ingress and host mode)
  conntrack.py    unanswered flows to a backend that left, deleted so they rebalance
  rule_checks.py  checks before anything is touched
`LoadBalancer` ties them together for DataPlane: `check` before an apply, `apply`
after networks and tasks are in place (VIP backends and host ports need them),
`remove` on teardown and, from the records alone, `remove_recorded` on a wipe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address

from netagent.contract.desired import NodeDesiredState, ServiceEndpoint
from netagent.kernel import netns
from netagent.kernel.naming import Names
from netagent.lb import conntrack, nft, rules
from netagent.lb.ingress import IngressSandbox
from netagent.lb.nodeports import node_ports
from netagent.lb.rule_checks import check_lb
from netagent.lb.vip import VipBalancer
from netagent.ledger.changes import Change
from netagent.ledger.inventory import NodeRecord, TaskRecord
from netagent.ledger.memo import IdentityMemo

__all__ = ["LoadBalancer", "remove_recorded"]

RUNNING_INTENT = "running"


class LoadBalancer:
    """Keeps one node's VIP, ingress and published-port state equal to its desired state."""

    def __init__(
        self, names: Names, node_ns: str | None, node_label: str, on_load: nft.OnLoad | None = None
    ) -> None:
        self.names = names
        self.node_ns = node_ns
        self.node_label = node_label
        self._loader = nft.TableLoader(on_load)
        self._vips = VipBalancer(names, self._loader)
        self._ingress = IngressSandbox(names, self._loader)
        #: Per sandbox namespace, the backend addresses its load balancer had last.
        self._backends: dict[str, set[IPv4Address]] = {}
        #: Per overlay sandbox, each service's backend addresses, once per service object.
        self._backend_sets: dict[str, IdentityMemo[ServiceEndpoint, frozenset]] = {}

    @staticmethod
    def check(desired: NodeDesiredState) -> None:
        """InvalidArgument for the first bad load-balancing value; nothing touched."""
        check_lb(desired)

    def apply(
        self,
        pool: netns.IprPool,
        desired: NodeDesiredState,
        record: NodeRecord,
        tasks: Iterable[TaskRecord],
        save: Callable[[], None],
    ) -> list[Change]:
        """VIPs per network, the ingress sandbox, then the node's published ports."""
        tasks = list(tasks)
        changes: list[Change] = []
        for net in desired.networks:
            changes += self._vips.sync(pool, net)
        self._vips.forget_except(desired.networks)
        self._rebalance_gone(desired)
        if desired.ingress is not None:
            net = next(n for n in desired.networks if n.id == desired.ingress.network_id)
            changes += self._ingress.ensure(
                pool, self.node_ns, self.node_label, desired.ingress, net, record,
                [t.gw_address for t in tasks], save,
            )  # fmt: skip
        elif record.ingress is not None:
            changes += self._ingress.remove(self.node_ns, self.node_label, record, pool)
            save()
        live = {
            t.task_id: (t.task_name, t.gw_address.ip)
            for t in tasks
            if t.intent == RUNNING_INTENT and not t.state.terminal and t.gw_address is not None
        }
        ingress_gw = record.ingress.gw_address.ip if record.ingress is not None else None
        text = rules.node_table(node_ports(desired.ingress, ingress_gw, desired.host_ports, live))
        if text and not record.lb_node_table:
            record.lb_node_table = True
            save()  # write-ahead: a wipe deletes the table even if we crash now
        if self._loader.ensure(self.node_ns, text):
            why = "published ports" if text else "nothing published"
            changes.append(Change("update", f"nft table ip vxswarm in {self.node_label}", why))
        if not text and record.lb_node_table:
            record.lb_node_table = False
            save()
        return changes

    def _rebalance_gone(self, desired: NodeDesiredState) -> None:
        """Unanswered flows to backends that just left a sandbox are balanced again."""
        now: dict[str, set[IPv4Address]] = {}
        for n in desired.networks:
            if not n.ingress:
                ns = self.names.overlay_ns(n.vni)
                memo = self._backend_sets.setdefault(ns, IdentityMemo())
                now[ns] = set().union(*memo.values(n.services, conntrack.service_backends))
        if desired.ingress is not None:
            now[self.names.ingress_ns()] = conntrack.ingress_backends(desired.ingress.ports)
        for ns, before in self._backends.items():
            gone = before - now.get(ns, before)
            if gone:
                # Off the apply's path: the new rules are live already, and a client's
                # next SYN retransmission is a second away.
                threading.Thread(
                    target=conntrack.forget_unanswered, args=(ns, gone), daemon=True
                ).start()
        self._backends = now
        self._backend_sets = {ns: m for ns, m in self._backend_sets.items() if ns in now}

    def forget(self, ns: str | None) -> None:
        """Forget what was loaded or set in namespace `ns` (its table, VIP neighbours,
        sysctls, the ingress sandbox's links): the next apply reads the kernel again and
        rewrites what differs. How netagent.drift repairs drift made behind our back."""
        self._loader.forget(ns)
        if ns is not None:  # VIPs live in overlay sandboxes, never in the node namespace
            self._vips.forget(ns)
        if ns == self.names.ingress_ns():
            self._ingress.forget()

    def remove(self, record: NodeRecord) -> list[Change]:
        """Teardown: everything recorded (sandbox tables go with their namespaces)."""
        self._loader = nft.TableLoader(self._loader.on_load)
        self._vips = VipBalancer(self.names, self._loader)
        self._ingress = IngressSandbox(self.names, self._loader)
        return remove_recorded(record, self.node_ns, self.node_label, self.names)


def remove_recorded(
    record: NodeRecord, node_ns: str | None, node_label: str, names: Names
) -> list[Change]:
    """Delete the node table and the ingress sandbox named by `record` (offline wipe too)."""
    changes: list[Change] = []
    if record.lb_node_table and (node_ns is None or netns.exists(node_ns)):
        if nft.delete_table(node_ns):
            changes.append(Change("remove", f"nft table ip vxswarm in {node_label}"))
        record.lb_node_table = False
    changes += IngressSandbox(names, nft.TableLoader()).remove(node_ns, node_label, record)
    return changes
