"""`vxswarm daemon`: one per node; always the agent, the manager after `swarm init`.

State dir layout (one node's disk; the directory 0710, every entry 0700/0600 but the
socket, 0660, which the socket's group reaches through the 0710):
  vxswarm.sock           local API (docker.sock's role, 0660)
  certificates/          this node's key, certificate and the swarm's roots
  agent/identity.json    who this node is in its swarm (absent: not in a swarm)
  agent/...              the data plane's records of what it built
  manager/store.db       the cluster store, with the CA key (leader only)

On start the daemon reads both back, so a restart, even after SIGKILL, loses no
cluster state and adopts the running tasks. The manager side is driven by API
calls and a tick; `Notifier` wakes agents' long-polls when the store changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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
from netagent.contract.desired import MANAGER_PORT, VIEW_PORT
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
from orchestrator.ca import node_certs, tls
from orchestrator.ca.files import Credentials
from orchestrator.cluster.objects import NodeRole
from orchestrator.dispatch.liveness import Prober
from orchestrator.manager import Manager
from orchestrator.node import renewal, to_manager
from orchestrator.node.credentials import NodeTLS

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
        self.manager: Manager | None = None
        self._prober: Prober | None = None
        self.dataplane: DataPlane | None = None
        self.session: Session | None = None
        self.dns: NodeDns | None = None
        self.self_check: SelfCheck | None = None
        self.notifier = Notifier()
        #: This daemon's Prometheus metrics (GET /metrics; see node.api.metrics_routes).
        self.metrics = Metrics()
        #: This node's key, certificate and roots, and the TLS contexts made of them.
        self.tls = NodeTLS(cfg.state_dir)
        self._renewal: asyncio.Task[None] | None = None
        self._renewing = False
        #: The daemon's event loop, for work the session's threads hand back to it.
        self._loop: asyncio.AbstractEventLoop | None = None

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
        self.manager = Manager.open(self.cfg.state_dir)
        self.identity = NodeIdentity.load(self.cfg.identity_path)
        if self.identity and self.tls.load():
            if self.tls.expired():
                # Stopped past its certificate's end: renew before anything else
                # (possible while the CA answers; else the renewal loop keeps trying).
                with contextlib.suppress(Unavailable, PermissionDenied):
                    await self.renew_certificate()
            await asyncio.to_thread(self._start_agent, self.identity)
            self._start_renewal()

    def stop(self) -> None:
        """Stop serving; tasks keep running and are adopted by the next start."""
        if self._renewal:
            self._renewal.cancel()
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
        return f"https://{self.identity.manager_addr}"

    def cluster_id(self) -> str | None:
        """The swarm this node is in (port 2377 accepts certificates of it only)."""
        return self.identity.cluster_id if self.identity else None

    def is_member(self, node_id: str) -> bool:
        """Whether `node_id` is still in the swarm: the leader knows; others trust the CA."""
        return self.manager.is_member(node_id) if self.manager is not None else True

    def node_url(self, addr: object) -> str:
        """Port 2377 of the node at `addr` (relays from this manager to its agent)."""
        return f"https://{addr}:{self.cfg.port}"

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

    async def init_swarm(
        self, advertise_addr: str | None, heartbeat_period: float, cert_expiry: float | None = None
    ) -> str:
        self._refuse_if_member()
        if heartbeat_period <= 0:
            raise InvalidArgument(
                f"invalid --heartbeat-period {heartbeat_period}: expected a positive duration"
            )
        # pyroute2's sync API runs its own event loop: keep netlink off this one.
        addr = await asyncio.to_thread(choose_advertise_addr, advertise_addr)
        manager, node = Manager.init(
            self.cfg.state_dir,
            hostname=self.cfg.hostname,
            addr=addr,
            heartbeat_period=heartbeat_period,
            cert_expiry=cert_expiry,
            engine_version=ENGINE_VERSION,
        )
        self.manager = manager
        # The manager signs this node's own CSR like any other: its key stays in its file.
        key = node_certs.new_key()
        cert = manager.issue_certificate(node.id, node_certs.make_csr(key))
        self.tls.install(Credentials(manager.ca_bundle(), cert, key))
        identity = NodeIdentity(
            node_id=node.id,
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
        bundle = await to_manager.fetch_pinned_ca(f"{host}:{port}", token)
        # From here on the manager is verified against the roots the token pinned.
        key = node_certs.new_key()
        req = JoinRequest(
            token=token,
            hostname=self.cfg.hostname,
            addr=addr,
            engine_version=ENGINE_VERSION,
            csr=node_certs.make_csr(key).decode(),
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
        await self._adopt_identity(identity)
        return identity

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
        csr = node_certs.make_csr(key)
        if self.manager is not None:
            new, bundle = self.manager.renew_certificate(cert, csr), self.manager.ca_bundle()
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
