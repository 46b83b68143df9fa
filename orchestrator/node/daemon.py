"""`vxswarm daemon`: one per node; always the agent, the manager after `swarm init`.

State dir layout (one node's disk):
  vxswarm.sock           local API (docker.sock's role)
  agent/identity.json    who this node is in its swarm (absent: not in a swarm)
  agent/...              the data plane's records of what it built
  manager/store.db       the cluster store (leader only)

On start the daemon reads both back, so a restart, even after SIGKILL, loses no
cluster state and adopts the running tasks. The manager side is driven by API
calls and a tick; `Notifier` wakes agents' long-polls when the store changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import httpx

from netagent.agent.dataplane import DataPlane
from netagent.agent.metrics import Metrics
from netagent.agent.session import Session
from netagent.contract.desired import MANAGER_PORT
from netagent.contract.errors import Conflict, InvalidArgument, PermissionDenied, Unavailable
from netagent.contract.messages import JoinRequest, NodeIdentity
from netagent.dns.node_resolver import NodeDns
from netagent.drift.watch import SelfCheck, interval_from_env
from netagent.kernel.hostaddr import choose_advertise_addr, source_addr_towards
from netagent.kernel.naming import Names
from orchestrator import ENGINE_VERSION
from orchestrator.cluster.objects import NodeRole
from orchestrator.dispatch.liveness import Prober
from orchestrator.manager import Manager

log = logging.getLogger(__name__)

#: Longest a CLI write waits for every node to apply its result.
SETTLE_TIMEOUT = 8.0
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
        self.manager: Manager | None = None
        self._prober: Prober | None = None
        self.dataplane: DataPlane | None = None
        self.session: Session | None = None
        self.dns: NodeDns | None = None
        self.self_check: SelfCheck | None = None
        self.notifier = Notifier()
        #: This daemon's Prometheus metrics (GET /metrics; see node.api.metrics_routes).
        self.metrics = Metrics()

    # lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume whatever this node was before it stopped."""
        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self.manager = Manager.open(self.cfg.state_dir)
        self.identity = NodeIdentity.load(self.cfg.identity_path)
        if self.identity:
            await asyncio.to_thread(self._start_agent, self.identity)

    def stop(self) -> None:
        """Stop serving; tasks keep running and are adopted by the next start."""
        if self.session:
            self.session.stop()
        if self.self_check:
            self.self_check.stop()
        if self.dataplane:
            self.dataplane.close()
        if self.dns:
            self.dns.close()
        if self.manager:
            self.manager.close()

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
        self.session = Session(
            identity,
            apply=self.metrics.timed_apply(self.dataplane.apply),
            statuses=self.dataplane.statuses,
            on_rejected=lambda msg: log.error("removed from the swarm by the manager: %s", msg),
            on_heartbeat=self.metrics.heartbeat_sent,
            on_assignments=self.metrics.assignment_received,
        )
        self.session.start()
        self.self_check = SelfCheck(self.dataplane, self.cfg.self_check)
        self.self_check.start()

    def _status_changed(self) -> None:
        if self.session:
            self.session.status_changed()

    async def tick_forever(self) -> None:
        """The manager's reconcile tick: node health, pending tasks, restarts."""
        while True:
            if self.manager is not None:
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
        if self.manager is not None:
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
                "is_leader": self.manager is not None,
                "manager_addr": self.identity.manager_addr,
            }
        return {
            "name": self.cfg.hostname,
            "engine_version": ENGINE_VERSION,
            "state_dir": str(self.cfg.state_dir),
            "ns_prefix": self.cfg.ns_prefix,
            "swarm": swarm,
        }

    def leader_url(self) -> str | None:
        """Where manager requests go when this node is a manager but not the leader."""
        if self.manager is not None:
            return None
        if not self.identity:
            raise Unavailable(NOT_IN_SWARM)
        if self.identity.role != NodeRole.MANAGER:
            raise Unavailable(WORKER_NODE)
        return f"http://{self.identity.manager_addr}"

    def require_leader(self) -> Manager:
        if self.manager is None:
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

    async def init_swarm(self, advertise_addr: str | None, heartbeat_period: float) -> str:
        self._refuse_if_member()
        if heartbeat_period <= 0:
            raise InvalidArgument(
                f"invalid --heartbeat-period {heartbeat_period}: expected a positive duration"
            )
        # pyroute2's sync API runs its own event loop: keep netlink off this one.
        addr = await asyncio.to_thread(choose_advertise_addr, advertise_addr)
        manager, node, secret = Manager.init(
            self.cfg.state_dir,
            hostname=self.cfg.hostname,
            addr=addr,
            heartbeat_period=heartbeat_period,
            engine_version=ENGINE_VERSION,
        )
        self.manager = manager
        identity = NodeIdentity(
            node_id=node.id,
            secret=secret,
            role=NodeRole.MANAGER,
            cluster_id=manager.cluster.id,
            manager_addr=f"{addr}:{self.cfg.port}",
            addr=addr,
            heartbeat_period=heartbeat_period,
        )
        await self._adopt_identity(identity)
        return node.id

    async def join_swarm(self, remote: str, token: str, advertise_addr: str | None) -> NodeIdentity:
        self._refuse_if_member()
        host, port = parse_remote(remote)
        if advertise_addr:
            addr = await asyncio.to_thread(choose_advertise_addr, advertise_addr)
        else:
            addr = source_addr_towards(host, port)
        req = JoinRequest(
            token=token, hostname=self.cfg.hostname, addr=addr, engine_version=ENGINE_VERSION
        )
        async with httpx.AsyncClient(timeout=10) as client:
            try:
                resp = await client.post(
                    f"http://{host}:{port}/v1/swarm/join-node", content=req.model_dump_json()
                )
            except httpx.TransportError as err:
                raise Unavailable(f"cannot reach the manager at {host}:{port}: {err}") from None
        if resp.status_code == 403:
            raise PermissionDenied(resp.json()["error"]["message"])
        if resp.status_code >= 400:
            raise Unavailable(f"join refused by {host}:{port}: {resp.text[:200]}")
        identity = NodeIdentity.model_validate(
            {**resp.json(), "manager_addr": f"{host}:{port}", "addr": str(addr)}
        )
        await self._adopt_identity(identity)
        return identity

    async def _adopt_identity(self, identity: NodeIdentity) -> None:
        identity.save(self.cfg.identity_path)
        self.identity = identity
        await asyncio.to_thread(self._start_agent, identity)
        self.notifier.notify()

    async def leave_swarm(self, force: bool) -> None:
        if not self.identity:
            raise Unavailable("This node is not part of a swarm")
        if self.identity.role == NodeRole.MANAGER and not force:
            raise Conflict(
                "You are attempting to leave the swarm on a node that is participating as a "
                "manager. Removing the last manager erases all current state of the swarm. Use "
                "`--force` to ignore this message."
            )
        if self.manager is None:
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
        if self.manager is not None:
            self.manager.close()
            self.manager = None
            shutil.rmtree(self.cfg.state_dir / "manager", ignore_errors=True)
        self.cfg.identity_path.unlink(missing_ok=True)
        shutil.rmtree(self.cfg.state_dir / "agent", ignore_errors=True)
        self.identity = None

    async def _tell_manager_we_leave(self, identity: NodeIdentity) -> None:
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                await client.post(
                    f"http://{identity.manager_addr}/v1/dispatcher/leave",
                    json={"node_id": identity.node_id},
                    headers={"X-Vxswarm-Secret": identity.secret},
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
