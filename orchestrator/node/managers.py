"""What one manager knows of the others: who leads, who is reachable, what quorum needs.

Reachability is etcd member health as seen from here: twice a second each manager asks
each other manager's daemon for its member's status (`GET /v1/managers/health` on
2377, mutual TLS, managers only). A manager is Reachable while it answered within the
last `STALE_AFTER` seconds with a member that is running and not a learner; Unreachable
otherwise. The leader is the holder of the election key (orchestrator.etcd.election),
as this manager's member last saw it.

The leader also finishes what membership changes start: a learner (a manager that just
joined or was promoted) is promoted to a voter once etcd says it caught up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable

import httpx

from netagent.contract.errors import Unavailable
from orchestrator.ca import tls
from orchestrator.cluster.objects import ManagerStatus, Node, NodeRole
from orchestrator.etcd.client import EtcdError, Status
from orchestrator.node.control import Seat
from orchestrator.ops.roles import quorum

log = logging.getLogger(__name__)

#: How often each manager asks the others.
PROBE_PERIOD = 0.5
#: An answer older than this no longer counts: the manager is Unreachable.
STALE_AFTER = 3.0
PROBE_TIMEOUT = 1.0
#: A leader whose daemon has not answered for this long, while this manager's member
#: is part of a quorum, has its lease revoked: its machine is taken for gone.
SUSPECT_AFTER = 1.5


class LeaderMoving(Unavailable):
    """No manager can take a write now, but one will in a moment: the leader went
    silent, or an election is under way among a quorum. A forwarded request may wait."""


class Managers:
    """This manager's view of its peers; the daemon's `managers_forever` keeps it current."""

    def __init__(
        self,
        node_id: str,
        port: int,
        seat: Callable[[], Seat | None],
        nodes: Callable[[], list[Node]],
        client_tls: Callable[[], ssl.SSLContext | None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.node_id = node_id
        self._port = port
        self._seat = seat
        self._nodes = nodes
        self._tls = client_tls
        self._clock = clock
        #: node id -> when it last answered with a healthy member.
        self._healthy_at: dict[str, float] = {}
        #: This manager's own member status and when it was read: the API reads this,
        #: never etcd itself (an etcd busy with an election must not stall the loop).
        self._own: Status | None = None
        self._own_at = float("-inf")
        #: One client for the probes (kept-alive connections), made again when the
        #: node's TLS context changes (a renewal).
        self._client: httpx.AsyncClient | None = None
        self._client_tls: ssl.SSLContext | None = None
        #: addrs() as of the last probe round.
        self._addrs: list[str] | None = None
        #: node id -> the question in flight to that manager.
        self._asking: dict[str, asyncio.Task[None]] = {}

    # views ------------------------------------------------------------------------

    def managers(self) -> list[Node]:
        return [n for n in self._nodes() if n.role == NodeRole.MANAGER]

    def leader_id(self) -> str:
        seat = self._seat()
        return seat.election.leader if seat is not None else ""

    def silent(self, node_id: str) -> bool:
        """Whether manager `node_id`, heard before, has not answered for SUSPECT_AFTER."""
        last = self._healthy_at.get(node_id)
        return last is not None and self._clock() - last >= SUSPECT_AFTER

    def reachable_ids(self) -> set[str]:
        """The managers reachable now, this one included if its member is healthy."""
        return {n.id for n in self.managers() if self.reachable(n.id)}

    def reachable(self, node_id: str) -> bool:
        if node_id == self.node_id:
            return self._own_member_healthy()
        return self._clock() - self._healthy_at.get(node_id, float("-inf")) < STALE_AFTER

    def _own_status(self) -> Status | None:
        if self._clock() - self._own_at > STALE_AFTER:
            self.refresh_own()
        return self._own

    def refresh_own(self) -> None:
        """Read this manager's member status (a thread's job: it may wait on etcd)."""
        seat = self._seat()
        try:
            self._own = seat.client.status() if seat is not None else None
        except EtcdError:
            self._own = None
        self._own_at = self._clock()

    def _own_member_healthy(self) -> bool:
        own = self._own_status()
        return own is not None and not own.is_learner

    def shown(self, nodes: list[Node]) -> list[Node]:
        """`nodes` with the ManagerStatus of each manager filled in."""
        quorate = self.has_quorum()
        return [
            n.model_copy(update={"manager_status": self.status_of(n, quorate)})
            if n.role == NodeRole.MANAGER
            else n
            for n in nodes
        ]

    def status_of(self, node: Node, quorate: bool) -> ManagerStatus:
        leader = quorate and node.id == self.leader_id()
        reachable = leader or self.reachable(node.id)
        return ManagerStatus(
            leader=leader,
            reachability="reachable" if reachable else "unreachable",
            addr=f"{node.addr}:{self._port}",
        )

    def has_quorum(self) -> bool:
        """Whether this manager's member is part of a raft majority (knows a leader)."""
        own = self._own_status()
        return own is not None and bool(own.leader)

    def addrs(self) -> list[str]:
        """Every reachable manager's "ip:port", the leader first. Every heartbeat answer
        carries it: the list the last probe round made (at most PROBE_PERIOD old), not
        one made again from the store for each heartbeat."""
        if self._addrs is None:
            self._addrs = self._current_addrs()
        return self._addrs

    def _current_addrs(self) -> list[str]:
        leader = self.leader_id()
        ordered = sorted(self.managers(), key=lambda n: (n.id != leader, n.hostname))
        return [f"{n.addr}:{self._port}" for n in ordered if n.id == leader or self.reachable(n.id)]

    def no_leader(self) -> Unavailable:
        """The error a write gets when the swarm has no leader, naming what is missing."""
        managers = self.managers()
        lost = sorted(n.hostname for n in managers if not self.reachable(n.id))
        need = quorum(len(managers))
        if len(managers) - len(lost) >= need:
            # Enough managers answer: the next leader is being elected.
            return LeaderMoving(
                "the swarm has no leader yet: an election is under way among "
                f"{len(managers)} managers; try again shortly",
                op="write",
            )
        return Unavailable(
            f"the swarm has no leader: {len(lost)} of {len(managers)} managers unreachable "
            f"({', '.join(lost)}); {need} needed",
            op="write",
        )

    # the probe --------------------------------------------------------------------

    async def probe_once(self) -> None:
        """One round: this manager's own member, then each other manager asked at once.
        The round waits for their answers at most PROBE_PERIOD: a manager whose machine
        is gone answers nothing until PROBE_TIMEOUT, and must not slow the rounds that
        notice it went silent. Each answer is stamped when it comes; a manager still
        being asked is not asked again."""
        await asyncio.to_thread(self.refresh_own)
        others = [n for n in self.managers() if n.id != self.node_id]
        context = self._tls()
        if others and context is not None:
            if self._client is None or self._client_tls is not context:
                if self._client is not None:
                    await self._client.aclose()
                self._client = httpx.AsyncClient(verify=context, timeout=PROBE_TIMEOUT)
                self._client_tls = context
            for node in others:
                asking = self._asking.get(node.id)
                if asking is None or asking.done():
                    self._asking[node.id] = asyncio.create_task(self._ask(self._client, node))
            await asyncio.wait([self._asking[n.id] for n in others], timeout=PROBE_PERIOD)
        self._addrs = self._current_addrs()

    async def _ask(self, client: httpx.AsyncClient, node: Node) -> None:
        try:
            resp = await client.get(
                f"https://{node.addr}:{self._port}/v1/managers/health",
                extensions=tls.expect(tls.MANAGER_NAME),
            )
        except httpx.HTTPError:
            return
        if resp.status_code == 200 and not resp.json().get("learner", True):
            self._healthy_at[node.id] = self._clock()

    async def close(self) -> None:
        for asking in self._asking.values():
            asking.cancel()
        self._asking.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def depose_dead_leader(self) -> bool:
        """On a manager that does not lead: revoke the lease of a leader whose daemon
        has not answered for SUSPECT_AFTER, so that a new leader is elected now rather
        than when that lease ends by itself. Only with a quorum (a manager cut off from
        the others would only depose a healthy leader) and only the lease the leader key
        is on now. A leader wrongly taken for gone loses its leadership, never a write:
        its writes are fenced on the key. True if a lease was revoked."""
        seat = self._seat()
        if seat is None or seat.leading:
            return False
        leader = seat.election.leader
        if not leader or leader == self.node_id or not self.silent(leader):
            return False
        if not self.has_quorum():
            return False
        silent = self._clock() - self._healthy_at[leader]
        kv = seat.client.get(seat.election.leader_key)
        if kv is None or kv.value.decode() != leader or not kv.lease:
            return False
        try:
            seat.client.lease_revoke(kv.lease)
        except EtcdError as err:
            log.debug("could not revoke the silent leader's lease: %s", err)
            return False
        log.warning(
            "leader %s has not answered for %.1f s: its lease is revoked, a new leader is elected",
            leader,
            silent,
        )
        seat.election.wake()
        return True

    # the leader's chores ----------------------------------------------------------

    def promote_learners(self) -> None:
        """Make voters of the learners that caught up (etcd refuses the others)."""
        seat = self._seat()
        if seat is None or not seat.leading:
            return
        for member in seat.client.members():
            if not member.is_learner:
                continue
            try:
                seat.client.member_promote(member.id)
                log.info("etcd member %s promoted to a voter", member.name or member.id)
            except EtcdError as err:
                log.debug("learner %s not promoted yet: %s", member.name or member.id, err)
