"""Generic fixtures for root integration tests: unique names, namespaces, fake nodes.

Every kernel object carries the per-test `run_id` (4 random hex chars) so two
runs on one box never collide, and every fixture cleans up in its finalizer even
when the test fails. Nothing here touches the host's root namespace: fake nodes
are fresh namespaces joined by a veth pair created directly between them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

import pytest

from netagent.agent.dataplane import DataPlane, wipe_node
from netagent.contract.desired import RemoteEndpoint
from netagent.contract.errors import InvalidArgument
from netagent.kernel import netns
from netagent.kernel.naming import Names
from tests import factories


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")


@pytest.fixture
def run_id() -> str:
    """A short random name part unique to this test run."""
    return secrets.token_hex(2)


@pytest.fixture
def netns_factory(run_id: str) -> Iterator[Callable[[str], str]]:
    """make(label) -> a new netns named vxt<run_id>-<label>; all removed afterwards."""
    _need_root()
    made: list[str] = []

    def make(label: str) -> str:
        name = f"vxt{run_id}-{label}"
        if not netns.create(name):
            raise RuntimeError(f"netns {name} already exists")
        made.append(name)
        run_in(name, "ip", "link", "set", "lo", "up")
        return name

    yield make
    for name in reversed(made):
        netns.remove(name)


@pytest.fixture
def lone_ns(netns_factory) -> str:
    """A namespace whose eth0 (10.9.9.1/24) is cabled to nothing: no other machine
    on its subnet ever answers."""
    ns = netns_factory("lone")
    run_in(ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "wire")
    run_in(ns, "ip", "addr", "add", "10.9.9.1/24", "dev", "eth0")
    run_in(ns, "ip", "link", "set", "eth0", "up")
    run_in(ns, "ip", "link", "set", "wire", "up")
    return ns


@dataclass(frozen=True)
class FakeNode:
    """A namespace standing for one machine, with `eth0` on a shared underlay."""

    label: str
    ns: str
    underlay: IPv4Interface

    @property
    def ip(self) -> IPv4Address:
        return self.underlay.ip


@pytest.fixture
def node_pair(netns_factory) -> tuple[FakeNode, FakeNode]:
    """Two fake nodes whose eth0s are the two ends of one veth (192.168.77.1/.2)."""
    a = FakeNode("n1", netns_factory("n1"), IPv4Interface("192.168.77.1/24"))
    b = FakeNode("n2", netns_factory("n2"), IPv4Interface("192.168.77.2/24"))
    with netns.ipr(a.ns) as ipr, netns.open_ns_fd(b.ns) as fd:
        ipr.link("add", ifname="eth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
    for node in (a, b):
        run_in(node.ns, "ip", "addr", "add", str(node.underlay), "dev", "eth0")
        run_in(node.ns, "ip", "link", "set", "eth0", "up")
    return a, b


def run_in(ns: str | None, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command inside namespace `ns` (via `ip netns exec`)."""
    argv = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 10.0) -> object:
    """Poll until `predicate()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


# -- data plane: two fake nodes, each with its own DataPlane -------------------------

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StandInWorkloads:
    """Test stand-in for netagent.tasks.workloads: image "host" runs its command as is."""

    def resolve(self, spec, task) -> list[str]:
        if spec.image != "host":
            raise InvalidArgument(f"unknown image {spec.image!r}: expected 'host'")
        return list(spec.command)

    def environment(self, task) -> dict[str, str]:
        return {"PATH": HOST_PATH, **dict(task.spec.env)}

    def ready_port(self, spec) -> int | None:
        return None  # RUNNING as soon as started


class DataPlaneCluster:
    """Fake nodes with a DataPlane each, and helpers to build their desired states."""

    VNI = 4097
    SUBNET = "10.0.0.0/24"

    def __init__(self, run_id: str, nodes: tuple[FakeNode, ...], root, workloads=None):
        self.run_id = run_id
        self.nodes = nodes
        self.root = root
        self.workloads = workloads if workloads is not None else StandInWorkloads()
        self.names = [Names(prefix=f"vxt{run_id}-{n.label}") for n in nodes]
        self.events: list[list] = [[] for _ in nodes]
        self.dps: list = []
        for i in range(len(nodes)):
            self.dps.append(self.new_dataplane(i))
        self.version = 0

    def state_dir(self, i: int):
        return self.root / self.nodes[i].label

    def new_dataplane(self, i: int):
        return DataPlane(
            self.names[i],
            self.state_dir(i),
            self.nodes[i].ip,
            node_ns=self.nodes[i].ns,
            on_status=self.events[i].append,
            workloads=self.workloads,
        )

    def task(self, slot: int, cmd=("sleep", "1000"), grace: float = 10.0, image="host",
             desired="running", service="web"):  # fmt: skip
        """Task `<service>.<slot>` at 10.0.0.<slot+2> with a unique id."""
        tid = (self.run_id + f"{slot:04d}" + secrets.token_hex(13))[:25]
        return factories.task(
            tid, f"{service}.{slot}", service_id="svc" + self.run_id, image=image, command=cmd,
            grace=grace, desired=desired, ip=f"10.0.0.{slot + 2}", network_id="net1",
        )  # fmt: skip

    def network(self, peers=()):
        return factories.network("net1", vni=self.VNI, subnet=self.SUBNET, peers=peers)

    def peers_for(self, i: int, layout: dict[int, list]) -> list:
        """Remote endpoints node i must know: running tasks on every other node."""
        out = []
        for j, tasks in layout.items():
            if j == i:
                continue
            for t in tasks:
                if t.desired_state == "running":
                    for a in t.attachments:
                        out.append(RemoteEndpoint(ip=a.address.ip, mac=a.mac,
                                                  vtep=self.nodes[j].ip))  # fmt: skip
        return out

    def desired(self, i: int, layout: dict[int, list], with_network: bool = True):
        self.version += 1
        nets = (self.network(self.peers_for(i, layout)),) if with_network else ()
        return factories.state(
            self.nodes[i].label, self.version, networks=nets, tasks=layout.get(i, ())
        )

    def apply(self, layout: dict[int, list], only: int | None = None) -> list:
        """Apply `layout` (node index -> tasks) to every node (or just `only`)."""
        idx = range(len(self.nodes)) if only is None else [only]
        return [self.dps[i].apply(self.desired(i, layout)) for i in idx]

    def status(self, i: int, task_id: str):
        for s in self.dps[i].statuses():
            if s.task_id == task_id:
                return s
        return None

    def wait_state(self, i: int, task_id: str, state, timeout: float = 15.0):
        return wait_for(
            f"task {task_id} on node {i} to be {state}",
            lambda: (s := self.status(i, task_id)) is not None and s.state == state and s,
            timeout,
        )

    def teardown(self) -> None:
        for i, dp in enumerate(self.dps):
            with contextlib.suppress(Exception):  # still wiped from the records below
                dp.teardown()
            wipe_node(self.state_dir(i), self.names[i], self.nodes[i].ns)


@pytest.fixture
def dp_cluster(run_id, node_pair, tmp_path) -> Iterator[DataPlaneCluster]:
    """Two fake nodes (n1, n2) each with a DataPlane using the stand-in workloads."""
    cluster = DataPlaneCluster(run_id, node_pair, tmp_path)
    try:
        yield cluster
    finally:
        cluster.teardown()


def links_in(ns: str) -> set[str]:
    """Link names in namespace `ns`."""
    with netns.ipr(ns) as ipr:
        return {link.get("IFLA_IFNAME") for link in ipr.get_links()}


def run_netns(run_id: str) -> set[str]:
    """The namespaces of one test run (others on the box come and go meanwhile)."""
    return {n for n in netns.list_netns() if n.startswith(f"vxt{run_id}-")}
