"""The lab's verbs: up, down, ls, stop, start, ssh, env — the docker-machine of vxswarm.

Each verb validates everything (lab name, counts, node name) before touching the
kernel, the disk or a process, then works from the lab record (record.py), the
underlay (underlay.py) and the node daemons (nodes.py). Nothing here prints: verbs
return what they did (`up` lists its changes, like containerlab's plan/apply) and
the CLI formats it.

`up` runs under an undo stack: every namespace, daemon or directory it creates
registers its removal, and if a later step raises, the completed steps are undone
in reverse and the first error is re-raised, so a failed `lab up` leaves no half
lab behind (an existing lab keeps what it had before the run).

Powering a node off (`stop`) kills its daemon with SIGKILL (a VM losing power gets
no chance to say goodbye), wipes the namespaces and task processes the daemon
recorded, and deletes the node namespace (its eth0 dies with it). `start` plugs a
new namespace into the same switch port and starts the daemon on the same state
dir; the daemon rejoins by itself.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from netagent.contract.errors import NotFound, Unavailable
from netagent.kernel.naming import Names
from netagent.lab import nodes, record, underlay
from netagent.lab.record import LabRecord, NodeRecord
from netagent.lab.topology import (
    DEFAULT_LAB,
    DEFAULT_MANAGERS,
    DEFAULT_NODES,
    LabNode,
    Role,
    Topology,
    lab_root,
)

log = logging.getLogger(__name__)


@dataclass
class UpResult:
    """What `lab up` did, one line per change, plus the lab it leaves up."""

    lab: str
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MachineView:
    """One row of `lab ls`."""

    name: str
    role: str
    state: str  # running | stopped
    ip: str
    url: str
    netns: str


@dataclass(frozen=True)
class LabSummary:
    """One row of `lab ls` with no lab chosen."""

    name: str
    nodes: int
    managers: int
    running: int


class _Undo:
    """Undo steps of a half-done command, run in reverse if it fails."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, step: Callable[[], object]) -> None:
        self._steps.append((what, step))

    def rollback(self) -> None:
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except Exception:
                # The first error is the one the user must see; later ones go to the log.
                log.exception("rollback step failed: %s", what)

    def commit(self) -> None:
        self._steps.clear()


def _root(root: Path | None) -> Path:
    return lab_root() if root is None else root


def _wipe_node(node: LabNode) -> None:
    """Remove the overlay/task namespaces and task processes the node's daemon recorded."""
    if not node.agent_dir.is_dir():
        return  # no daemon ever ran a data plane here: nothing recorded, nothing to wipe
    try:
        from netagent.agent.dataplane import wipe_node
    except ImportError:
        log.warning("netagent.agent.dataplane is not available: %s not wiped", node.name)
        return
    # wipe_node works "as if" in the node ns; without that ns it would act on the current
    # (host root) ns, so give it an empty one to act in: it is removed right after.
    underlay.ensure_netns(node.netns)
    wipe_node(node.agent_dir, Names(prefix=node.netns), node.netns)


def _power_off(topo: Topology, node: LabNode, rec: NodeRecord, *, graceful: bool) -> None:
    """Daemon down, its tasks and namespaces wiped, the node namespace (and cable) gone.

    Not graceful (`lab stop`, a power cut): the cable goes first, so nothing the wipe
    does (a task's last reset, say) reaches the network: it just goes silent."""
    if not graceful:
        underlay.unplug(topo, node)
    nodes.stop(rec.daemon, graceful=graceful)
    rec.daemon = None
    try:
        _wipe_node(node)
    finally:
        underlay.remove_machine(topo, node)


# --- up -------------------------------------------------------------------------------


def up(
    name: str | None = None,
    node_count: int | None = None,
    managers: int | None = None,
    *,
    daemons: bool = True,
    swarm: bool = True,
    root: Path | None = None,
) -> UpResult:
    """Build (or complete) a lab: underlay, then daemons, then the swarm.

    `daemons=False` makes an underlay-only lab (recorded as such, so `start` and a
    later `up` keep it daemon-less); `swarm=False` starts daemons without init/join.
    """
    root = _root(root)
    lab_name = record.resolve_name(name, root)
    try:
        rec: LabRecord | None = record.load(root, lab_name)
    except NotFound:
        rec = None
    topo = Topology.build(
        lab_name,
        node_count if node_count is not None else (rec.nodes if rec else DEFAULT_NODES),
        managers if managers is not None else (rec.managers if rec else DEFAULT_MANAGERS),
        root,
    )
    if rec is None:
        rec = LabRecord.for_topology(topo, daemons=daemons)
        fresh = True
    else:
        record.check_compatible(rec, topo)
        rec.grow_to(topo)
        fresh = False
    result = UpResult(lab=lab_name)
    undo = _Undo()
    try:
        if fresh:
            # The nodes' state dirs (keys, the store) live in here: private from the start.
            topo.lab_dir.parent.mkdir(parents=True, exist_ok=True)
            topo.lab_dir.mkdir(mode=0o700, exist_ok=False)
            undo.push(f"remove {topo.lab_dir}", lambda: shutil.rmtree(topo.lab_dir))
        record.save(root, rec)
        _build_underlay(topo, rec, undo, result)
        if rec.daemons:
            _start_daemons(topo, rec, undo, result, root)
            if swarm:
                _form_swarm(topo, result)
        record.save(root, rec)
    except BaseException:
        if fresh:
            _log_daemon_tails(topo)
        undo.rollback()
        if not fresh:
            record.save(root, rec)
        raise
    undo.commit()
    return result


def _log_daemon_tails(topo: Topology) -> None:
    """The rollback deletes the daemon logs: keep their last words in our log."""
    for node in topo.nodes:
        if node.log.exists():
            log.warning("%s daemon.log ends: %s", node.name, nodes.log_tail(node, 5))


def _build_underlay(topo: Topology, rec: LabRecord, undo: _Undo, result: UpResult) -> None:
    if underlay.ensure_switch(topo):
        undo.push(f"remove {topo.switch_netns}", lambda: underlay.remove_netns(topo.switch_netns))
        result.changes.append(f"created switch {topo.switch_netns}")
    for node in topo.machines:
        if underlay.ensure_machine(topo, node):
            machine = rec.machine(node.name)
            undo.push(
                f"power off {node.name}",
                lambda n=node, m=machine: _power_off(topo, n, m, graceful=False),
            )
            result.changes.append(f"created {node.name} {node.netns} eth0 {node.address}")


def _start_daemons(
    topo: Topology, rec: LabRecord, undo: _Undo, result: UpResult, root: Path
) -> None:
    started: list[tuple[LabNode, NodeRecord]] = []
    for node in topo.nodes:
        machine = rec.machine(node.name)
        if nodes.is_running(machine.daemon):
            continue
        machine.daemon = nodes.start_daemon(node)
        undo.push(
            f"stop daemon of {node.name}",
            lambda m=machine: (nodes.stop(m.daemon, graceful=False), setattr(m, "daemon", None)),
        )
        record.save(root, rec)
        started.append((node, machine))
        result.changes.append(f"started daemon of {node.name} (pid {machine.daemon.pid})")
    # Started all first, then wait: the daemons boot side by side.
    for node, machine in started:
        assert machine.daemon is not None
        nodes.wait_ready(node, machine.daemon)


def _form_swarm(topo: Topology, result: UpResult) -> None:
    """swarm init on manager1, join every node not yet in the swarm (idempotent)."""
    leader = topo.first_manager
    if nodes.swarm_of(leader) is None:
        nodes.check_cli(
            leader,
            ["swarm", "init", "--advertise-addr", str(leader.ip), "--heartbeat-period", "1s"],
        )
        result.changes.append(f"swarm init on {leader.name} ({leader.ip})")
    tokens: dict[Role, str] = {}
    for node in topo.nodes[1:]:
        if nodes.swarm_of(node) is not None:
            continue
        if node.role not in tokens:
            out = nodes.check_cli(leader, ["swarm", "join-token", "-q", str(node.role)])
            tokens[node.role] = out.strip()
        nodes.check_cli(node, ["swarm", "join", "--token", tokens[node.role], f"{leader.ip}:2377"])
        result.changes.append(f"{node.name} joined the swarm as a {node.role}")


# --- down / stop / start ----------------------------------------------------------------


def down(name: str | None = None, *, all_labs: bool = False, root: Path | None = None) -> list[str]:
    """Remove labs completely (daemons, task namespaces, underlay, files); their names."""
    root = _root(root)
    names = record.list_labs(root) if all_labs else [record.require(name, root).name]
    for lab_name in names:
        _down_one(record.load(root, lab_name), root)
    return names


def _down_one(rec: LabRecord, root: Path) -> None:
    topo = rec.topology(root)
    # Stop every daemon first, so no manager reschedules onto a node we are wiping.
    daemons = [rec.machine(n.name).daemon for n in topo.nodes]
    nodes.stop_all([d for d in daemons if d is not None], graceful=True)
    for node in reversed(topo.nodes):
        _power_off(topo, node, rec.machine(node.name), graceful=True)
    underlay.destroy(topo)
    shutil.rmtree(topo.lab_dir, ignore_errors=False)
    log.info("lab %s is down", rec.name)


def _names(node_names: str | Sequence[str]) -> list[str]:
    """One node name or several, each once, in the order given."""
    return [node_names] if isinstance(node_names, str) else list(dict.fromkeys(node_names))


def stop(
    node_names: str | Sequence[str], name: str | None = None, root: Path | None = None
) -> list[LabNode]:
    """Power nodes off: SIGKILL their daemons, wipe what they made, delete their
    namespaces. Several nodes lose power at the same instant: every cable is cut before
    any of them is wiped. Every name is checked before anything is touched."""
    root = _root(root)
    rec = record.require(name, root)
    topo = rec.topology(root)
    stopped = [topo.node(n) for n in _names(node_names)]
    for node in stopped:
        underlay.unplug(topo, node)
    try:
        for node in stopped:
            _power_off(topo, node, rec.machine(node.name), graceful=False)
    finally:
        record.save(root, rec)
    return stopped


def start(
    node_names: str | Sequence[str], name: str | None = None, root: Path | None = None
) -> list[LabNode]:
    """Power nodes on: namespaces and cables back, their daemons on the same state dirs,
    all started before any is waited for (so they come back together)."""
    root = _root(root)
    rec = record.require(name, root)
    topo = rec.topology(root)
    started = [topo.node(n) for n in _names(node_names)]
    booting = []
    try:
        for node in started:
            machine = rec.machine(node.name)
            underlay.ensure_machine(topo, node)
            if rec.daemons and not nodes.is_running(machine.daemon):
                machine.daemon = nodes.start_daemon(node)
                booting.append((node, machine))
        record.save(root, rec)
        for node, machine in booting:
            nodes.wait_ready(node, machine.daemon)
    except BaseException:
        for _node, machine in booting:
            nodes.stop(machine.daemon, graceful=False)
            machine.daemon = None
        record.save(root, rec)
        raise
    return started


# --- ls / ssh / env ---------------------------------------------------------------------


def list_labs(root: Path | None = None) -> list[LabSummary]:
    root = _root(root)
    out = []
    for lab_name in record.list_labs(root):
        rec = record.load(root, lab_name)
        running = sum(1 for m in rec.machines if nodes.is_running(m.daemon))
        out.append(LabSummary(lab_name, rec.nodes, rec.managers, running))
    return out


def ls(name: str | None = None, root: Path | None = None) -> tuple[str, list[MachineView]]:
    """The lab's machines with role, state, address, URL and namespace."""
    root = _root(root)
    rec = record.require(name, root)
    topo = rec.topology(root)
    rows = []
    for node in topo.machines:
        machine = rec.machine(node.name)
        if node.is_swarm_node:
            alive = underlay.machine_up(node) and nodes.is_running(machine.daemon)
            url = node.host_url
        else:
            alive, url = underlay.machine_up(node), ""
        rows.append(
            MachineView(
                name=node.name,
                role=str(node.role),
                state="running" if alive else "stopped",
                ip=str(node.ip),
                url=url,
                netns=node.netns,
            )
        )
    return rec.name, rows


def _daemon_target(topo: Topology, node: LabNode) -> LabNode:
    """Whose daemon a shell on `node` talks to: its own; the client uses manager1's."""
    return node if node.is_swarm_node else topo.first_manager


def ssh_command(
    node_name: str, command: str | None, name: str | None = None, root: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """argv and environment that run `command` (or a shell) inside the node's namespace."""
    root = _root(root)
    rec = record.require(name, root)
    topo = rec.topology(root)
    node = topo.node(node_name, allow_client=True)
    if not underlay.netns_exists(node.netns):
        raise Unavailable(
            f"node {node.name!r} of lab {rec.name!r} is stopped: expected it running "
            f"(start it with 'vxswarm lab start {node.name}')",
            obj=node.name,
            op="lab ssh",
        )
    env = nodes.cli_env(_daemon_target(topo, node))
    enter = ["nsenter", f"--net={node.netns_path}"]
    if command is None:
        return [*enter, env.get("SHELL") or "/bin/sh"], env
    return [*enter, "sh", "-c", command], env


def env_lines(node_name: str, name: str | None = None, root: Path | None = None) -> list[str]:
    """docker-machine env: the export line and how to eval it."""
    root = _root(root)
    rec = record.require(name, root)
    topo = rec.topology(root)
    node = topo.node(node_name, allow_client=True)
    target = _daemon_target(topo, node)
    lab_flag = "" if rec.name == DEFAULT_LAB else f" --name {rec.name}"
    return [
        f"export VXSWARM_HOST={shlex.quote(target.host_url)}",
        "# Run this command to configure your shell:",
        f'# eval "$(vxswarm lab env{lab_flag} {node.name})"',
    ]
