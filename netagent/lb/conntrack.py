"""Re-balancing connection attempts that went to a backend which is now gone.

nftables DNATs only a flow's first packet; conntrack remembers the choice for the
rest, retransmitted SYNs included. When a backend dies (its node went down, its
task failed), a client whose SYN went to it keeps retransmitting to the dead
address until it gives up: the requests Swarm's routing mesh loses for ten seconds
and more after a failure. IPVS has `expire_nodest_conn` for this; here, when a
backend leaves a sandbox's load balancer, the conntrack entries of attempts that
never got an answer (not SEEN_REPLY) and were sent to it are deleted, so the next
retransmission is balanced again, over the backends that remain.

Answered connections are left alone: a drained task is still finishing them, and
those to a dead one fail either way. Deletion goes through pyroute2's conntrack
netlink socket, made in a thread that joined the sandbox's namespace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from ipaddress import IPv4Address

from netagent.kernel import netns
from netagent.kernel.pyroute import Conntrack

log = logging.getLogger(__name__)

#: IPS_SEEN_REPLY in the conntrack status bits.
SEEN_REPLY = 1 << 1


def ingress_backends(ports: Iterable) -> set[IPv4Address]:
    return {ip for p in ports for ip in p.backends}


def service_backends(service) -> frozenset[IPv4Address]:
    """The addresses a service's VIP balances over (none without a VIP)."""
    return frozenset(b.ip for b in service.backends) if service.vip is not None else frozenset()


def entries(ns: str | None) -> list:
    """Every conntrack entry of `ns` (None: this namespace), through pyroute2."""

    def dump() -> list:
        ct = Conntrack()
        try:
            return list(ct.dump_entries())
        finally:
            ct.close()

    return netns.in_ns_thread(ns, dump)


#: conntrack's TCP states of a connection whose server has answered and not yet closed.
OPEN_STATES = frozenset({"SYN_RECV", "ESTABLISHED"})


def answered_to(ns: str, backends: set[IPv4Address]) -> frozenset[int]:
    """The client source ports of `ns`'s open TCP connections that one of `backends`
    answered: the requests in flight there. Taken once a backend's node is cut off,
    these are exactly the connections that must fail with it (nothing new can be
    answered by it any more, and the unanswered ones are balanced again)."""
    wanted = {str(ip) for ip in backends}
    return frozenset(
        e.tuple_orig.sport
        for e in entries(ns)
        if e.tuple_reply.saddr in wanted
        and (e.status or 0) & SEEN_REPLY
        and e.protoinfo is not None
        and getattr(e.protoinfo, "state_name", lambda: "")() in OPEN_STATES
    )


def forget_unanswered(ns: str, gone: set[IPv4Address]) -> int:
    """Delete `ns`'s unanswered flows DNATed to an address in `gone`; how many."""
    if not gone:
        return 0
    wanted = {str(ip) for ip in gone}

    def flush() -> int:
        ct = Conntrack()
        try:
            doomed = [
                e
                for e in ct.dump_entries()
                if e.tuple_reply.saddr in wanted and not (e.status or 0) & SEEN_REPLY
            ]
            for e in doomed:
                ct.entry("del", tuple_orig=e.tuple_orig)
            return len(doomed)
        finally:
            ct.close()

    try:
        count = netns.in_ns_thread(ns, flush)
    except Exception as exc:  # a best effort: never fail an apply over it
        log.warning("conntrack flush in %s failed: %s", ns, exc)
        return 0
    if count:
        log.info("re-balancing %d unanswered connection(s) to %s in %s", count, sorted(wanted), ns)
    return count
