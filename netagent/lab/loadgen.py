"""ApacheBench from the lab client while the cluster changes: the zero-loss yardstick.

The Swarm rolling-update article measured lost requests with `ab -r` against a
published port during `docker service update`; the zero-loss tests and the
benchmark (bench/zero_loss.py) do the same here: ab runs from the lab `client`
namespace, and a change is made a few seconds into the run.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Interface

from netagent.contract.desired import INGRESS_SUBNET
from netagent.kernel.naming import Names
from netagent.lab import verbs as labcore
from netagent.lab.driver import SwarmLab
from netagent.lb import conntrack


@dataclass(frozen=True)
class Reset:
    """A connection the client's timeout reset: when (time.monotonic()), and the
    backend the routing mesh had balanced it to ("" when not known)."""

    at: float
    backend: str


#: ab's failures (of those `AbResult.lost` counts) for one connection the client's
#: timeout reset: Receive and Exceptions.
FAILURES_PER_RESET = 2


@dataclass(frozen=True)
class AbResult:
    complete: int
    failed: int
    non_2xx: int
    #: ab's own report, kept so a failure shows what ab saw.
    raw: str
    #: The client ports of the connections the client gave up on (see `ab_during`'s
    #: `client_timeout`).
    timed_out_ports: frozenset[int] = frozenset()
    #: Of those, when each was reset and the backend it had been balanced to (its
    #: task's ingress address), when `ab_during` was told which mesh the client uses.
    timed_out_to: Mapping[int, Reset] = field(default_factory=dict)

    @property
    def timed_out(self) -> int:
        return len(self.timed_out_ports)

    @property
    def counts(self) -> dict[str, int]:
        """ab's failed requests by cause: connect, receive, length, exceptions."""
        m = re.search(
            r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", self.raw
        )
        keys = ("connect", "receive", "length", "exceptions")
        return dict(zip(keys, map(int, m.groups()), strict=True)) if m else dict.fromkeys(keys, 0)

    @property
    def lost(self) -> int:
        """The failures that are failures where replies differ in length by design
        (whoami, slowreply): every cause but Length, non-2xx answers included."""
        c = self.counts
        return c["connect"] + c["receive"] + c["exceptions"] + self.non_2xx

    def excused(self, ports: frozenset[int]) -> int:
        """The `lost` failures of the connections on client `ports` that the client's
        timeout reset: ab counts such a request as one Receive and one Exception
        failure (and a Length one, which `lost` leaves out)."""
        return min(self.lost, FAILURES_PER_RESET * len(self.timed_out_ports & ports))

    @property
    def lines(self) -> list[str]:
        """ab's lines about completion and failures (what the benchmark prints)."""
        keys = ("Complete requests", "Failed requests", "Non-2xx", "(Connect")
        return [ln.strip() for ln in self.raw.splitlines() if ln.lstrip().startswith(keys)]


def parse_ab(out: str) -> AbResult:
    def field(name: str) -> int:
        m = re.search(rf"^{name}:\s+(\d+)", out, re.M)
        return int(m.group(1)) if m else 0

    return AbResult(
        field("Complete requests"), field("Failed requests"), field("Non-2xx responses"), out
    )


def ab_during(
    lab: SwarmLab,
    target: str,
    change: Callable[[], None],
    *,
    n: int = 100,
    concurrency: int = 10,
    after: float = 2.0,
    client_timeout: float = 5.0,
    seconds: float | None = None,
    mesh: str | None = None,
) -> AbResult:
    """`ab -r -c C -n N URL` from the lab client (`-t SECONDS` instead of `-n` when
    `seconds` is given), with `change()` `after` seconds in; `change()` runs in a
    thread of its own while the run is watched, and what it raises is raised here.

    ab has no per-request timeout that works while other connections are busy
    (its -s bounds one poll of all of them), so a request whose server died without
    a word would hang it forever. The client's timeout is applied from outside:
    a connection open for `client_timeout` seconds (slowreply answers in 1) is
    reset with `ss -K`, and ab counts that request as failed, as a client with a
    timeout would. With `mesh` (the namespace of the ingress sandbox the client's
    connections enter), each reset connection's backend is read from its conntrack
    entry first, so a failure can be put down to the node that held the task."""
    client_ns = f"/run/netns/vx-{lab.name}-client"
    # ab -t alone stops at 50000 requests: -n after it lifts that.
    count = ("-t", f"{seconds:g}", "-n", "10000000") if seconds else ("-n", str(n))
    argv = [
        "nsenter", f"--net={client_ns}",
        "ab", "-r", "-c", str(concurrency), *count, target,
    ]  # fmt: skip
    ab = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timed_out: dict[int, Reset] = {}
    raised: list[BaseException] = []

    def changing() -> None:
        try:
            time.sleep(after)
            change()
        except BaseException as err:  # raised again in the caller's thread
            raised.append(err)

    changer = threading.Thread(target=changing, name="ab-change", daemon=True)
    changer.start()
    try:
        first_seen: dict[str, float] = {}
        while ab.poll() is None or changer.is_alive():
            timed_out |= _reset_stuck(client_ns, first_seen, client_timeout, mesh)
            time.sleep(0.5)
        out, _ = ab.communicate(timeout=60)
    finally:
        if ab.poll() is None:
            ab.kill()
            ab.wait()
        changer.join()
    if raised:
        raise raised[0]
    return replace(parse_ab(out), timed_out_ports=frozenset(timed_out), timed_out_to=timed_out)


def _reset_stuck(
    client_ns: str, first_seen: dict[str, float], timeout: float, mesh: str | None
) -> dict[int, Reset]:
    """Reset the client's connections open longer than `timeout`: their local ports,
    each with when and the backend `mesh` had balanced it to."""
    listing = subprocess.run(
        ["nsenter", f"--net={client_ns}", "ss", "-Htn", "state", "established"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    now = time.monotonic()
    open_now = {line.split()[2] for line in listing.splitlines() if len(line.split()) >= 4}
    for local in list(first_seen):
        if local not in open_now:
            del first_seen[local]
    stuck = [local for local in open_now if now - first_seen.setdefault(local, now) >= timeout]
    if not stuck:
        return {}
    ports = {int(local.rsplit(":", 1)[1]) for local in stuck}
    backends = _backends(mesh, ports) if mesh else {}
    for local in stuck:
        port = local.rsplit(":", 1)[1]
        subprocess.run(
            ["nsenter", f"--net={client_ns}", "ss", "-K", "-tn", "state", "established",
             "sport", f"= :{port}"],
            capture_output=True, check=False,
        )  # fmt: skip
        del first_seen[local]
    return {port: Reset(now, backends.get(port, "")) for port in ports}


def _backends(mesh: str, ports: set[int]) -> dict[int, str]:
    """Client port → the backend `mesh`'s conntrack balanced it to."""
    return {
        e.tuple_orig.sport: e.tuple_reply.saddr
        for e in conntrack.entries(mesh)
        if e.tuple_orig.sport in ports
    }


def doing(lab: SwarmLab, *args: str) -> Callable[[], None]:
    """The change `vxswarm ARGS...` (made against the lab's manager), to run mid-test."""

    def change() -> None:
        lab.run(*args, check=True)

    return change


@dataclass(frozen=True)
class Cut:
    """A `power_cut`: the requests in flight to the node's tasks, and when it happened."""

    #: The client ports of the connections the node's tasks had answered and not
    #: closed when its cable was cut: the only requests a failover may lose.
    in_flight_ports: frozenset[int]
    at: float  # time.monotonic() of the cut
    #: The ingress addresses of the node's tasks: the backends that went with it.
    backends: frozenset[str] = frozenset()

    @property
    def in_flight(self) -> int:
        return len(self.in_flight_ports)


def power_cut(lab: SwarmLab, node: str, watcher: str) -> Cut:
    """`lab stop NODE` with no delay, then the connections in flight to NODE's tasks
    through `watcher`'s routing mesh (its ingress sandbox's conntrack).

    Read after the cut, so a connection answered in the instant before it counts;
    the node answers nothing after it, and the requests it never answered are
    balanced again, so the set is final."""
    hosts = {n["id"]: n["hostname"] for n in lab.json("node", "ls")}
    doomed = {
        IPv4Interface(a["address"]).ip
        for service in lab.json("service", "ls")
        for t in lab.tasks(service["spec"]["name"])
        if hosts.get(t.get("node_id") or "") == node and t["desired_state"] == "running"
        for a in t["attachments"]
        if IPv4Interface(a["address"]) in INGRESS_SUBNET
    }
    sandbox = Names(prefix=f"vx-{lab.name}-{watcher}").ingress_ns()
    at = time.monotonic()
    labcore.stop(node, name=lab.name, root=lab.root)
    return Cut(conntrack.answered_to(sandbox, doomed), at, frozenset(map(str, doomed)))
