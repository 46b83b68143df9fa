"""The agent's records: what it made in the kernel, as JSON files under state_dir.

Layout (all under `<state_dir>/dataplane/`):
  node.json             the node-wide objects: gateway bridge, NAT rule, the
                        ip_forward value found before we set it, overlay sandboxes
  tasks/<task id>.json  one per task: its netns, veth names, gateway address,
                        shim pid + /proc start time, exit file, log file, last status
  logs/<task id>.log    the task's stdout/stderr
  exit/<task id>.json   written by the task shim (netagent.tasks.shim) when it ends

Records are written *before* the kernel object they describe is built
(write-ahead), so that a crash half-way still leaves a record naming every
object that may exist; cleanup tolerates "already gone". adopt() and
wipe_node() read only these files, so they delete exactly what was made,
never by pattern. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from ipaddress import IPv4Interface
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from netagent.contract.desired import Health, HealthCheck, TaskState


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SandboxRecord(_Record):
    """One overlay network's sandbox on this node."""

    network_id: str
    vni: int
    netns: str
    vxlan: str


class IngressRecord(_Record):
    """The node's ingress sandbox (routing mesh), written before it is built."""

    netns: str
    #: Host side of eth0, in the ingress network's sandbox namespace `overlay_netns`.
    overlay_netns: str
    overlay_veth: str
    #: Host side of eth1, on the gateway bridge in the node namespace.
    gw_veth: str
    gw_address: IPv4Interface


class NodeRecord(_Record):
    """Node-wide objects, shared by every task and network."""

    node_ns: str | None = None
    gw_bridge: str | None = None
    #: The iptables rule spec (without -A/-D) in table nat, as added.
    nat_rule: list[str] | None = None
    #: ip_forward found before we set it; restored by teardown.
    ip_forward_before: str | None = None
    sandboxes: dict[int, SandboxRecord] = Field(default_factory=dict)
    #: The ingress sandbox, while the node takes part in the routing mesh.
    ingress: IngressRecord | None = None
    #: True once nft table `ip vxswarm` may exist in the node namespace (published ports).
    lb_node_table: bool = False
    #: The node's directories of task cgroups, one per hierarchy (netagent.tasks.cgroups).
    cgroup_dirs: list[str] = Field(default_factory=list)


class VethRecord(_Record):
    """The host side of one task veth and the namespace it lives in.

    None = the node namespace, whose name the daemon may not know (it runs inside it);
    whoever removes the veth says which namespace that is."""

    netns: str | None
    link: str


class TaskRecord(_Record):
    task_id: str
    task_name: str
    netns: str
    vnis: list[int] = Field(default_factory=list)
    veths: list[VethRecord] = Field(default_factory=list)
    gw_address: IPv4Interface | None = None
    pid: int | None = None
    #: Field 22 of /proc/<pid>/stat: tells our process from a later one with a reused pid.
    start_time: int | None = None
    exit_file: str = ""
    log_file: str = ""
    stop_grace_period: float = 10.0
    #: "running", "shutdown" (stop, keep the netns) or "remove" (stop, then delete all).
    intent: str = "running"
    state: TaskState = TaskState.NEW
    message: str = ""
    err: str = ""
    exit_code: int | None = None
    timestamp: float = 0.0
    #: The task's healthcheck (kept so that an adopting agent checks on), and what its
    #: checks say now (None: it has none).
    healthcheck: HealthCheck | None = None
    health: Health | None = None
    #: The task's cgroup directories, one per hierarchy (written before they are made).
    cgroups: list[str] = Field(default_factory=list)


#: Logs of forgotten tasks kept per node (the oldest go first).
KEPT_LOGS = 64


class Records:
    """Reads and writes the record files of one node's agent."""

    def __init__(self, state_dir: Path):
        self.root = Path(state_dir) / "dataplane"
        self.tasks_dir = self.root / "tasks"
        self.logs_dir = self.root / "logs"
        self.exit_dir = self.root / "exit"

    def ensure_dirs(self) -> None:
        for d in (self.tasks_dir, self.logs_dir, self.exit_dir):
            d.mkdir(parents=True, exist_ok=True)

    def log_file(self, task_id: str) -> Path:
        return self.logs_dir / f"{task_id}.log"

    def exit_file(self, task_id: str) -> Path:
        return self.exit_dir / f"{task_id}.json"

    def task_ended(self, task_id: str) -> bool:
        """Its shim wrote its exit (after the last line of its log), or this node does
        not (any longer) run it: its log grows no more."""
        return self.exit_file(task_id).exists() or not (self.tasks_dir / f"{task_id}.json").exists()

    def load_node(self) -> NodeRecord:
        path = self.root / "node.json"
        if not path.exists():
            return NodeRecord()
        return NodeRecord.model_validate_json(path.read_text())

    def save_node(self, record: NodeRecord) -> None:
        self.ensure_dirs()
        _atomic_write(self.root / "node.json", record.model_dump_json(indent=1))

    def load_tasks(self) -> dict[str, TaskRecord]:
        out: dict[str, TaskRecord] = {}
        if not self.tasks_dir.exists():
            return out
        for path in sorted(self.tasks_dir.glob("*.json")):
            rec = TaskRecord.model_validate_json(path.read_text())
            out[rec.task_id] = rec
        return out

    def save_task(self, record: TaskRecord) -> None:
        self.ensure_dirs()
        _atomic_write(self.tasks_dir / f"{record.task_id}.json", record.model_dump_json(indent=1))

    def drop_task(self, task_id: str) -> None:
        """Forget a task: its record and exit file. Its log stays, like a stopped
        container's, among the last KEPT_LOGS of forgotten tasks (what was said
        before a task stopped is often the reason to look)."""
        for path in (self.tasks_dir / f"{task_id}.json", self.exit_file(task_id)):
            path.unlink(missing_ok=True)
        self._prune_logs()

    def _prune_logs(self) -> None:
        if not self.logs_dir.exists():
            return
        orphans = [
            p for p in self.logs_dir.iterdir() if not (self.tasks_dir / f"{p.stem}.json").exists()
        ]
        orphans.sort(key=lambda p: p.stat().st_mtime)
        for path in orphans[: max(0, len(orphans) - KEPT_LOGS)]:
            path.unlink(missing_ok=True)

    def drop_all(self) -> None:
        """Remove every record file and then the (now empty) directories."""
        for d in (self.tasks_dir, self.logs_dir, self.exit_dir):
            if d.exists():
                for path in d.iterdir():
                    path.unlink(missing_ok=True)
                d.rmdir()
        if self.root.exists():
            for path in self.root.iterdir():
                if path.is_file():
                    path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.root.rmdir()


def read_exit_file(path: Path) -> tuple[int | None, int | None]:
    """(exit code, signal) written by the task shim; (None, None) if absent/garbled."""
    try:
        data = json.loads(Path(path).read_text())
        return data.get("exit_code"), data.get("signal")
    except (OSError, ValueError, AttributeError):
        return None, None


def read_exit_error(path: Path) -> str:
    """Why the shim could not start the workload (e.g. a mount failed); "" if it did."""
    try:
        error = json.loads(Path(path).read_text()).get("error", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return error if isinstance(error, str) else ""


def _atomic_write(path: Path, text: str) -> None:
    """Rename over the old file so a reader never sees half a record. No fsync: the
    records must outlive the daemon process, not the machine — after a power loss
    the namespaces and processes they describe are gone too."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
