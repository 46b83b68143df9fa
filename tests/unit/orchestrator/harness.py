"""A small swarm around a real Manager, for unit tests of the control plane.

`Swarm` is manager1 + worker1 + worker2 in a store of the shared etcd (tests.etcd), with
their secrets and an overlay "webnet", driven by an explicit clock (`PERIOD` is its
heartbeat period) and by fake agents that report what they were told to do.
tests/unit/conftest.py offers it as the `swarm` fixture; import `Swarm` and `PERIOD`
from here for annotations and times.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from netagent.contract.desired import DesiredTaskState, NodeDesiredState, TaskState, TaskStatus
from orchestrator.ca.sealing import DataKey
from orchestrator.cluster.objects import (
    NetworkAttachmentSpec,
    NetworkSpec,
    NodeRole,
    Service,
    ServiceSpec,
    Task,
)
from orchestrator.dispatch.assignments import digest
from orchestrator.manager import Manager
from orchestrator.ops import membership
from tests.etcd import Seat
from tests.factories import csr

PERIOD = 5.0


class Clock:
    """The manager's time, moved by the test."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def applied(ds: NodeDesiredState) -> list[TaskStatus]:
    """What an agent reports once it applied `ds`: tasks to run run, others are shut down."""
    return [
        TaskStatus(
            task_id=t.id,
            state=TaskState.RUNNING
            if t.desired_state == DesiredTaskState.RUNNING
            else TaskState.SHUTDOWN,
        )
        for t in ds.tasks
    ]


def found(seat: Seat, hostname: str = "manager1", addr: str = "192.168.56.11", **kw):
    """A new swarm in `seat`'s store with `hostname` its first manager; (manager, node)."""
    founding = membership.founding_objects(
        hostname=hostname,
        addr=IPv4Address(addr),
        heartbeat_period=kw.pop("heartbeat_period", PERIOD),
        engine_version="0.1.0",
        now=kw["clock"]() if "clock" in kw else 1_000_000.0,
    )
    return Manager.init(seat.store, founding, **kw), founding.node


class Swarm:
    """manager1 + worker1 + worker2, with their certificates, and an overlay "webnet"."""

    def __init__(self, seat: Seat):
        self.seat = seat
        self.clock = Clock()
        #: The swarm's data key for secrets, as a manager's file would hold it.
        self.data_key = DataKey.new()
        self.m, manager1 = found(seat, clock=self.clock, data_key=lambda: self.data_key)
        self.nodes = {"manager1": manager1}
        self.certs = {"manager1": self.m.issue_certificate(manager1.id, csr())}
        for i, name in enumerate(["worker1", "worker2"], start=12):
            self.join(name, i)
        self.m.create_network(NetworkSpec(name="webnet"))

    def join(self, name: str, last_octet: int) -> None:
        """A worker `name` at 192.168.56.<last_octet> joins."""
        node, cert = self.m.join(
            self.m.join_token(NodeRole.WORKER),
            hostname=name,
            addr=IPv4Address(f"192.168.56.{last_octet}"),
            engine_version="0.1.0",
            csr=csr(),
        )
        self.nodes[name] = node
        self.certs[name] = cert

    def id(self, hostname: str) -> str:
        return self.nodes[hostname].id

    def web(self, replicas: int = 3, **kw) -> Service:
        spec = ServiceSpec(
            name="web",
            image="whoami",
            replicas=replicas,
            networks=[NetworkAttachmentSpec(target="webnet")],
            **kw,
        )
        return self.m.create_service(spec)

    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    def tick(self) -> bool:
        return self.m.tick(self.clock.t)

    def report(self, hostname: str, state: TaskState | None = None, **only) -> None:
        """Heartbeat `hostname`; with `state`, every task it must act on reports it."""
        statuses = []
        if state is not None:
            for t in self.m.desired_state(self.id(hostname)).tasks:
                if "slot" in only and t.slot != only["slot"]:
                    continue
                statuses.append(TaskStatus(task_id=t.id, state=state))
        self.m.heartbeat(self.id(hostname), statuses)

    def run_all(self) -> None:
        """Every agent starts what it is given (and stops what it must stop)."""
        for name in self.nodes:
            ds = self.m.desired_state(self.id(name))
            self.m.heartbeat(self.id(name), applied(ds), digest(ds))

    def settle(self) -> None:
        """Agents apply and report twice: draining tasks get stopped, stopped ones reaped."""
        for _ in range(2):
            self.run_all()
            self.tick()

    def current(self) -> list[Task]:
        return self.m.list_tasks(include_history=False)

    def placement(self) -> dict[int, str]:
        host = {n.id: n.hostname for n in self.m.list_nodes()}
        return {t.slot: host[t.node_id] for t in self.current()}

    def reopen(self) -> Manager:
        """The manager a new leader would be over the same store (fresh dispatcher)."""
        manager = Manager.open(self.seat.store, clock=self.clock, data_key=lambda: self.data_key)
        assert manager is not None
        return manager
