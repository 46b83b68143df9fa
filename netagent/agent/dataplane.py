"""The node's data plane: makes the kernel match a NodeDesiredState, and reports tasks.

`DataPlane.apply` is a pure reconciler: given the whole desired state of this node
it builds what is missing, stops and removes what is no longer desired, and
touches nothing else; applying the same state twice changes nothing. The work
is done by modules with one job each (paths under netagent/):
  network/overlay.py   per-network sandbox netns, br0, vx-<vni>, FDB/neighbour diff
  network/gwbridge.py  vx_gwbridge, ip_forward, the MASQUERADE rule, 172.18/16 allocation
  network/task_ns.py   per-task netns and veths (a transaction)
  tasks/spawn.py       the task shim processes and the exit watcher thread
  ledger/inventory.py  JSON records of everything made, written ahead of the kernel step
  dns/                 the embedded resolver (NodeDns), its tables updated on every apply
  lb/                  service VIPs, the ingress sandbox and published ports (nftables)
  agent/wipe.py        teardown from the records (also offline: `wipe_node`)
Order in one apply: gateway bridge (when a task is to be built or the node is in
the routing mesh), then every network sandbox with its peers, then the resolver's
tables, then new tasks (PREPARING -> netns/veths -> STARTING -> RUNNING), then
stops, then load balancing (it needs the networks' sandboxes and the tasks' gateway
addresses). Removal of a stopped task's netns waits for its process to exit (it may
still be finishing requests during its grace period); a sandbox goes once no live
task uses it.

Threads: apply/adopt/teardown run in the caller's thread; the watcher thread
reports exits; one emitter thread calls `on_status`. One lock orders them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from netagent.agent.built import Built
from netagent.agent.metrics import Metrics
from netagent.agent.wipe import remove_all, stop_all, wipe_node
from netagent.contract.desired import (
    INGRESS_VNI,
    DesiredTaskState,
    Health,
    NetworkState,
    NodeDesiredState,
    Resources,
    TaskAssignment,
    TaskState,
    TaskStatus,
)
from netagent.contract.errors import Conflict, NotFound, Unavailable, VxswarmError
from netagent.dns.node_resolver import NodeDns
from netagent.kernel import netns
from netagent.kernel.naming import Names
from netagent.lb import LoadBalancer
from netagent.ledger.changes import ApplyResult, Change
from netagent.ledger.inventory import (
    NodeRecord,
    Records,
    TaskRecord,
    read_exit_error,
    read_exit_file,
)
from netagent.network import gwbridge, overlay, task_ns
from netagent.network.checks import check_desired
from netagent.tasks import cgroups, filesystem, spawn
from netagent.tasks.health import HealthMonitor
from netagent.tasks.lifecycle import (
    REMOVE,
    RUNNING,
    SHUTDOWN,
    StatusEmitter,
    Workloads,
    classify_exit,
    default_workloads,
    set_state,
    to_status,
)
from netagent.tasks.readiness import ReadinessWatcher

__all__ = ["ApplyResult", "DataPlane", "wipe_node"]

log = logging.getLogger(__name__)


class DataPlane:
    """Reconciles one node's kernel state with its desired state."""

    def __init__(
        self,
        names: Names,
        state_dir: Path,
        underlay_ip: IPv4Address,
        node_ns: str | None = None,
        on_status: Callable[[TaskStatus], None] | None = None,
        *,
        workloads: Workloads | None = None,
        dns: NodeDns | None = None,
        metrics: Metrics | None = None,
    ):
        if node_ns is not None and not netns.exists(node_ns):
            raise NotFound(f"node namespace {node_ns!r} does not exist", obj=node_ns, op="init")
        self.names = names
        self.node_ns = node_ns
        self.underlay_ip = IPv4Address(underlay_ip)
        self._label = node_ns or "node ns"
        self._records = Records(Path(state_dir))
        self._state_dir = Path(state_dir)
        self._records.ensure_dirs()
        self._workloads = workloads
        self._lock = threading.RLock()
        self._node = NodeRecord(node_ns=node_ns)
        self._tasks: dict[str, TaskRecord] = {}
        self._popens: dict[str, subprocess.Popen] = {}
        self._desired_vnis: set[int] = set()
        #: Per VNI, what was last written to its sandbox's FDB and neighbour tables.
        self._peer_memory: dict[int, overlay.PeerMemory] = {}
        self._adopted = False
        self._closed = False
        self._gw_ready = False
        self._emitter = StatusEmitter(on_status)
        self._watcher = spawn.Watcher(self._on_exit)
        self._readiness = ReadinessWatcher(self._on_ready)
        self._health = HealthMonitor(self._on_health)
        #: The daemon's metrics (a private set when none is given); drift repairs count here.
        self.metrics = metrics or Metrics()
        self._lb = LoadBalancer(names, node_ns, self._label, self.metrics.rule_synced)
        #: The embedded resolver (the daemon owns it); None: tasks get no cluster DNS.
        self._dns = dns
        #: The desired state of the last apply: what drift checks compare the kernel with.
        self._last_desired: NodeDesiredState | None = None
        #: Tasks the load balancer counted as running at the last apply (published ports
        #: follow them until the next apply, not at every exit).
        self._applied_live: frozenset[str] | None = None
        #: The kernel's cgroup hierarchies, found at the first task start.
        self._cgroup_layout: cgroups.Layout | None = None

    # -- public API ---------------------------------------------------------

    @netns.outside_event_loop
    def apply(self, desired: NodeDesiredState) -> ApplyResult:
        """Make the kernel match `desired`; the changes made, each with its reason."""
        check_desired(desired)
        LoadBalancer.check(desired)
        with self._lock:
            self._check_open()
            if not self._adopted:
                self.adopt()
            self._last_desired = desired
            result = ApplyResult(desired.version)
            networks = {n.id: n for n in desired.networks}
            self._desired_vnis = {n.vni for n in desired.networks}
            new = [
                t
                for t in desired.tasks
                if t.id not in self._tasks and t.desired_state == DesiredTaskState.RUNNING
            ]
            with netns.IprPool() as pool:
                node = pool.get(self.node_ns)
                # Checked once per daemon life (and after a restart): an iptables -C costs
                # a process; a periodic full pass is the place to catch later drift.
                if (new or desired.ingress is not None) and not self._gw_ready:
                    self._save_node()  # write-ahead: the node record names the bridge
                    result.changes += gwbridge.ensure_gw_bridge(
                        node, self.node_ns, self._label, self._node
                    )
                    self._save_node()
                    self._gw_ready = True
                for net in desired.networks:
                    self._ensure_network(pool, net, result)
                for vni in set(self._peer_memory) - self._desired_vnis:
                    del self._peer_memory[vni]  # its sandbox goes; a new one starts afresh
                if self._dns is not None:
                    # Before any task starts or stops: answers follow the cluster at once.
                    self._dns.update(desired.networks)
                for task in desired.tasks:
                    self._reconcile_task(pool, task, networks, result)
                wanted = {t.id for t in desired.tasks}
                for task_id in [tid for tid in self._tasks if tid not in wanted]:
                    self._stop(self._tasks[task_id], REMOVE, result)
                result.changes += self._lb.apply(
                    pool, desired, self._node, self._tasks.values(), self._save_node
                )
                self._applied_live = frozenset(
                    tid
                    for tid, r in self._tasks.items()
                    if r.intent == RUNNING and not r.state.terminal
                )
            self._gc_sandboxes(result)
        log.log(logging.INFO if result.changed else logging.DEBUG, "%s", result)
        return result

    def statuses(self) -> list[TaskStatus]:
        """The observed status of every task this node knows."""
        with self._lock:
            return [to_status(r) for r in self._tasks.values()]

    def find_task(self, ref: str) -> tuple[str, str]:
        """(id, name) of the task on this node that `ref` names: its id, a unique id
        prefix, or its name (`web.1`, the live one if several). What `vxswarm exec` on
        a worker, which cannot ask a manager, enters."""
        with self._lock:
            recs = list(self._tasks.values())
        exact = [r for r in recs if r.task_id == ref]
        named = sorted(
            (r for r in recs if r.task_name == ref),
            key=lambda r: (r.state.terminal, -r.timestamp),
        )
        prefixed = [r for r in recs if r.task_id.startswith(ref)]
        found = exact or named[:1] or (prefixed if len(prefixed) == 1 else [])
        if not found:
            why = "several tasks" if len(prefixed) > 1 else "no task"
            raise NotFound(f"{why} {ref!r} on this node", obj=ref, op="exec")
        return found[0].task_id, found[0].task_name

    def exec_target(self, task_id: str) -> tuple[int, str]:
        """(pid to nsenter, task netns name) of a running task."""
        with self._lock:
            rec = self._tasks.get(task_id)
            if rec is None:
                raise NotFound(f"no such task {task_id!r} on this node", obj=task_id, op="exec")
            if not spawn.alive(rec.pid, rec.start_time) or rec.state.terminal:
                raise Conflict(
                    f"task {rec.task_name} ({task_id}) is not running: state {rec.state}",
                    obj=task_id,
                    op="exec",
                )
            assert rec.pid is not None
            return rec.pid, rec.netns

    @netns.outside_event_loop
    def adopt(self) -> None:
        """Read the records and re-attach to live task processes (same pids, namespaces
        untouched); tasks whose process died meanwhile get their final state."""
        with self._lock:
            self._check_open()
            self._node = self._records.load_node()
            self._node.node_ns = self.node_ns
            self._tasks = self._records.load_tasks()
            self._adopted = True
            for rec in list(self._tasks.values()):
                self._adopt_task(rec)

    @netns.outside_event_loop
    def teardown(self) -> None:
        """Remove everything this node made (swarm leave / lab down); stops processes."""
        self._watcher.close()  # outside the lock: its thread may be waiting for it
        self._readiness.close()
        self._health.close()
        with self._lock:
            if not self._adopted and not self._closed:
                self._node = self._records.load_node()
                self._tasks = self._records.load_tasks()
            grace = max((r.stop_grace_period for r in self._tasks.values()), default=0.0)
            stop_all(list(self._tasks.values()), grace, self._reap)
            for rec in list(self._tasks.values()):
                if not rec.state.terminal:
                    set_state(rec, TaskState.SHUTDOWN, "shutdown")
                    self._emitter.emit(rec)
            if self._dns is not None:  # its sockets would keep the namespaces alive
                for rec in self._tasks.values():
                    self._dns.detach(rec.task_id, rec.netns)
            remove_all(self._node, self._tasks.values(), self.node_ns, self._label, self.names)
            self._records.drop_all()
            self._tasks.clear()
            self._closed = True
        self._emitter.close()

    def close(self) -> None:
        """Stop the watcher and emitter threads; kernel state and processes stay."""
        self._watcher.close()
        self._readiness.close()
        self._health.close()
        with self._lock:
            self._closed = True
        self._emitter.close()

    # -- drift: netagent.drift checks and repairs through these -------------

    @property
    def lock(self) -> threading.RLock:
        """Held by every apply and exit report: a check holding it sees the kernel and the
        records at an apply boundary, never half-way through one."""
        return self._lock

    @property
    def records(self) -> Records:
        """This node's record files (read by `service logs` for the task logs)."""
        return self._records

    @property
    def last_desired(self) -> NodeDesiredState | None:
        return self._last_desired

    @property
    def label(self) -> str:
        return self._label

    def built(self) -> Built:
        """What this data plane built, as copies (call with `lock` held). Shallow ones: the
        records' fields are replaced, never changed in place, except the sandbox map."""
        return Built(
            names=self.names,
            node_ns=self.node_ns,
            underlay_ip=self.underlay_ip,
            node=self._node.model_copy(update={"sandboxes": dict(self._node.sandboxes)}),
            tasks={tid: rec.model_copy() for tid, rec in self._tasks.items()},
            watched=frozenset(t for t in self._tasks if self._watcher.watching(t)),
            dns=self._dns is not None,
            applied_live=self._applied_live,
        )

    def forget_programmed(self, ns: str | None) -> None:
        """Forget what was written into namespace `ns` (FDB, neighbours, nft tables,
        sysctls, the ingress sandbox, the gateway bridge), so that the next apply reads
        the kernel again and rewrites whatever differs."""
        with self._lock:
            for vni, record in self._node.sandboxes.items():
                if record.netns == ns:
                    self._peer_memory.pop(vni, None)
            if ns == self.node_ns:
                self._gw_ready = False
            self._lb.forget(ns)

    def reapply(self) -> ApplyResult | None:
        """Apply the last desired state again (None if nothing was applied yet)."""
        with self._lock:
            desired = self._last_desired
            return self.apply(desired) if desired is not None else None

    def report_task(self, task_id: str) -> bool:
        """Tell the manager how a task ended: a process that died unseen is finished
        (FAILED from its exit file) now; an ended one is reported again."""
        with self._lock:
            rec = self._tasks.get(task_id)
            if rec is None:
                return False
            if not rec.state.terminal and not spawn.alive(rec.pid, rec.start_time):
                self._watcher.unwatch(task_id)
                self._finish(rec)
            else:
                self._emitter.emit(rec)
            return True

    def replace_task(self, task_id: str) -> bool:
        """SIGKILL a task (its namespace is gone): it ends FAILED and is replaced."""
        return self._watcher.kill(task_id)

    def reattach_dns(self, task_id: str) -> bool:
        """Close and reopen a running task's resolver sockets."""
        with self._lock:
            rec, desired = self._tasks.get(task_id), self._last_desired
            task = next((t for t in desired.tasks if t.id == task_id), None) if desired else None
            if self._dns is None or rec is None or task is None or desired is None:
                return False
            self._dns.resolver.detach(task_id)
            self._dns.prepare(rec.netns)
            networks = {n.id: n for n in desired.networks}
            self._dns.attach(task_id, rec.netns, _dns_networks(task.attachments, networks))
            return True

    # -- networks -----------------------------------------------------------

    def _ensure_network(self, pool: netns.IprPool, net: NetworkState, result: ApplyResult) -> None:
        sandbox = self.names.overlay_ns(net.vni)
        if net.vni not in self._node.sandboxes:
            planned = overlay.SandboxRecord(
                network_id=net.id, vni=net.vni, netns=sandbox, vxlan=self.names.vxlan(net.vni)
            )
            self._node.sandboxes[net.vni] = planned
            self._save_node()
        memory = self._peer_memory.setdefault(net.vni, overlay.PeerMemory())
        record, changes = overlay.ensure_sandbox(
            self.names, pool, self.node_ns, self._label, net, self.underlay_ip, memory
        )
        self._node.sandboxes[net.vni] = record
        result.changes += changes

    def _gc_sandboxes(self, result: ApplyResult | None = None) -> None:
        """Remove sandboxes of networks no longer desired once no live task uses them."""
        unwanted = [vni for vni in self._node.sandboxes if vni not in self._desired_vnis]
        if not unwanted:  # the usual apply: no need to ask every task's process
            return
        in_use = {
            vni
            for rec in self._tasks.values()
            if spawn.alive(rec.pid, rec.start_time)
            for vni in rec.vnis
        }
        for vni in unwanted:
            record = self._node.sandboxes[vni]
            if vni in in_use:
                continue
            changes = overlay.remove_sandbox(record)
            del self._node.sandboxes[vni]
            self._save_node()
            if result is not None:
                result.changes += changes

    # -- tasks --------------------------------------------------------------

    def _reconcile_task(
        self,
        pool: netns.IprPool,
        task: TaskAssignment,
        networks: dict[str, NetworkState],
        result: ApplyResult,
    ) -> None:
        rec = self._tasks.get(task.id)
        if rec is None:
            if task.desired_state == DesiredTaskState.RUNNING:
                self._start(pool, task, networks, result)
            else:
                # Never started here: report it stopped, without building anything.
                rec = TaskRecord(task_id=task.id, task_name=task.name, intent=SHUTDOWN,
                                 netns=self.names.task_ns(task.name, task.id))  # fmt: skip
                set_state(rec, TaskState.SHUTDOWN, "shutdown before start")
                self._commit(rec)
        elif task.desired_state == DesiredTaskState.SHUTDOWN and rec.intent == RUNNING:
            self._stop(rec, SHUTDOWN, result)

    def _start(
        self,
        pool: netns.IprPool,
        task: TaskAssignment,
        networks: dict[str, NetworkState],
        result: ApplyResult,
    ) -> None:
        used = [r.gw_address for r in self._tasks.values()]
        if self._node.ingress is not None:
            used.append(self._node.ingress.gw_address)
        rec = task_ns.plan_record(self.names, task, networks, gwbridge.allocate(used))
        rec.exit_file = str(self._records.exit_file(task.id))
        rec.log_file = str(self._records.log_file(task.id))
        layout = self._plan_cgroup(rec, task)
        set_state(rec, TaskState.PREPARING, "preparing")
        self._commit(rec)  # write-ahead: names every object the build may make
        try:
            workloads = self._workloads or default_workloads()
            argv = list(workloads.resolve(task.spec, task))
            env = dict(workloads.environment(task))
            port = workloads.ready_port(task.spec)
        except (VxswarmError, ImportError, ValueError) as exc:
            self._fail(rec, TaskState.REJECTED, f"workload: {exc}", result)
            return
        limits = task.spec.limits
        if not layout.hierarchies and (limits.nano_cpus or limits.memory_bytes):
            err = f"cannot enforce the task's limits: {layout.missing}"
            self._fail(rec, TaskState.REJECTED, err, result)
            return
        try:
            filesystem.check(task.spec)
        except VxswarmError as exc:
            self._fail(rec, TaskState.REJECTED, str(exc), result)
            return
        try:
            if rec.cgroups:
                leaf = self.names.task_cgroup(task.name, task.id)
                cgroups.create(layout, self.names.cgroup_dir(), leaf, limits)
                result.changes.append(Change("add", f"cgroup {leaf}", _limits_text(limits)))
            result.changes += task_ns.build(
                self.names, pool, self.node_ns, self._label, task, networks, rec
            )
        except Exception as exc:  # build() has undone its own steps
            self._drop_cgroups(rec)
            self._fail(rec, TaskState.FAILED, _one_line(exc, task.id), result)
            return
        try:
            if self._dns is not None:
                # resolv.conf must exist before `ip netns exec` binds it, and the resolver
                # must answer before the workload asks its first name.
                self._dns.prepare(rec.netns)
                self._dns.attach(task.id, rec.netns, _dns_networks(task.attachments, networks))
            setup = filesystem.setup_fd(task.spec, self._state_dir)
            try:
                spawned = spawn.spawn(rec.netns, task.hostname, argv, env, Path(rec.exit_file),
                                      Path(rec.log_file), setup, rec.cgroups)  # fmt: skip
            finally:
                if setup is not None:
                    os.close(setup)
        except Exception as exc:
            err = _one_line(exc, task.id)
            try:
                task_ns.remove(rec, self.node_ns)
            except VxswarmError as undo_exc:
                log.warning("undoing task %s: %s", task.id, undo_exc)
            self._drop_cgroups(rec)
            self._fail(rec, TaskState.FAILED, err, result)
            return
        rec.pid, rec.start_time = spawned.pid, spawned.start_time
        self._popens[task.id] = spawned.popen
        set_state(rec, TaskState.STARTING, "starting")
        self._commit(rec)
        result.changes.append(Change("start", f"task {task.name} pid {spawned.pid}", rec.netns))
        if not self._watcher.watch(task.id, spawned.pid, spawned.start_time, spawned.popen):
            self._finish(rec)
        elif task.spec.healthcheck is not None:
            # STARTING until its first check passes, as Docker holds a task with a
            # healthcheck: only then may it take connections (see _on_health).
            rec.healthcheck, rec.health = task.spec.healthcheck, Health.STARTING
            self._commit(rec)
            self._health.watch(task.id, spawned.pid, task.spec.healthcheck)
        elif port is None:
            set_state(rec, TaskState.RUNNING, "started")
            self._commit(rec)
        else:
            # STARTING until it listens: only then may load balancers send it connections.
            self._readiness.watch(task.id, spawned.pid, port)

    def _plan_cgroup(self, rec: TaskRecord, task: TaskAssignment) -> cgroups.Layout:
        """Name the task's cgroups in its record, and the node's directories in the node
        record (saved now): both written before anything is made."""
        if self._cgroup_layout is None:
            self._cgroup_layout = cgroups.detect()
        layout = self._cgroup_layout
        node_dir = self.names.cgroup_dir()
        rec.cgroups = layout.task_dirs(node_dir, self.names.task_cgroup(task.name, task.id))
        new_dirs = [d for d in layout.node_dirs(node_dir) if d not in self._node.cgroup_dirs]
        if new_dirs:
            self._node.cgroup_dirs = self._node.cgroup_dirs + new_dirs
            self._save_node()
        return layout

    def _drop_cgroups(self, rec: TaskRecord) -> None:
        """Remove the task's cgroups (its processes are gone); the record keeps any that
        could not be removed, for the wipe."""
        if rec.cgroups:
            rec.cgroups = cgroups.remove(rec.cgroups)

    def _fail(self, rec: TaskRecord, state: TaskState, err: str, result: ApplyResult) -> None:
        rec.veths, rec.vnis, rec.gw_address = [], [], None  # nothing of it is left
        set_state(rec, state, "rejected" if state == TaskState.REJECTED else "failed", err)
        self._commit(rec)
        result.errors[rec.task_id] = err
        self._gw_ready = False  # a missing gateway bridge is one cause; re-check it next time
        result.changes.append(Change("fail", f"task {rec.task_name}", err))

    def _stop(self, rec: TaskRecord, intent: str, result: ApplyResult) -> None:
        """Stop a task (SIGTERM now, SIGKILL after its grace period, in the background);
        with intent REMOVE also delete its netns and record once it has exited."""
        if rec.intent == intent or rec.intent == REMOVE:
            return
        self._health.forget(rec.task_id)
        rec.intent = intent
        self._records.save_task(rec)
        if self._watcher.stop(rec.task_id, rec.stop_grace_period):
            why = f"SIGTERM, SIGKILL after {rec.stop_grace_period:g}s"
            result.changes.append(Change("stop", f"task {rec.task_name} pid {rec.pid}", why))
            return
        if not rec.state.terminal:
            set_state(rec, TaskState.SHUTDOWN, "shutdown")
            self._commit(rec)
        if intent == REMOVE:
            result.changes += self._forget(rec)

    def _on_ready(self, task_id: str, listening: bool) -> None:
        """Readiness thread: a starting server task listens (or its wait timed out)."""
        with self._lock:
            rec = self._tasks.get(task_id)
            if rec is None or self._closed or rec.state != TaskState.STARTING:
                return  # gone, exited or being stopped meanwhile
            set_state(rec, TaskState.RUNNING, "started" if listening else "started (not listening)")
            self._commit(rec)

    def _on_health(self, task_id: str, health: Health) -> None:
        """A health-check thread: a task's health changed. Healthy, a starting task runs;
        unhealthy, it is reported so (it leaves every backend) and stopped, as Docker's
        executor does, to end FAILED and be replaced by its restart policy."""
        with self._lock:
            rec = self._tasks.get(task_id)
            if rec is None or self._closed or rec.state.terminal or rec.intent != RUNNING:
                return
            rec.health = health
            if health == Health.HEALTHY and rec.state == TaskState.STARTING:
                set_state(rec, TaskState.RUNNING, "started")
            self._commit(rec)
            if health == Health.UNHEALTHY:
                log.info("task %s is unhealthy: stopping it", rec.task_name)
                self._health.forget(task_id)
                self._watcher.stop(task_id, rec.stop_grace_period)

    def _on_exit(self, task_id: str) -> None:
        """Watcher thread: a task's shim exited."""
        self._readiness.forget(task_id)
        self._health.forget(task_id)
        with self._lock:
            rec = self._tasks.get(task_id)
            if rec is None or self._closed:
                return
            self._finish(rec)
            log.info("task %s exited: %s %s", rec.task_name, rec.state, rec.err)

    def _finish(self, rec: TaskRecord) -> None:
        returncode = self._reap(rec)
        code, sig = read_exit_file(Path(rec.exit_file))
        if code is None and sig is None and returncode is not None:
            # The shim itself was killed (SIGKILL after the grace period): it wrote
            # nothing, but as its parent we still know how it ended.
            code, sig = (None, -returncode) if returncode < 0 else (returncode, None)
        classify_exit(rec, code, sig)
        if rec.state == TaskState.FAILED and (why := read_exit_error(Path(rec.exit_file))):
            rec.err = why  # the shim could not make the task's mounts
        if rec.state == TaskState.FAILED and cgroups.oom_killed(rec.cgroups):
            rec.err = f"{rec.err}: OOM killed (memory limit reached)"
        self._drop_cgroups(rec)
        self._commit(rec)
        if rec.intent == REMOVE:
            self._forget(rec)
            self._gc_sandboxes()

    def _forget(self, rec: TaskRecord) -> list[Change]:
        """Delete a stopped task's netns, veths and record."""
        if self._dns is not None:
            self._dns.detach(rec.task_id, rec.netns)
        self._drop_cgroups(rec)
        try:
            changes = task_ns.remove(rec, self.node_ns)
        except VxswarmError as exc:
            log.warning("removing task %s: %s (kept its record for a later try)", rec.task_id, exc)
            return []
        self._records.drop_task(rec.task_id)
        self._tasks.pop(rec.task_id, None)
        self._popens.pop(rec.task_id, None)
        return changes

    def _adopt_task(self, rec: TaskRecord) -> None:
        if spawn.alive(rec.pid, rec.start_time):
            assert rec.pid is not None and rec.start_time is not None
            if self._watcher.watch(rec.task_id, rec.pid, rec.start_time):
                if rec.healthcheck is not None and rec.intent == RUNNING:
                    if rec.health == Health.UNHEALTHY:  # the last daemon was stopping it
                        self._watcher.stop(rec.task_id, rec.stop_grace_period)
                    else:
                        self._health.watch(
                            rec.task_id, rec.pid, rec.healthcheck, rec.health or Health.STARTING
                        )
                elif rec.state == TaskState.STARTING and rec.intent == RUNNING:
                    # The last daemon died waiting for it to listen; it has had time.
                    set_state(rec, TaskState.RUNNING, "started")
                    self._commit(rec)
                if rec.intent != RUNNING:  # it was being stopped: restart the deadline
                    self._watcher.stop(rec.task_id, rec.stop_grace_period)
                elif self._dns is not None:  # a new daemon: open its resolver sockets again
                    nets = [
                        self._node.sandboxes[v].network_id
                        for v in rec.vnis
                        if v in self._node.sandboxes and v != INGRESS_VNI
                    ]
                    self._dns.attach(rec.task_id, rec.netns, nets)
                return
        if rec.pid is not None and not rec.state.terminal:
            self._finish(rec)  # it ended while no agent watched
        elif rec.pid is None and rec.state in (TaskState.NEW, TaskState.PREPARING):
            task_ns.remove(rec, self.node_ns)  # the agent died while building it
            self._drop_cgroups(rec)
            set_state(rec, TaskState.FAILED, "failed", "agent restarted while preparing task")
            self._commit(rec)
        elif rec.intent == REMOVE:
            self._forget(rec)

    def _reap(self, rec: TaskRecord) -> int | None:
        """Reap the shim if it is our child; its return code (None if unknown)."""
        popen = self._popens.get(rec.task_id)
        if popen is None:
            return None
        code = popen.poll()
        if code is not None:
            del self._popens[rec.task_id]
        return code

    # -- records ------------------------------------------------------------

    def _commit(self, rec: TaskRecord) -> None:
        self._tasks[rec.task_id] = rec
        self._records.save_task(rec)
        self._emitter.emit(rec)

    def _save_node(self) -> None:
        self._records.save_node(self._node)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("data plane is closed", obj=self._label, op="apply")


def _dns_networks(attachments, networks: dict[str, NetworkState]) -> list[str]:
    """The networks a task resolves names on: its own, not the routing mesh's."""
    return [
        a.network_id
        for a in attachments
        if a.network_id in networks and not networks[a.network_id].ingress
    ]


def _limits_text(limits: Resources) -> str:
    """How a new cgroup's limits read in the apply log."""
    parts = []
    if limits.nano_cpus:
        parts.append(f"cpus {limits.nano_cpus / 1e9:g}")
    if limits.memory_bytes:
        parts.append(f"memory {limits.memory_bytes} bytes")
    return ", ".join(parts) or "no limits"


def _one_line(exc: Exception, task_id: str) -> str:
    """The error text for a task's status; unexpected errors are logged in full."""
    if not isinstance(exc, VxswarmError):
        log.error("building task %s failed", task_id, exc_info=exc)
    return str(exc)
