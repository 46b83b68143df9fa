"""`vxswarm daemon`: one per node; always the agent, the manager after `swarm init`.

State dir layout (one node's disk; the directory 0710, every entry 0700/0600 but the
socket, 0660, which the socket's group reaches through the 0710):
  vxswarm.sock           local API (docker.sock's role, 0660)
  certificates/          this node's key, certificate and the swarm's roots
  agent/identity.json    who this node is in its swarm (absent: not in a swarm)
  agent/...              the data plane's records of what it built
  manager/etcd/          a manager's etcd member: the cluster store, with the CA key

On start the daemon reads both back, so a restart, even after SIGKILL, loses no
cluster state and adopts the running tasks. On a manager it starts its etcd member
and campaigns (orchestrator.node.control); the leader's side is driven by API calls
and a tick; `Notifier` wakes agents' long-polls when the store changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx

from netagent.agent.dataplane import DataPlane
from netagent.agent.metrics import Metrics
from netagent.agent.session import Session
from netagent.contract.desired import MANAGER_PORT, VIEW_PORT, VXLAN_PORT
from netagent.contract.errors import (
    Conflict,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
    VxswarmError,
)
from netagent.contract.messages import JoinRequest, JoinResponse, NodeIdentity
from netagent.dns.node_resolver import NodeDns
from netagent.drift.watch import SelfCheck, interval_from_env
from netagent.kernel.hostaddr import choose_advertise_addr, source_addr_towards
from netagent.kernel.naming import Names
from orchestrator import ENGINE_VERSION
from orchestrator.ca import minting, sealing, tls
from orchestrator.ca.files import Credentials
from orchestrator.cluster.objects import Node, NodeRole
from orchestrator.dispatch.liveness import Prober
from orchestrator.dispatch.stalls import Stalls
from orchestrator.etcd.client import EtcdClient
from orchestrator.manager import Manager
from orchestrator.node import control, promotion, renewal, to_manager
from orchestrator.node.control import MemberRequest, MemberResponse, Seat, TransferRequest
from orchestrator.node.credentials import NodeTLS
from orchestrator.node.managers import PROBE_PERIOD, LeaderMoving, Managers
from orchestrator.ops import membership, roles
from orchestrator.ops.inputs import advertised_host

log = logging.getLogger(__name__)

#: Longest a CLI write waits for every node to apply its result.
SETTLE_TIMEOUT = 8.0
#: A leader handing over does not campaign for this long; the others wait this long.
HAND_OVER_HOLD = 10.0
HAND_OVER_WAIT = 6.0
#: Seconds a new leader adds to every node's heartbeat grace: its agents' sessions
#: first give up on the old leader (a heartbeat's 5 s timeout) and move to another
#: manager.
TAKEOVER_GRACE = 10.0
#: How long a restarted manager's API waits for its store before it serves anyway.
START_WAIT = 10.0
#: How long a restarted manager waits for a quorum before it says so and waits again.
RESUME_WAIT = 10.0
NOT_IN_SWARM = (
    'This node is not a swarm manager. Use "vxswarm swarm init" or "vxswarm swarm join" to '
    "connect this node to swarm and try again."
)
WORKER_NODE = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster "
    "state. Please run this command on a manager node or promote the current node to a manager."
)


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path
    hostname: str
    ns_prefix: str = "vx"
    port: int = MANAGER_PORT
    view_port: int = VIEW_PORT
    listen_addr: str = "0.0.0.0"
    resolv_conf: Path = Path("/etc/resolv.conf")
    #: Seconds between the agent's own drift checks (env VXSWARM_SELF_CHECK; 0 = off).
    self_check: float = field(default_factory=interval_from_env)

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "vxswarm.sock"

    @property
    def identity_path(self) -> Path:
        return self.state_dir / "agent" / "identity.json"


class Notifier:
    """Wakes every waiter when the cluster state may have changed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def current(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


class Daemon:
    def __init__(self, cfg: DaemonConfig):
        self.cfg = cfg
        self.names = Names(cfg.ns_prefix)
        self.identity: NodeIdentity | None = None
        #: This manager's etcd member, candidacy and store (None on a worker).
        self.seat: Seat | None = None
        #: The swarm as this manager's store holds it: the leader's, or for reads.
        self.manager: Manager | None = None
        self._prober: Prober | None = None
        self.dataplane: DataPlane | None = None
        self.session: Session | None = None
        self.dns: NodeDns | None = None
        self.self_check: SelfCheck | None = None
        self.notifier = Notifier()
        #: This daemon's Prometheus metrics (GET /metrics; see node.api.metrics_routes).
        self.metrics = Metrics()
        #: This daemon loop's stalls, which a manager takes out of its nodes' silence;
        #: `listeners.serve` runs their watcher.
        self.stalls = Stalls()
        #: This node's key, certificate and roots, and the TLS contexts made of them.
        self.tls = NodeTLS(cfg.state_dir)
        self._renewal: asyncio.Task[None] | None = None
        self._seating: asyncio.Task[None] | None = None
        self._changing_role = False
        #: The election term this daemon's Manager was opened for (see
        #: _leadership_changed).
        self._led_term = 0
        #: On a manager: who leads, who is reachable (orchestrator.node.managers).
        self.peers: Managers | None = None
        self._renewing = False
        #: The daemon's event loop, for work the session's threads hand back to it.
        self._loop: asyncio.AbstractEventLoop | None = None
        #: On a manager: the swarm's data key for secrets, and its file.
        self._key_file = sealing.KeyFile.under(cfg.state_dir)
        self._data_key: sealing.DataKey | None = None

    # lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume whatever this node was before it stopped."""
        self._loop = asyncio.get_running_loop()
        if not self.cfg.state_dir.exists():
            self.cfg.state_dir.mkdir(mode=0o700, parents=True)
            # 0710: the socket's group (vxswarm.service runs with Group=vxswarm) may pass
            # through to the 0660 socket, and reaches nothing else: every other entry
            # is 0700 or 0600. (A lab makes its nodes' dirs 0700 itself: root only.)
            os.chmod(self.cfg.state_dir, 0o710)
        self.identity = NodeIdentity.load(self.cfg.identity_path)
        if self.identity and self.tls.load():
            if self.identity.role == NodeRole.MANAGER and control.has_member(self.cfg.state_dir):
                # In the background: without a quorum of managers the member waits for
                # the others, while this node goes on as an agent.
                self._seating = asyncio.create_task(self._resume_seat(self.identity))
            if self.tls.expired():
                # Stopped past its certificate's end: renew before anything else
                # (possible while the CA answers; else the renewal loop keeps trying).
                with contextlib.suppress(Unavailable, PermissionDenied):
                    await self.renew_certificate()
            await asyncio.to_thread(self._start_agent, self.identity)
            self._start_renewal()
            if self._seating is not None:
                # Serve once the store is back, as a restarted manager with its quorum
                # does in a second or two; a lonely one serves without it after a while.
                # (asyncio.wait: the seating may end otherwise, e.g. cancelled by a
                # demotion this node learns of meanwhile.)
                await asyncio.wait({self._seating}, timeout=START_WAIT)

    def stop(self) -> None:
        """Stop serving; tasks keep running and are adopted by the next start."""
        if self._renewal:
            self._renewal.cancel()
        if self._seating:
            self._seating.cancel()
        if self.session:
            self.session.stop()
        if self.self_check:
            self.self_check.stop()
        if self.dataplane:
            self.dataplane.close()
        if self.dns:
            self.dns.close()
        if self.seat:
            self.seat.stop()

    def _start_agent(self, identity: NodeIdentity) -> None:
        if self.dns is None:
            self.dns = NodeDns(self.cfg.resolv_conf)
        self.dataplane = DataPlane(
            self.names,
            self.cfg.state_dir / "agent",
            identity.addr,
            on_status=lambda _status: self._status_changed(),
            dns=self.dns,
            metrics=self.metrics,
        )
        self.dataplane.adopt()
        assert self.tls.client is not None  # the agent starts once the node has credentials
        self.session = Session(
            identity,
            tls=self.tls.client,
            server_name=tls.MANAGER_NAME,
            apply=self.metrics.timed_apply(self.dataplane.apply),
            statuses=self.dataplane.statuses,
            on_rejected=lambda msg: log.error("removed from the swarm by the manager: %s", msg),
            on_heartbeat=self.metrics.heartbeat_sent,
            on_assignments=self.metrics.assignment_received,
            on_ca_digest=self._ca_digest_seen,
            on_error=self.metrics.session_error,
            on_managers=self._managers_changed,
            on_role=self._role_seen,
        )
        self.session.start()
        self.self_check = SelfCheck(self.dataplane, self.cfg.self_check)
        self.self_check.start()

    def _status_changed(self) -> None:
        if self.session:
            self.session.status_changed()

    # the seat in the control plane -----------------------------------------------------

    def _new_seat(self, identity: NodeIdentity, start: control.Founding) -> Seat:
        loop = asyncio.get_running_loop()
        cfg = control.member_config(
            self.cfg.state_dir, identity.node_id, identity.addr, identity.cluster_id, start
        )
        self.peers = Managers(
            identity.node_id,
            self.cfg.port,
            seat=lambda: self.seat,
            nodes=lambda: self.manager.list_nodes() if self.manager is not None else [],
            client_tls=lambda: self.tls.client,
        )
        return control.Seat(
            cfg,
            identity.node_id,
            lambda leading: loop.call_soon_threadsafe(self._leadership_changed, leading),
        )

    async def _take_seat(
        self, identity: NodeIdentity, start: control.Founding, *, wait_leading: bool = False
    ) -> None:
        """Start this manager's etcd member, store and candidacy."""
        seat = self._new_seat(identity, start)
        await asyncio.to_thread(seat.start, wait_leading=wait_leading)
        self.seat = seat
        self._open_manager()

    async def _resume_seat(self, identity: NodeIdentity) -> None:
        """After a restart: the member at once, the store once it is part of a quorum."""
        seat = self._new_seat(identity, control.Founding(peers={}, new=False))
        self.seat = seat
        while True:
            try:
                if not seat.member.running:
                    await asyncio.to_thread(seat.member.start)
                await asyncio.to_thread(seat.open, RESUME_WAIT)
                break
            except VxswarmError as err:
                log.warning("this manager's store is not available yet: %s", err)
                await asyncio.sleep(1.0)
        self._open_manager()
        self.notifier.notify()

    def _open_manager(self, takeover: bool = False) -> None:
        """A Manager over the seat's store: made again at each turn of leadership, so a
        new leader starts with every node Unknown and a grace period (a fresh dispatcher)
        that also gives the agents time to find it."""
        if self.seat is not None and self.seat.store is not None:
            grace = TAKEOVER_GRACE if takeover else 0.0
            self.manager = Manager.open(
                self.seat.store,
                takeover_grace=grace,
                own_node=self.seat.election.name,  # this node's id
                stalls=self.stalls,
                data_key=self.data_key,
            )

    def _leadership_changed(self, leading: bool) -> None:
        """A new term makes a new Manager (a fresh dispatcher); the same term taken up
        again (a step down while etcd was slow, then the same key) keeps the one there
        is, with what it knows of each node."""
        if self.seat is None or self.seat.store is None:
            return
        term = self.seat.election.term
        if leading and (term != self._led_term or self.manager is None):
            try:
                # Read everything the previous leader wrote before deciding anything.
                self.seat.store.reload()
            except VxswarmError as err:
                log.error("new leader cannot read the store: %s", err)
            self._open_manager(takeover=True)
            self._led_term = term
        self.notifier.notify()

    @property
    def leading(self) -> bool:
        return self.seat is not None and self.seat.leading

    def data_key(self) -> sealing.DataKey | None:
        """The swarm's data key (orchestrator.ca.sealing), from this manager's file. A
        leader without one (a swarm older than secrets) makes it: the managers that
        join or are promoted from now on receive it."""
        if self._data_key is None and self.seat is not None:
            self._data_key = self._key_file.load()
            if self._data_key is None and self.leading:
                self._keep_data_key(sealing.DataKey.new())
                log.warning("this manager held no data key for secrets: made a new one")
        return self._data_key

    def _keep_data_key(self, key: sealing.DataKey) -> None:
        self._key_file.save(key)
        self._data_key = key

    async def tick_forever(self) -> None:
        """The manager's reconcile tick: node health, pending tasks, restarts."""
        while True:
            if self.manager is not None and self.leading:
                try:
                    if self._tick(self.manager):
                        self.notifier.notify()
                    await self._prober_for(self.manager).check(
                        self.identity.node_id if self.identity else None
                    )
                except Exception:
                    log.exception("manager tick failed")
                period = self.manager.cluster.heartbeat_period
                await asyncio.sleep(min(0.25, period / 4))
            else:
                await asyncio.sleep(0.5)

    def _prober_for(self, manager: Manager) -> Prober:
        """The silent-node prober of the current manager (made again after a re-init)."""
        if self._prober is None or self._prober.manager is not manager:
            self._prober = Prober(manager, self.cfg.port)
        return self._prober

    def suspect(self, node_id: str) -> None:
        """A sign that a node may be gone (see orchestrator.dispatch.liveness)."""
        if self.manager is not None:
            self._prober_for(self.manager).suspect(node_id)

    def changed(self) -> None:
        """After a write through the API: reconcile at once and wake the agents."""
        if self.manager is not None and self.leading:
            self._tick(self.manager)
        self.notifier.notify()

    async def settle(self, timeout: float = SETTLE_TIMEOUT) -> bool:
        """After a write: reconcile, then wait until every Ready node applied the result.

        So that when `service rm` or `service scale` returns, no node's DNS or load
        balancer still answers with what was removed. Bounded: a stuck node does not
        hang the CLI (False then).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.changed()
        while self.manager is not None:
            wake = self.notifier.current
            if self.manager.synced():
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), min(remaining, 0.25))
            if self._tick(self.manager):
                self.notifier.notify()
        return False

    def _tick(self, manager: Manager) -> bool:
        """One manager tick, timed into vxswarm_reconcile_seconds."""
        with self.metrics.reconcile_seconds.time():
            return manager.tick()

    # what this node is ------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        swarm = None
        if self.identity:
            swarm = {
                "node_id": self.identity.node_id,
                "node_addr": str(self.identity.addr),
                "cluster_id": self.identity.cluster_id,
                "is_manager": self.identity.role == NodeRole.MANAGER,
                "is_leader": self.leading,
                "manager_addr": self.identity.manager_addr,
                **self._cluster_info(),
            }
        return {
            "name": self.cfg.hostname,
            "engine_version": ENGINE_VERSION,
            "state_dir": str(self.cfg.state_dir),
            "ns_prefix": self.cfg.ns_prefix,
            "swarm": swarm,
        }

    def _cluster_info(self) -> dict[str, Any]:
        """What a manager adds to `info`: the counts, the managers, its etcd member."""
        if self.manager is None or self.seat is None or self.peers is None:
            return {}
        nodes = self.manager.list_nodes()
        managers = [n for n in nodes if n.role == NodeRole.MANAGER]
        store: dict[str, Any] = {"member": self.seat.member.cfg.name, "quorum": False}
        with contextlib.suppress(VxswarmError):
            status = self.seat.client.status()
            store.update(
                quorum=bool(status.leader),
                raft_term=status.raft_term,
                raft_index=status.raft_index,
                db_size=status.db_size,
                members=len(self.seat.client.members()),
            )
        cluster = self.manager.cluster
        return {
            "managers": len(managers),
            "nodes": len(nodes),
            "manager_addrs": [f"{n.addr}:{self.cfg.port}" for n in managers],
            "store": store,
            # Docker's Swarm fields of `docker info`.
            "default_addr_pool": [str(p) for p in cluster.default_addr_pool],
            "subnet_size": cluster.subnet_size,
            "data_path_port": VXLAN_PORT,
            "task_history_limit": cluster.task_history_limit,
            "heartbeat_period": cluster.heartbeat_period,
            "cert_expiry": cluster.cert_expiry,
            "root_rotation_in_progress": bool(cluster.ca_intermediates),
        }

    def leader_url(self) -> str | None:
        """Where manager requests go when this node is a manager but not the leader."""
        if not self.identity:
            raise Unavailable(NOT_IN_SWARM)
        if self.identity.role != NodeRole.MANAGER:
            raise Unavailable(WORKER_NODE)
        if self.leading:
            return None
        if self.seat is None or self.manager is None or self.peers is None:
            raise Unavailable("this manager's store is not running yet: try again shortly")
        leader = self.seat.election.leader
        node = self.manager.find_node(leader) if leader else None
        # Never to itself: a key this manager no longer acts on is not a leader.
        if node is None or node.id == self.node_id or not self.peers.has_quorum():
            raise self.peers.no_leader()
        if self.peers.silent(node.id):
            # Its machine is likely gone: say so now rather than after a connect timeout.
            raise LeaderMoving(
                f"the leader {node.hostname} is not answering: another manager takes over "
                "in a moment; try again",
                op="forward",
            )
        return self.node_url(node.addr)

    @property
    def node_id(self) -> str:
        return self.identity.node_id if self.identity else ""

    def etcd(self) -> EtcdClient:
        """This manager's etcd member (Unavailable where there is none)."""
        if self.seat is None:
            raise Unavailable("this node runs no etcd member: it is not a manager")
        return self.seat.client

    def reachable_managers(self) -> set[str]:
        return self.peers.reachable_ids() if self.peers is not None else set()

    async def clear_raft_lead(self, node: Node) -> None:
        """Before the member of manager `node` is removed: raft leadership moves off it
        (see orchestrator.node.promotion.move_raft_leadership)."""
        client = self.etcd()
        if not await asyncio.to_thread(promotion.raft_leader_is, client, node.id):
            return
        if node.id == self.node_id:
            await asyncio.to_thread(promotion.move_raft_leadership, client)
            return
        assert self.tls.client is not None
        mine = (await asyncio.to_thread(client.status)).member_id
        await to_manager.post(
            f"{node.addr}:{self.cfg.port}",
            "/v1/managers/transfer",
            TransferRequest(to=mine).model_dump_json(),
            self.tls.client,
            "moving the raft leadership",
        )

    async def hand_over(self) -> str:
        """Give the leadership to another manager; the new leader's URL."""
        if self.seat is None:
            raise Unavailable("this node runs no etcd member: it is not a manager")
        self.seat.election.resign(hold=HAND_OVER_HOLD)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HAND_OVER_WAIT
        while loop.time() < deadline:
            await asyncio.sleep(0.1)
            with contextlib.suppress(VxswarmError):
                url = self.leader_url()
                if url is not None:
                    return url
        raise Unavailable(
            f"no other manager took the leadership within {HAND_OVER_WAIT:g} s: "
            "this one leads again shortly"
        )

    def stale_reads(self) -> str:
        """Why this manager's reads may be stale now ("" while it is part of a quorum)."""
        if self.peers is None or self.peers.has_quorum():
            return ""
        return f"{self.peers.no_leader()}: this answer is {self.cfg.hostname}'s own copy"

    def shown(self, nodes: list[Node]) -> list[Node]:
        """`nodes` as the API shows them: managers with their ManagerStatus."""
        return self.peers.shown(nodes) if self.peers is not None else nodes

    def manager_addrs(self) -> list[str]:
        """Every reachable manager, the leader first (in heartbeat answers)."""
        return self.peers.addrs() if self.peers is not None else []

    def _managers_changed(self, managers: list[str], target: str) -> None:
        """From the session's thread: keep the managers it learned, for the next start."""
        if self.identity is None:
            return
        identity = self.identity.model_copy(update={"managers": managers, "manager_addr": target})
        identity.save(self.cfg.identity_path)
        self.identity = identity

    def _role_seen(self, role: str, epoch: int) -> None:
        """From the session's thread: the swarm's role for this node, in every heartbeat
        answer. A change to follow (NodeIdentity.follows): it was promoted or demoted."""
        loop = self._loop
        if loop is None or self.identity is None or self._changing_role:
            return
        if not self.identity.follows(role, epoch):
            return
        self._changing_role = True
        asyncio.run_coroutine_threadsafe(self._follow_role(NodeRole(role), epoch), loop)

    async def _follow_role(self, role: NodeRole, epoch: int) -> None:
        """Become what the swarm says (orchestrator.node.promotion has the leader's side)."""
        assert self.identity is not None
        identity = self.identity.model_copy(update={"role": role, "role_epoch": epoch})
        try:
            if role == NodeRole.MANAGER:
                if self.seat is not None:
                    # Demoted and promoted again between two heartbeats: the member
                    # this seat runs was removed from etcd, so it joins afresh.
                    await asyncio.to_thread(self._leave_seat)
                await self.renew_certificate()  # a manager's, which etcd peers accept
                await self._join_control_plane(identity)
            else:
                await asyncio.to_thread(self._leave_seat)
                await self.renew_certificate()
            identity.save(self.cfg.identity_path)
            self.identity = identity
            log.info("this node is now a %s", role)
        except VxswarmError as err:
            log.warning("becoming a %s failed, will retry: %s", role, err)
        finally:
            self._changing_role = False

    async def managers_forever(self) -> None:
        """On a manager: keep the view of the other managers current."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            if self.peers is not None:
                with contextlib.suppress(Exception):
                    await self.peers.probe_once()
                with contextlib.suppress(VxswarmError):
                    if self.leading:
                        await asyncio.to_thread(self.peers.promote_learners)
                    else:
                        await asyncio.to_thread(self.peers.depose_dead_leader)
            # A round every PROBE_PERIOD, however long this one took.
            await asyncio.sleep(max(0.05, began + PROBE_PERIOD - loop.time()))

    def cluster_id(self) -> str | None:
        """The swarm this node is in (port 2377 accepts certificates of it only)."""
        return self.identity.cluster_id if self.identity else None

    def is_member(self, node_id: str) -> bool:
        """Whether `node_id` is still in the swarm: managers know; workers trust the CA."""
        return self.manager.is_member(node_id) if self.manager is not None else True

    def node_url(self, addr: object) -> str:
        """Port 2377 of the node at `addr` (relays from this manager to its agent)."""
        return f"https://{addr}:{self.cfg.port}"

    def require_leader(self) -> Manager:
        if self.manager is None or not self.leading:
            self.leader_url()
            raise Unavailable("this manager is not the leader")
        return self.manager

    # swarm membership -------------------------------------------------------------------

    def _refuse_if_member(self) -> None:
        if self.identity:
            raise Conflict(
                'This node is already part of a swarm. Use "vxswarm swarm leave" to leave this '
                "swarm and join another one."
            )

    async def init_swarm(
        self,
        advertise_addr: str | None,
        heartbeat_period: float,
        cert_expiry: float | None = None,
        *,
        addr_pools: Sequence[str] = (),
        subnet_size: int | None = None,
    ) -> str:
        self._refuse_if_member()
        if heartbeat_period <= 0:
            raise InvalidArgument(
                f"invalid --dispatcher-heartbeat {heartbeat_period}: expected a positive duration"
            )
        # pyroute2's sync API runs its own event loop: keep netlink off this one.
        if advertise_addr:
            advertise_addr = advertised_host(advertise_addr, self.cfg.port)
        addr = await asyncio.to_thread(choose_advertise_addr, advertise_addr)
        # The mint makes the root, this node's key and certificate: a process, off
        # this loop.
        founding = await asyncio.to_thread(
            membership.founding_objects,
            hostname=self.cfg.hostname,
            addr=addr,
            heartbeat_period=heartbeat_period,
            cert_expiry=cert_expiry,
            addr_pools=addr_pools,
            subnet_size=subnet_size,
            engine_version=ENGINE_VERSION,
            now=time.time(),
        )
        node = founding.node
        # This node's certificate first: its etcd member shows it to its peers. The
        # key stays in its file.
        bundle = founding.cluster.ca_bundle.encode()
        self.tls.install(Credentials(bundle, founding.cert_pem, founding.key_pem))
        identity = NodeIdentity(
            node_id=node.id,
            role=NodeRole.MANAGER,
            cluster_id=founding.cluster.id,
            manager_addr=f"{addr}:{self.cfg.port}",
            addr=addr,
            heartbeat_period=heartbeat_period,
        )
        start = control.Founding(peers={node.id: control.peer_url(addr)}, new=True)
        try:
            await self._take_seat(identity, start, wait_leading=True)
            assert self.seat is not None and self.seat.store is not None
            self._keep_data_key(sealing.DataKey.new())
            self.manager = Manager.init(self.seat.store, founding, data_key=self.data_key)
            self._led_term = self.seat.election.term
        except VxswarmError:
            await asyncio.to_thread(self._leave_seat)
            self.tls.forget()
            raise
        await self._adopt_identity(identity)
        return node.id

    async def force_new_cluster(self) -> str:
        """`swarm init --force-new-cluster` on a manager that lost its quorum: its etcd
        member becomes the only one, with every object kept; the other managers are
        workers from now on (promote them again to get back to 3 or 5)."""
        identity = self.identity
        if identity is None or identity.role != NodeRole.MANAGER or self.seat is None:
            raise Conflict(
                "--force-new-cluster needs a manager of a swarm: this node holds no swarm "
                "state (use `vxswarm swarm init` to make a new swarm)"
            )
        if self._seating is not None:
            self._seating.cancel()
            self._seating = None
        old = self.seat
        self.seat = None
        self.manager = None
        await asyncio.to_thread(old.stop)
        seat = self._new_seat(identity, control.Founding(peers={}, new=False))
        seat.member.cfg = dataclasses.replace(seat.member.cfg, force_new_cluster=True)
        await asyncio.to_thread(seat.start, wait_leading=True)
        seat.settle_forced()
        self.seat = seat
        self._open_manager()
        self._led_term = seat.election.term
        if self.manager is None:
            raise Unavailable("the recovered store holds no swarm")
        gone = self.manager.keep_only_manager(identity.node_id)
        log.warning(
            "new cluster forced: %s is the only manager; %s are workers now",
            self.cfg.hostname,
            ", ".join(gone) or "no other manager",
        )
        self.notifier.notify()
        return identity.node_id

    def _leave_seat(self) -> None:
        """Stop this manager's member and forget its data (leaving, a failed init)."""
        self.manager = None
        self.peers = None
        if self._seating is not None:
            self._seating.cancel()
            self._seating = None
        if self.seat is not None:
            self.seat.stop()
            self.seat.wipe()
            self.seat = None
        shutil.rmtree(self.cfg.state_dir / "manager", ignore_errors=True)
        self._data_key = None  # its file went with the directory

    async def join_swarm(self, remote: str, token: str, advertise_addr: str | None) -> NodeIdentity:
        self._refuse_if_member()
        host, port = parse_remote(remote)
        if advertise_addr:
            host_text = advertised_host(advertise_addr, self.cfg.port)
            addr = await asyncio.to_thread(choose_advertise_addr, host_text)
        else:
            addr = source_addr_towards(host, port)
        bundle = await to_manager.fetch_pinned_ca(f"{host}:{port}", token)
        # From here on the manager is verified against the roots the token pinned.
        key, csr = await asyncio.to_thread(minting.node_key)
        req = JoinRequest(
            token=token,
            hostname=self.cfg.hostname,
            addr=addr,
            engine_version=ENGINE_VERSION,
            csr=csr.decode(),
        )
        self.tls.files.save_bundle(bundle)
        verify = tls.client_context(self.tls.files.root_ca_path)
        got = await to_manager.post(
            f"{host}:{port}", "/v1/swarm/join-node", req.model_dump_json(), verify, "join"
        )
        joined = JoinResponse.model_validate_json(got)
        self.tls.install(Credentials(bundle, joined.certificate.encode(), key))
        identity = NodeIdentity(
            node_id=joined.node_id,
            role=joined.role,
            cluster_id=joined.cluster_id,
            manager_addr=f"{host}:{port}",
            addr=addr,
            heartbeat_period=joined.heartbeat_period,
        )
        if identity.role == NodeRole.MANAGER:
            try:
                await self._join_control_plane(identity)
            except VxswarmError:
                await asyncio.to_thread(self._leave_seat)
                self.tls.forget()
                raise
        await self._adopt_identity(identity)
        return identity

    async def _join_control_plane(self, identity: NodeIdentity) -> None:
        """Become an etcd member: the leader adds this manager as a learner and promotes
        it once it caught up; the store opens then."""
        assert self.tls.client is not None
        # A new member starts from nothing (a failed attempt may have left data).
        shutil.rmtree(control.etcd_dir(self.cfg.state_dir), ignore_errors=True)
        got = await to_manager.post(
            identity.manager_addr,
            "/v1/managers/member",
            MemberRequest(node_id=identity.node_id).model_dump_json(),
            self.tls.client,
            "joining the managers",
        )
        member = MemberResponse.model_validate_json(got)
        peers = member.peers
        if member.data_key:
            self._keep_data_key(sealing.DataKey.from_text(member.data_key))
        await self._take_seat(identity, control.Founding(peers=peers, new=False))
        log.info("this node is a manager: etcd member of %d", len(peers))

    async def _adopt_identity(self, identity: NodeIdentity) -> None:
        identity.save(self.cfg.identity_path)
        self.identity = identity
        await asyncio.to_thread(self._start_agent, identity)
        self._start_renewal()
        self.notifier.notify()

    # certificates -----------------------------------------------------------------------

    def _start_renewal(self) -> None:
        if self._renewal is None or self._renewal.done():
            self._renewal = asyncio.create_task(renewal.keep_renewed(self))

    def _ca_digest_seen(self, digest: str) -> None:
        """From the session's thread: the swarm trusts other roots than this node does
        (a CA rotation): renew now, which brings the new bundle."""
        loop = self._loop
        if loop is None or self._renewing or digest == self.tls.bundle_digest():
            return
        self._renewing = True

        async def renew() -> None:
            try:
                await self.renew_certificate()
            except VxswarmError as err:
                log.warning("renewal for the swarm's new roots failed, will retry: %s", err)
            finally:
                self._renewing = False

        asyncio.run_coroutine_threadsafe(renew(), loop)

    async def renew_certificate(self) -> None:
        """A new certificate for this node's key, from the manager (or this leader)."""
        assert self.identity is not None
        held = self.tls.files.load()
        key, cert = held.key_pem, held.cert_pem
        csr = await asyncio.to_thread(minting.csr_for, key)
        if self.manager is not None and self.leading:
            new = await asyncio.to_thread(self.manager.renew_certificate, cert, csr)
            bundle = self.manager.ca_bundle()
        else:
            got = await renewal.ask_manager(
                self.identity.manager_addr, self.tls.files.root_ca_path, cert, csr
            )
            new, bundle = got.certificate.encode(), got.ca_bundle.encode()
        self.tls.install(Credentials(bundle, new, key))
        if self.session is not None and self.tls.client is not None:
            self.session.use_tls(self.tls.client)
        log.info("certificate renewed (valid until %s)", self.tls.info and self.tls.info.not_after)

    async def leave_swarm(self, force: bool) -> None:
        if not self.identity:
            raise Unavailable("This node is not part of a swarm")
        managers = (
            [n for n in self.manager.list_nodes() if n.role == NodeRole.MANAGER]
            if (self.manager is not None)
            else []
        )
        if self.identity.role == NodeRole.MANAGER and not force:
            reachable = len(self.reachable_managers()) or 1
            raise Conflict(roles.leave_warning(max(len(managers), 1), reachable))
        if self.leading and len(managers) > 1:
            # Another manager takes over, then removes this one's member and node.
            with contextlib.suppress(VxswarmError):
                await self.hand_over()
        if not self.leading:
            await self._tell_manager_we_leave(self.identity)
        if self.session:
            await asyncio.to_thread(self.session.stop)
            self.session = None
        if self.self_check:
            await asyncio.to_thread(self.self_check.stop)
            self.self_check = None
        if self.dataplane:
            await asyncio.to_thread(self.dataplane.teardown)
            self.dataplane = None
        await asyncio.to_thread(self._leave_seat)
        if self._renewal:
            self._renewal.cancel()
            self._renewal = None
        self.cfg.identity_path.unlink(missing_ok=True)
        shutil.rmtree(self.cfg.state_dir / "agent", ignore_errors=True)
        self.tls.forget()
        self.identity = None

    async def _tell_manager_we_leave(self, identity: NodeIdentity) -> None:
        try:
            async with httpx.AsyncClient(timeout=5, verify=self.tls.client) as client:
                await client.post(
                    f"https://{identity.manager_addr}/v1/dispatcher/leave",
                    json={"node_id": identity.node_id},
                    extensions=tls.expect(tls.MANAGER_NAME),
                )
        except httpx.TransportError as err:
            log.warning("could not tell the manager this node leaves: %s", err)


def parse_remote(remote: str) -> tuple[IPv4Address, int]:
    """'192.168.56.11:2377' (port optional) → (address, port)."""
    host, _, port = remote.partition(":")
    try:
        ip = IPv4Address(host)
    except ValueError:
        try:
            ip = IPv4Address(socket.gethostbyname(host))
        except OSError:
            raise InvalidArgument(
                f"invalid manager address {remote!r}: expected HOST:PORT, e.g. 192.168.56.11:2377"
            ) from None
    try:
        p = int(port) if port else MANAGER_PORT
        if not 0 < p < 65536:
            raise ValueError
    except ValueError:
        raise InvalidArgument(f"invalid manager address {remote!r}: port must be 1-65535") from None
    return ip, p
