"""A chaos soak: random faults and changes on a lab under load (bench/chaos.py, and
tests/integration/test_chaos.py with a smaller budget).

The lab (manager1 and workers) runs three services on one overlay: `web`
(slowreply, 6 replicas, published on 8080), `api` (whoami, 4) and `cache` (whoami,
3). `ab -r -c 10` runs from the lab client against the routing mesh on manager1 the
whole time, with a 5 s client timeout (loadgen.ab_during). Every few seconds one
thing happens, drawn at random from a seeded generator:

- kill: SIGKILL of a worker's daemon, then `lab start` runs it again (its tasks go
  on: the data plane is kernel state and the tasks' own processes);
- cut: a worker's underlay cable cut for 5 s (`lab stop`, `lab start`): the one
  fault allowed to cost requests, those in flight to its tasks at the cut;
- update: `service update --force` of a service (a planned change);
- scale: a service scaled up or down by one to three (planned);
- drain: a worker drained, or the drained one made active again (planned).

Then every service must converge, `vxswarm verify` must find every node's kernel and
processes as desired, and after `lab down` nothing of the lab may be left
(namespaces, processes). Failed requests are split into those in flight on a cut
node (allowed) and the rest (none allowed).
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from netagent.kernel.naming import Names
from netagent.lab import loadgen, record
from netagent.lab.driver import SwarmLab, wait_for
from netagent.lab.loadgen import AbResult, Cut
from netagent.tasks import spawn

#: The longest soak this benchmark runs (the issue's bound).
MAX_SECONDS = 600.0
PERIOD = 4.0  # seconds between two faults, plus the fault's own time
CUT_SECONDS = 5.0
CONCURRENCY = 10
CLIENT_TIMEOUT = 5.0
#: service → (image, replicas at the start, extra create flags)
SERVICES = {
    "web": ("slowreply", 6, ("--publish", "8080:8080", "--update-order", "start-first")),
    "api": ("whoami", 4, ()),
    "cache": ("whoami", 3, ()),
}
SCALE_BOUNDS = (2, 9)
KINDS = ("kill", "cut", "update", "scale", "drain")
#: The node whose routing mesh the client's requests enter.
MESH_NODE = "manager1"


@dataclass
class Fault:
    """One thing done to the lab, and when (seconds since the soak began)."""

    at: float
    kind: str
    target: str
    detail: str = ""
    cut: Cut | None = None
    #: A cut's end: time.monotonic() once its node was started again.
    ended: float = 0.0


@dataclass
class Soak:
    """The faults of one soak, drawn from `rng`, for `seconds`."""

    lab: SwarmLab
    rng: random.Random
    seconds: float
    replicas: dict[str, int] = field(
        default_factory=lambda: {name: count for name, (_, count, _) in SERVICES.items()}
    )
    drained: str | None = None
    faults: list[Fault] = field(default_factory=list)
    started: float = 0.0

    @property
    def workers(self) -> list[str]:
        return [n for n in self.lab.nodes if n.startswith("worker")]

    def run(self) -> None:
        """Faults until `seconds` have passed since the call (ab runs meanwhile)."""
        self.started = time.monotonic()
        deadline = self.started + self.seconds
        while time.monotonic() + PERIOD < deadline:
            time.sleep(PERIOD)
            kind = self.rng.choice(KINDS)
            getattr(self, f"_{kind}")()

    def _note(self, kind: str, target: str, detail: str = "", cut: Cut | None = None) -> None:
        at = time.monotonic() - self.started
        self.faults.append(Fault(at, kind, target, detail, cut))
        print(f"  {at:6.1f} s  {kind:6} {target} {detail}".rstrip(), flush=True)

    def _kill(self) -> None:
        node = self.rng.choice(self.workers)
        daemon = record.load(self.lab.root, self.lab.name).machine(node).daemon
        assert daemon is not None, f"{node} has no daemon to kill"
        assert spawn.signal_recorded(daemon.pid, daemon.start_time, signal.SIGKILL)
        self._note("kill", node, f"pid {daemon.pid}")
        wait_for(f"{node}'s daemon gone", lambda: not spawn.alive(daemon.pid, daemon.start_time))
        self.lab.lab("start", node, check=True)

    def _cut(self) -> None:
        node = self.rng.choice(self.workers)
        cut = loadgen.power_cut(self.lab, node, watcher=MESH_NODE)
        self._note("cut", node, f"{cut.in_flight} request(s) in flight to it", cut)
        try:
            time.sleep(CUT_SECONDS)
        finally:
            self.lab.lab("start", node, check=True)
            self.faults[-1].ended = time.monotonic()

    def _update(self) -> None:
        service = self.rng.choice(list(SERVICES))
        self._note("update", service, "--force")
        self.lab.run("service", "update", "--detach", "--force", service, check=True)

    def _scale(self) -> None:
        service = self.rng.choice(list(SERVICES))
        low, high = SCALE_BOUNDS
        step = self.rng.choice((-3, -2, -1, 1, 2, 3))
        count = min(high, max(low, self.replicas[service] + step))
        self.replicas[service] = count
        self._note("scale", service, f"to {count}")
        self.lab.run("service", "scale", f"{service}={count}", check=True)

    def _drain(self) -> None:
        if self.drained is not None:
            node, self.drained = self.drained, None
            self._note("drain", node, "active again")
            self.lab.run("node", "update", "--availability", "active", node, check=True)
            return
        node = self.rng.choice(self.workers)
        self.drained = node
        self._note("drain", node, "drained")
        self.lab.run("node", "update", "--availability", "drain", node, check=True)


@dataclass(frozen=True)
class Outcome:
    seconds: float
    seed: int
    nodes: int
    faults: list[Fault]
    ab: AbResult
    converged_s: float
    verify_failures: list[str]
    left_behind: list[str]
    #: time.monotonic() when the faults began (Fault.at counts from it).
    started: float = 0.0

    @property
    def sent_to_cut_nodes(self) -> frozenset[int]:
        """The client ports of the requests a cut node took with it: in flight to its
        tasks at the cut, or balanced to one of them until the mesh dropped it (reset by
        the client's timeout by the time the node was back, and one timeout after)."""
        ports: set[int] = set()
        for f in self.faults:
            if f.cut is None:
                continue
            ports |= f.cut.in_flight_ports
            until = f.ended + CLIENT_TIMEOUT + 1
            ports |= {
                port
                for port, reset in self.ab.timed_out_to.items()
                if reset.backend in f.cut.backends and f.cut.at <= reset.at <= until
            }
        return frozenset(ports)

    @property
    def failed(self) -> int:
        return self.ab.lost

    @property
    def excused(self) -> int:
        """Failures of requests a cut node took with it (`sent_to_cut_nodes`)."""
        return self.ab.excused(self.sent_to_cut_nodes)

    @property
    def unexplained(self) -> int:
        return self.failed - self.excused

    @property
    def stray_resets(self) -> list[tuple[float, str]]:
        """The client timeouts no cut explains: (seconds into the soak, backend)."""
        excused = self.sent_to_cut_nodes
        return sorted(
            (reset.at - self.started, reset.backend or "?")
            for port, reset in self.ab.timed_out_to.items()
            if port not in excused
        )

    @property
    def ok(self) -> bool:
        return self.unexplained == 0 and not self.verify_failures and not self.left_behind


def verify_all(lab: SwarmLab) -> list[str]:
    """`vxswarm verify` of every node: the lines of those that differ."""
    bad = []
    for node in lab.nodes:
        res = lab.run("verify", "--node", node, timeout=120)
        if res.code != 0:
            bad.append(f"{node}: {(res.out + res.err).strip().splitlines()[-1:]}")
    return bad


def leftovers(lab: SwarmLab) -> list[str]:
    """What of the lab is still there after `lab down`: namespaces and processes."""
    left = [f"netns {n}" for n in lab.lab_namespaces()]
    marker = str(lab.root / lab.name).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    left.append(f"process {entry.name}")
    return left


@contextlib.contextmanager
def chaos_lab(root: Path, nodes: int) -> Iterator[SwarmLab]:
    lab = SwarmLab.create(root, nodes=nodes)
    try:
        lab.wait_ready(timeout=120)
        lab.run("network", "create", "-d", "overlay", "chaos", check=True)
        for name, (image, replicas, extra) in SERVICES.items():
            lab.run("service", "create", "--name", name, "--replicas", str(replicas),
                    "--network", "chaos", *extra, image, check=True)  # fmt: skip
        for name, (_, replicas, _) in SERVICES.items():
            lab.converge(name, replicas, timeout=120)
        yield lab
    finally:
        lab.down()


def soak(root: Path, *, seconds: float, seed: int, nodes: int = 8) -> Outcome:
    """One soak on a fresh lab under `root`; the lab is down when this returns."""
    seconds = min(seconds, MAX_SECONDS)
    with chaos_lab(root, nodes) as lab:
        run = Soak(lab, random.Random(seed), seconds)
        manager = record.load(lab.root, lab.name).machine(MESH_NODE).ip
        ab = loadgen.ab_during(
            lab,
            f"http://{manager}:8080/",
            run.run,
            concurrency=CONCURRENCY,
            after=0.0,
            client_timeout=CLIENT_TIMEOUT,
            seconds=seconds + 5,
            mesh=Names(prefix=lab.node_ns(MESH_NODE)).ingress_ns(),
        )
        if run.drained:
            lab.run("node", "update", "--availability", "active", run.drained, check=True)
        begin = time.monotonic()
        lab.wait_ready(timeout=120)
        for name, count in run.replicas.items():
            lab.converge(name, count, timeout=180)
        converged = time.monotonic() - begin
        verify = verify_all(lab)
    return Outcome(
        seconds, seed, nodes, run.faults, ab, converged, verify, leftovers(lab), run.started
    )
