"""Manager failover benchmark: the leader's machine stops; writes, tasks, mesh, memory.

On a fresh 5-node lab (manager1..3, each running an etcd member; worker1, worker2), an
overlay network and `web` (whoami, 6 replicas, published `-p 8080:80`, spread over the
five nodes), each run stops the current leader's machine (`lab stop`: its daemon
SIGKILLed, its etcd member dies with it, its cable cut first) and measures:

1. Writes accepted again, from just before the stop call. A surviving manager (the
   first one by name) is sent `service update --label-add failover=... web` (the two
   API calls the CLI makes, GET the spec and POST it back, over the manager's unix
   socket, so no CLI start-up is counted) every 100 ms until one is answered OK; an
   attempt unanswered after --attempt-timeout s is abandoned and sent again (a user
   pressing Ctrl-C and retrying). Goal ≤ 3 s. The breakdown, polled every 100 ms on the
   same survivor: `node ls` shows a new leader; the label is in the store (the write
   was made, whether or not its caller got the answer yet: a write is answered only
   once every Ready node applied it, or after the daemon's settle timeout). An attempt
   that hangs delays the next one: "stored" depends on --attempt-timeout too.
2. Tasks restarted by the failover: the ids of the tasks running on the four surviving
   nodes just before the stop, against those running 10 s after the new leader is in
   place (and once 6 replicas run again), as the leader sees them (a follower's copy
   of the store may lag). The stopped node's own tasks being replaced
   is expected and not counted. Goal 0. Lines in the survivors' daemon.log saying a
   surviving node went DOWN are shown beside it.
3. Failed requests through the routing mesh: `ab -r -c 10 -n 500` (ab_during, from the
   lab client) to worker1's address, 192.168.56.14:8080, the stop made 0.2 s into the
   run. `web` stays spread over all the nodes, the stopped leader included, so
   requests in flight to its tasks at the cut may legitimately fail: as in
   bench/zero_loss.py (loadgen's `Cut`), the connections its tasks had answered and not
   closed are read from worker1's ingress conntrack just after the cut, connections
   open 5 s are reset by ab_during and matched against them; the figure is ab's failed
   requests less those (at most 3 per such connection, as ab may count one request
   thrice). whoami's replies differ in length (hostname, client port), so ab's Length
   failures are not failures; Connect, Receive, Exceptions and non-2xx are. Goal 0.
   Undisturbed, 500 whoami requests take well under a second: the run lasts as long
   as requests sent to the stopped node's tasks stall (until the survivors drop them
   from their load balancers); `-n` makes it longer.
4. Memory with the service running, just before the stop: VmRSS of each manager's
   daemon (the process whose command line holds `daemon --state-dir <its state dir>`)
   and of its etcd member (data dir in its state dir). Goals: daemon ≤ 80 MB, etcd
   member ≤ 40 MB.

Then the stopped manager is started again and the next run waits until the three
managers are reachable, and spreads `web` again (`service update --force`) so that the
next leader runs tasks too. The lab lives in a temporary root and is always taken down.
Results go to docs/benchmarks.md, section "Manager failover (etcd)" (not with --no-write).

Run as root:  .venv/bin/python bench/failover_managers.py [--runs 3] [--no-write] [--logs DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a file, the repository's `bench` package too

from bench.convergence import write_section  # noqa: E402
from netagent.contract.desired import INGRESS_SUBNET  # noqa: E402
from netagent.kernel.naming import Names  # noqa: E402
from netagent.lab import verbs as labcore  # noqa: E402
from netagent.lab.driver import SwarmLab, wait_for  # noqa: E402
from netagent.lab.loadgen import AbResult, Cut, ab_during  # noqa: E402
from netagent.lb import conntrack  # noqa: E402
from orchestrator.cli.service_flags import apply_update  # noqa: E402
from orchestrator.node.client import Endpoint  # noqa: E402

TITLE = "Manager failover (etcd)"
MANAGERS = ("manager1", "manager2", "manager3")
SERVICE = "web"
REPLICAS = 6
MESH_NODE = "worker1"
MESH_URL = "http://192.168.56.14:8080/"
CONCURRENCY = 10
POLL = 0.1
#: Seconds after the new leader shows before the running tasks are compared.
AFTER_LEADER = 10.0
#: Seconds into the ab run when the leader is stopped.
AB_AFTER = 0.2
#: Longest any one wait of a run may take.
DEADLINE = 120.0

GOAL_WRITE_S = 3.0
GOAL_DAEMON_MB = 80.0
GOAL_ETCD_MB = 40.0


class Refused(Exception):
    """The daemon answered with an error."""


class Api:
    """The user API of one node's daemon (its unix socket), with a timeout per call.

    httpx directly rather than orchestrator's Client: a follower's reads without a
    leader carry a staleness header the Client prints on stderr at every poll."""

    def __init__(self, lab: SwarmLab, node: str, timeout: float):
        endpoint = Endpoint.parse(lab.socket(node))
        self._http = httpx.Client(
            base_url=endpoint.url,
            transport=httpx.HTTPTransport(uds=endpoint.uds),
            timeout=timeout,
        )

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = self._http.request(method, path, json=body, params=params or None)
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {resp.status_code}: {resp.text[:200]}"
            raise Refused(message)
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def close(self) -> None:
        self._http.close()


def statuses(api: Api) -> dict[str, str]:
    """MANAGER STATUS of every manager as this node shows it (leader / reachability)."""
    out = {}
    for n in api.get("/v1/nodes"):
        s = n.get("manager_status")
        if n["role"] == "manager" and s:
            out[n["hostname"]] = "leader" if s["leader"] else s["reachability"]
    return out


def all_reachable(lab: SwarmLab, via: str) -> str:
    """The leader's name once the three managers are up, one leading (else "")."""
    api = Api(lab, via, timeout=5)
    try:
        got = statuses(api)
    except (httpx.HTTPError, Refused):
        return ""
    finally:
        api.close()
    ok = set(got) == set(MANAGERS) and list(got.values()).count("leader") == 1
    ok = ok and all(s in ("leader", "reachable") for s in got.values())
    return next((h for h, s in got.items() if s == "leader"), "") if ok else ""


def running(api: Api) -> list[dict]:
    return [
        t
        for t in api.get("/v1/tasks", service=SERVICE)
        if t["desired_state"] == "running" and t["status"]["state"] == "running"
    ]


def hostnames(api: Api) -> dict[str, str]:
    return {n["id"]: n["hostname"] for n in api.get("/v1/nodes")}


# memory ----------------------------------------------------------------------------------


def _cmdlines() -> dict[int, list[bytes]]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
    return out


def daemon_pids(lab: SwarmLab, node: str, procs: dict[int, list[bytes]]) -> list[int]:
    state_dir = str(lab.root / lab.name / node).encode()
    return [
        pid
        for pid, argv in procs.items()
        if b"daemon" in argv
        and any(
            a == b"--state-dir" and b == state_dir for a, b in zip(argv, argv[1:], strict=False)
        )
    ]


def etcd_pids(lab: SwarmLab, node: str, procs: dict[int, list[bytes]]) -> list[int]:
    """As tests/integration/test_managers.py: etcd with its data dir in the node's."""
    data_dir = str(lab.root / lab.name / node / "manager" / "etcd").encode()
    return [
        pid
        for pid, argv in procs.items()
        if argv and argv[0].endswith(b"etcd") and any(data_dir in a for a in argv)
    ]


def rss_mb(pids: list[int], field: str = "VmRSS") -> float | None:
    """The sum of one /proc/<pid>/status memory field over `pids`, in MB: VmRSS, or its
    parts RssAnon (the process's own: Python's objects) and RssFile (mapped files, the
    shared libraries, which other processes share)."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        total += next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith(field))
    return total / 1024 if pids else None


def memory(lab: SwarmLab) -> dict[str, tuple[float | None, float | None]]:
    """Manager → (daemon RSS, etcd member RSS), in MB."""
    procs = _cmdlines()
    return {
        m: (rss_mb(daemon_pids(lab, m, procs)), rss_mb(etcd_pids(lab, m, procs))) for m in MANAGERS
    }


def daemon_split(lab: SwarmLab) -> dict[str, tuple[float | None, float | None]]:
    """Manager → its daemon's (anonymous, file-backed) resident MB."""
    procs = _cmdlines()
    return {
        m: (rss_mb(pids, "RssAnon"), rss_mb(pids, "RssFile"))
        for m in MANAGERS
        for pids in [daemon_pids(lab, m, procs)]
    }


# one run ---------------------------------------------------------------------------------


@dataclass
class Watch:
    """The survivor's view after the stop, polled by threads while ab runs."""

    lab: SwarmLab
    via: str
    victim: str
    token: str
    at: float  # time.monotonic() just before the stop
    attempt_timeout: float
    new_leader: str = ""
    leader_s: float | None = None
    stored_s: float | None = None
    stored_value: str = ""
    accepted_s: float | None = None
    attempts: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for fn in (self._leader, self._stored, self._writes):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self.threads.append(t)

    def join(self) -> None:
        for t in self.threads:
            t.join(DEADLINE + self.attempt_timeout)

    def _poll(self, probe: Callable[[Api], bool], timeout: float = 2.0) -> None:
        api = Api(self.lab, self.via, timeout=timeout)
        try:
            while time.monotonic() - self.at < DEADLINE:
                try:
                    if probe(api):
                        return
                except (httpx.HTTPError, Refused):
                    pass
                time.sleep(POLL)
        finally:
            api.close()

    def _leader(self) -> None:
        def probe(api: Api) -> bool:
            found = [h for h, s in statuses(api).items() if s == "leader" and h != self.victim]
            if found:
                self.leader_s = time.monotonic() - self.at
                self.new_leader = found[0]
            return bool(found)

        self._poll(probe)

    def _stored(self) -> None:
        def probe(api: Api) -> bool:
            value = api.get(f"/v1/services/{SERVICE}")["spec"].get("labels", {}).get("failover")
            if value and value.startswith(self.token):
                self.stored_s = time.monotonic() - self.at
                self.stored_value = value
            return self.stored_s is not None

        self._poll(probe)

    def _writes(self) -> None:
        api = Api(self.lab, self.via, timeout=self.attempt_timeout)
        try:
            while time.monotonic() - self.at < DEADLINE:
                sent = time.monotonic()
                label = f"{self.token}a{len(self.attempts) + 1}"
                try:
                    spec = api.get(f"/v1/services/{SERVICE}")["spec"]
                    spec = apply_update(spec, {"label_add": [f"failover={label}"]})
                    api.call("POST", f"/v1/services/{SERVICE}/update", {"spec": spec})
                except httpx.TimeoutException:
                    self.attempts.append(f"{label}: no answer in {self.attempt_timeout:g} s")
                except (httpx.HTTPError, Refused) as err:
                    took = time.monotonic() - sent
                    self.attempts.append(f"{label}: {str(err)[:90]} ({took:.1f} s)")
                else:
                    self.accepted_s = time.monotonic() - self.at
                    self.attempts.append(f"{label}: ok ({time.monotonic() - sent:.1f} s)")
                    return
                time.sleep(POLL)
        finally:
            api.close()


@dataclass
class Run:
    victim: str
    via: str
    stop_call_s: float
    watch: Watch
    ab: AbResult
    cut: Cut
    restarted: list[str]
    back_s: float | None
    down_lines: list[str]
    rss: dict[str, tuple[float | None, float | None]]
    split: dict[str, tuple[float | None, float | None]]

    @property
    def ab_seconds(self) -> float | None:
        m = re.search(r"^Time taken for tests:\s+([\d.]+)", self.ab.raw, re.M)
        return float(m.group(1)) if m else None

    @property
    def lost(self) -> int:
        return self.ab.lost

    @property
    def excused(self) -> int:
        return self.ab.excused(self.cut.in_flight_ports)

    @property
    def longest_ms(self) -> int | None:
        m = re.search(r"^\s*100%\s+(\d+) \(longest request\)", self.ab.raw, re.M)
        return int(m.group(1)) if m else None

    @property
    def covered(self) -> bool:
        """Whether ab still ran when the leader stopped and gave its report (else its
        figure says nothing: ab gives up on a request that waits longer than 30 s)."""
        if self.ab_aborted:
            return False
        return self.ab_seconds is None or self.ab_seconds > AB_AFTER

    @property
    def unexplained(self) -> int | None:
        return self.lost - self.excused if self.covered else None

    @property
    def ab_aborted(self) -> str:
        """ab's own error line when it ended without its report."""
        if "Complete requests" in self.ab.raw:
            return ""
        lines = [ln for ln in self.ab.raw.splitlines() if ln.strip()]
        return lines[-1] if lines else "no output"


def converge(lab: SwarmLab, leader: str) -> None:
    """Wait for the replicas to run, as the leader sees them.

    Not SwarmLab.converge, which asks manager1, a follower after a failover: a
    follower's copy of the store was seen missing tasks for minutes (its watch skips
    all but the first key of a multi-key etcd transaction)."""
    api = Api(lab, leader, timeout=30)
    try:
        wait_for(f"{REPLICAS} running tasks", lambda: len(running(api)) == REPLICAS, DEADLINE)
    finally:
        api.close()


def spread(lab: SwarmLab, leader: str) -> None:
    """Replace every task so that the replicas spread over all five nodes again."""
    lab.run("service", "update", "--force", SERVICE, node=leader, check=True, timeout=120)
    wait_for(
        "the update done",
        lambda: (
            (
                lab.json("service", "inspect", SERVICE, node=leader)[0].get("update_status") or {}
            ).get("state")
            not in ("updating", "rollback_started")
        ),
        timeout=DEADLINE,
    )


def doomed_ips(tasks: list[dict], names: dict[str, str], victim: str) -> set[IPv4Address]:
    """The routing-mesh addresses of the victim's tasks."""
    return {
        IPv4Interface(a["address"]).ip
        for t in tasks
        if names.get(t["node_id"]) == victim
        for a in t["attachments"]
        if IPv4Interface(a["address"]) in INGRESS_SUBNET
    }


def down_lines(lab: SwarmLab, survivors: list[str], since: float) -> list[str]:
    """Survivors' daemon.log lines since `since` (wall clock) saying a survivor is DOWN."""
    out = []
    for node in survivors:
        log = lab.root / lab.name / node / "daemon.log"
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            if " is DOWN" not in line or not any(f"node {s} (" in line for s in survivors):
                continue
            try:
                stamp = datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").timestamp()
                stamp += int(line[20:23]) / 1000
            except ValueError:
                continue
            if stamp >= since:
                out.append(f"{node}/daemon.log, stop +{stamp - since:.1f} s: {line[24:]}")
    return out


def one_run(lab: SwarmLab, i: int, n: int, attempt_timeout: float) -> Run:
    leader = wait_for("3 managers reachable", lambda: all_reachable(lab, "manager1"), DEADLINE)
    if i > 1:
        spread(lab, leader)
    converge(lab, leader)
    victim = leader
    survivors = [m for m in MANAGERS if m != victim]
    via = survivors[0]
    api = Api(lab, leader, timeout=30)
    try:
        names = hostnames(api)
        tasks = running(api)
    finally:
        api.close()
    if not any(names[t["node_id"]] == victim for t in tasks):
        print(f"  note: the leader {victim} runs no task of {SERVICE}", flush=True)
    before = {t["id"]: names[t["node_id"]] for t in tasks}
    doomed = doomed_ips(tasks, names, victim)
    rss, split = memory(lab), daemon_split(lab)
    sandbox = Names(prefix=lab.node_ns(MESH_NODE)).ingress_ns()
    box: dict[str, Any] = {}

    def change() -> None:
        at = time.monotonic()
        box["wall"] = time.time()
        labcore.stop(victim, name=lab.name, root=lab.root)
        box["stop_call"] = time.monotonic() - at
        box["cut"] = Cut(conntrack.answered_to(sandbox, doomed), at)
        box["watch"] = watch = Watch(lab, via, victim, f"r{i}", at, attempt_timeout)
        watch.start()

    ab = ab_during(lab, MESH_URL, change, n=n, concurrency=CONCURRENCY, after=AB_AFTER)
    watch: Watch = box["watch"]
    watch.join()
    at = watch.at
    if watch.leader_s is not None:
        time.sleep(max(0.0, at + watch.leader_s + AFTER_LEADER - time.monotonic()))

    # Tasks: wait for the 6 replicas again (off the victim), then compare, as the new
    # leader sees them (a follower's copy may lag: see `converge`).
    api = Api(lab, watch.new_leader or via, timeout=10)
    back_s = None
    try:
        while time.monotonic() - at < DEADLINE:
            try:
                names = hostnames(api)
                now = running(api)
            except (httpx.HTTPError, Refused):
                time.sleep(0.5)
                continue
            if len(now) >= REPLICAS and all(names.get(t["node_id"]) != victim for t in now):
                back_s = time.monotonic() - at
                break
            time.sleep(0.5)
        now_ids = {t["id"] for t in running(api)}
        all_tasks = {t["id"]: t for t in api.get("/v1/tasks", service=SERVICE)}
    finally:
        api.close()
    restarted = [
        f"{all_tasks.get(tid, {}).get('name', tid)} on {node}"
        for tid, node in before.items()
        if node != victim and tid not in now_ids
    ]
    survivors_all = [h for h in (*MANAGERS, "worker1", "worker2") if h != victim]
    down = down_lines(lab, survivors_all, box["wall"])
    run = Run(
        victim, via, box["stop_call"], watch, ab, box["cut"], restarted, back_s, down, rss, split
    )
    lab.lab("start", victim, check=True, timeout=120)
    return run


# report ----------------------------------------------------------------------------------


def fmt_s(x: float | None) -> str:
    return f"{x:.2f}" if x is not None else "never"


def print_run(i: int, r: Run) -> None:
    w = r.watch
    print(f"run {i}: stopped the leader {r.victim} (stop call {r.stop_call_s:.2f} s), "
          f"writes via {r.via}", flush=True)  # fmt: skip
    print(f"  new leader {w.new_leader or '-'} shown after {fmt_s(w.leader_s)} s; "
          f"write stored after {fmt_s(w.stored_s)} s ({w.stored_value or '-'}); "
          f"write accepted after {fmt_s(w.accepted_s)} s", flush=True)  # fmt: skip
    for a in w.attempts:
        print(f"    attempt {a}")
    print(f"  tasks restarted on survivors: {len(r.restarted)} {r.restarted}; "
          f"{REPLICAS} replicas running again after {fmt_s(r.back_s)} s")  # fmt: skip
    for line in r.down_lines:
        print(f"    {line}")
    print(f"  ab: lost {r.lost} (excused as in flight {r.excused}; in flight at the cut "
          f"{r.cut.in_flight}, timed out {r.ab.timed_out}), ab ran {fmt_s(r.ab_seconds)} s, "
          f"longest request {r.longest_ms} ms"
          + ("" if r.covered else "; ab was over before the stop: no figure")
          + (f"; ab ended early: {r.ab_aborted}" if r.ab_aborted else ""))  # fmt: skip
    for line in r.ab.lines:
        print(f"    {line}")
    mem = ", ".join(f"{m} {fmt_mb(d)}/{fmt_mb(e)}" for m, (d, e) in r.rss.items())
    print(f"  RSS daemon/etcd: {mem}", flush=True)


def fmt_n(x: float | None) -> str:
    return "n/a" if x is None else f"{x:g}"


def fmt_mb(x: float | None) -> str:
    return f"{x:.1f} MB" if x is not None else "?"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if len(vals) == len(xs) and vals else None


def render(runs: list[Run], n: int, attempt_timeout: float) -> str:
    def row(what: str, xs: list[float | None], goal: str, ok: bool | None) -> str:
        med = median(xs)
        judged = "" if ok is None else f" ({verdict(ok)})"
        cells = ", ".join(fmt_s(x) for x in xs)
        return f"| {what} | {fmt_s(med)} s | {cells} | {goal}{judged} |"

    accepted = [r.watch.accepted_s for r in runs]
    writes_ok = all(x is not None and x <= GOAL_WRITE_S for x in accepted)
    restarted = [len(r.restarted) for r in runs]
    unexplained = [r.unexplained for r in runs]
    mesh_ok = all(x == 0 for x in unexplained)
    longest = [r.longest_ms / 1000 if r.longest_ms is not None else None for r in runs]
    daemons = [d for r in runs for d, _ in r.rss.values() if d is not None]
    etcds = [e for r in runs for _, e in r.rss.values() if e is not None]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on this project's 2-core machine: 5-node lab "
        "(manager1..3 each with an etcd member, worker1..2), `web` = whoami × 6 published on "
        f"8080 over an overlay, spread over all five nodes; {len(runs)} runs, each stopping "
        "the current leader's machine (`lab stop`). Times are from just before the stop call; "
        f"writes are `service update --label-add` sent to the first surviving manager every "
        f"{POLL * 1000:.0f} ms, each attempt abandoned after {attempt_timeout:g} s.",
        "",
        "| measure | median | runs | goal |",
        "| --- | --- | --- | --- |",
        row("stop → new leader in a survivor's `node ls`", [r.watch.leader_s for r in runs],
            "", None),
        row("stop → a write stored (seen in a read)", [r.watch.stored_s for r in runs], "",
            None),
        row("stop → a write accepted (answered OK)", accepted, f"≤ {GOAL_WRITE_S:g} s",
            writes_ok),
        row(f"stop → {REPLICAS} replicas running again, off the stopped node",
            [r.back_s for r in runs], "", None),
        f"| tasks restarted on the surviving nodes | {fmt_n(statistics.median(restarted))} | "
        f"{', '.join(map(str, restarted))} | 0 ({verdict(not any(restarted))}) |",
        f"| mesh requests failed, beyond those in flight to the stopped node (ab -c "
        f"{CONCURRENCY} -n {n}) | {fmt_n(median(unexplained))} | "
        f"{', '.join(map(fmt_n, unexplained))} | 0 ({verdict(mesh_ok)}) |",
        row("longest mesh request (ab)", longest, "", None),
        mem_row("daemon RSS, largest manager", daemons, GOAL_DAEMON_MB),
        mem_row("etcd member RSS, largest", etcds, GOAL_ETCD_MB),
        "",
        "Per run:",
        "",
    ]  # fmt: skip
    for i, r in enumerate(runs, 1):
        w = r.watch
        mem = ", ".join(
            f"{m} {fmt_mb(d)} (anonymous {fmt_mb(r.split[m][0])}, files {fmt_mb(r.split[m][1])})"
            f" / {fmt_mb(e)}"
            for m, (d, e) in r.rss.items()
        )
        lines += [
            f"- run {i}: leader {r.victim} stopped (the stop call took {r.stop_call_s:.2f} s); "
            f"{w.new_leader or 'no manager'} leads; writes via {r.via}, attempts: "
            + "; ".join(w.attempts)
            + f". Restarted on survivors: {', '.join(r.restarted) or 'none'}"
            + (f" ({'; '.join(r.down_lines)})" if r.down_lines else "")
            + f". ab: {r.lost} lost (Connect+Receive+Exceptions+non-2xx), "
            f"{r.cut.in_flight} in flight to the stopped node at the cut, {r.ab.timed_out} "
            f"timed out, ran {fmt_s(r.ab_seconds)} s"
            + ("" if r.covered else ", over before the stop (no figure)")
            + (f", ended early: `{r.ab_aborted}`" if r.ab_aborted else "")
            + f" ({'; '.join(' '.join(ln.split()) for ln in r.ab.lines)}). "
            f"RSS daemon / etcd: {mem}.",
        ]
    lines += [
        "",
        "A daemon's RSS counts the shared libraries it maps (files: libpython, libcrypto, "
        "the Rust modules of cryptography and pydantic-core), which every Python process on "
        "the machine shares; its own memory is the anonymous part.",
    ]
    return "\n".join(lines)


def mem_row(what: str, values: list[float], goal: float) -> str:
    if not values:
        return f"| {what} | not found | | ≤ {goal:g} MB |"
    top = max(values)
    return f"| {what} | {top:.1f} MB | | ≤ {goal:g} MB ({verdict(top <= goal)}) |"


def keep_logs(lab: SwarmLab, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in (lab.root / lab.name).glob("*/daemon.log"):
        shutil.copy(log, into / f"{log.parent.name}.daemon.log")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("-n", type=int, default=500, help="requests per ab run")
    ap.add_argument(
        "--attempt-timeout", type=float, default=10.0, help="seconds before a write is resent"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--no-write", action="store_true", help="do not update the docs")
    ap.add_argument("--logs", type=Path, help="keep each node's daemon.log in this directory")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vxbench-"))
    lab = SwarmLab.create(root, nodes=5, managers=3)
    runs: list[Run] = []
    try:
        lab.wait_ready(60)
        lab.run("network", "create", "-d", "overlay", "benchnet", check=True)
        lab.run("service", "create", "--name", SERVICE, "--replicas", str(REPLICAS),
                "--network", "benchnet", "-p", "8080:80", "whoami", check=True)  # fmt: skip
        converge(lab, "manager1")
        for i in range(1, args.runs + 1):
            runs.append(one_run(lab, i, args.n, args.attempt_timeout))
            print_run(i, runs[-1])
        wait_for("3 managers reachable", lambda: all_reachable(lab, "manager1"), DEADLINE)
    finally:
        if args.logs:
            keep_logs(lab, args.logs)
        try:
            lab.down()
        finally:
            shutil.rmtree(root, ignore_errors=True)
    report = render(runs, args.n, args.attempt_timeout)
    print(f"\n## {TITLE}\n\n{report}\n")
    if not args.no_write:
        write_section(args.out, TITLE, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
