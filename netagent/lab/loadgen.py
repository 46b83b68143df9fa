"""ApacheBench from the lab client while the cluster changes: the zero-loss yardstick.

The Swarm rolling-update article measured lost requests with `ab -r` against a
published port during `docker service update`; the zero-loss tests and the
benchmark (bench/zero_loss.py) do the same here: ab runs from the lab `client`
namespace, and a change is made a few seconds into the run.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv4Interface

from netagent.contract.desired import INGRESS_SUBNET
from netagent.kernel.naming import Names
from netagent.lab import verbs as labcore
from netagent.lab.driver import SwarmLab
from netagent.lb import conntrack


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

    @property
    def timed_out(self) -> int:
        return len(self.timed_out_ports)

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
) -> AbResult:
    """`ab -r -c C -n N URL` from the lab client, with `change()` `after` seconds in.

    ab has no per-request timeout that works while other connections are busy
    (its -s bounds one poll of all of them), so a request whose server died without
    a word would hang it forever. The client's timeout is applied from outside:
    a connection open for `client_timeout` seconds (slowreply answers in 1) is
    reset with `ss -K`, and ab counts that request as failed, as a client with a
    timeout would."""
    client_ns = f"/run/netns/vx-{lab.name}-client"
    argv = [
        "nsenter", f"--net={client_ns}",
        "ab", "-r", "-c", str(concurrency), "-n", str(n), target,
    ]  # fmt: skip
    ab = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timed_out: set[int] = set()
    try:
        time.sleep(after)
        change()
        first_seen: dict[str, float] = {}
        while ab.poll() is None:
            timed_out |= _reset_stuck(client_ns, first_seen, client_timeout)
            time.sleep(0.5)
        out, _ = ab.communicate(timeout=60)
    finally:
        if ab.poll() is None:
            ab.kill()
            ab.wait()
    return replace(parse_ab(out), timed_out_ports=frozenset(timed_out))


def _reset_stuck(client_ns: str, first_seen: dict[str, float], timeout: float) -> set[int]:
    """Reset the client's connections open longer than `timeout`; their local ports."""
    listing = subprocess.run(
        ["nsenter", f"--net={client_ns}", "ss", "-Htn", "state", "established"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    now = time.monotonic()
    open_now = {line.split()[2] for line in listing.splitlines() if len(line.split()) >= 4}
    for local in list(first_seen):
        if local not in open_now:
            del first_seen[local]
    stuck = []
    for local in open_now:
        if now - first_seen.setdefault(local, now) >= timeout:
            stuck.append(local)
    ports = set()
    for local in stuck:
        port = local.rsplit(":", 1)[1]
        ports.add(int(port))
        subprocess.run(
            ["nsenter", f"--net={client_ns}", "ss", "-K", "-tn", "state", "established",
             "sport", f"= :{port}"],
            capture_output=True, check=False,
        )  # fmt: skip
        del first_seen[local]
    return ports


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
    return Cut(conntrack.answered_to(sandbox, doomed), at)
