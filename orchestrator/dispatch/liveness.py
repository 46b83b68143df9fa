"""Telling a dead machine from a restarting daemon, to fail over sooner.

Swarm marks a node down only after 3 heartbeat periods of silence, and only then
replaces its tasks: with the lab's 1 s heartbeat, 3 s of requests sent to tasks
that are gone. Silence alone cannot tell a machine that died from a daemon that
restarts (whose tasks keep serving and must not be replaced). A TCP probe can: a
machine that is up answers a SYN on the node's API port, with SYN-ACK or, while
its daemon restarts, with RST; a machine that is gone answers nothing.

So the manager probes a Ready node once it has missed a heartbeat (SUSPECT_PERIODS
of silence), or at once when the node's assignments long-poll connection closes
(its daemon died, maybe with its machine), and again on every tick while it stays
silent: MISSES probes in a row without an answer within PROBE_TIMEOUT (or host
unreachable) mark it DOWN at once; an answer gives it the usual grace period plus
a restart allowance (orchestrator.dispatch.dispatcher.RESTART_ALLOWANCE), so that a daemon
restarting slowly on a busy machine does not get its running tasks replaced.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from ipaddress import IPv4Address
from typing import Protocol

from netagent.contract.desired import MANAGER_PORT
from orchestrator.cluster.objects import Cluster, Node

log = logging.getLogger(__name__)

#: Heartbeat periods of silence after which a node is probed.
SUSPECT_PERIODS = 1.1
#: How long a closed long-poll keeps a node under suspicion (heartbeat periods).
SUSPICION_PERIODS = 3.0
PROBE_TIMEOUT = 0.4
#: Probes in a row that must go unanswered before the node is marked DOWN.
MISSES = 2


def _answers_blocking(addr: IPv4Address, port: int, timeout: float) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((str(addr), port))
        except ConnectionRefusedError:
            return True  # RST: the machine is up, nobody listens (its daemon restarting)
        except OSError:
            return False  # silence, or no route/neighbour: the machine is gone
        return True


async def answers(addr: IPv4Address, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether anything at addr answers a TCP SYN on `port` (SYN-ACK or RST).

    The connect runs in a thread with a socket timeout, so the kernel measures the
    wait: a busy event loop must not turn a prompt answer into a timeout."""
    return await asyncio.to_thread(_answers_blocking, addr, port, timeout)


class Watched(Protocol):
    """What the prober needs of the manager (the manager sits above the dispatcher)."""

    @property
    def cluster(self) -> Cluster: ...

    def silent_nodes(self, silence: float) -> list[Node]: ...

    def mark_answered(self, node_id: str) -> None: ...

    def mark_unreachable(self, node_id: str, why: str, probed_at: float) -> None: ...


class Prober:
    """Probes silent nodes for one manager; call `check()` from the manager's tick loop."""

    def __init__(self, manager: Watched, port: int = MANAGER_PORT):
        self.manager = manager
        self._port = port
        self._probing: dict[str, asyncio.Task[None]] = {}
        #: Node id → monotonic time until which it is suspect (its long-poll closed).
        self._suspects: dict[str, float] = {}
        #: Node id → unanswered probes in a row.
        self._misses: dict[str, int] = {}

    def suspect(self, node_id: str) -> None:
        period = self.manager.cluster.heartbeat_period
        self._suspects[node_id] = time.monotonic() + SUSPICION_PERIODS * period

    async def check(self, self_id: str | None) -> None:
        period = self.manager.cluster.heartbeat_period
        now = time.monotonic()
        self._suspects = {n: until for n, until in self._suspects.items() if until > now}
        silent = self.manager.silent_nodes(SUSPECT_PERIODS * period)
        suspects = self.manager.silent_nodes(0.0) if self._suspects else []
        for node in [*silent, *(n for n in suspects if n.id in self._suspects)]:
            if node.id == self_id or node.id in self._probing:
                continue
            self._probing[node.id] = asyncio.create_task(self._probe(node.id, node.addr))

    async def _probe(self, node_id: str, addr: IPv4Address) -> None:
        try:
            probed_at = time.time()
            if await answers(addr, self._port):
                self._misses.pop(node_id, None)
                self.manager.mark_answered(node_id)
                return
            self._misses[node_id] = self._misses.get(node_id, 0) + 1
            if self._misses[node_id] >= MISSES:
                del self._misses[node_id]
                self.manager.mark_unreachable(
                    node_id, f"no answer from {addr}:{self._port}", probed_at
                )
        except Exception:
            log.exception("probing node %s failed", node_id)
        finally:
            self._probing.pop(node_id, None)

    def close(self) -> None:
        for task in self._probing.values():
            task.cancel()
        self._probing.clear()
