"""One cgroup per task: its memory and CPU limits, enforced by the kernel.

The kernel offers cgroup v1 (one hierarchy per controller: memory and cpu each have
their own directory tree) or v2 (one tree, controllers enabled per level through
cgroup.subtree_control); `detect()` finds which from /proc/self/mounts and
/proc/self/cgroup. A task's cgroup is, per hierarchy:

  v1: <mount of memory|cpu>/<the daemon's own cgroup>/<prefix>-tasks/<task name>-<id12>
  v2: <cgroup2 mount>/<prefix>-tasks/<task name>-<id12>

On v1 the tasks sit under the daemon's own cgroup, so whatever limits the machine put
on the daemon hold for its tasks too. On v2 a cgroup that holds processes (the
daemon's) cannot hand controllers to children, so the node's directory sits at the
top of the tree, as docker's cgroupfs driver puts /sys/fs/cgroup/docker. The node
prefix (netagent.kernel.naming) is unique per lab node and per lab, so two nodes or
two labs never share a directory.

Every task gets a cgroup, with limits or without, as docker gives every container
one: the agent then finds every process of a task (a daemonised grandchild that left
the shim's process group too) and the kernel counts the task's memory. Only when the
kernel offers no writable hierarchy at all does a task without limits run without
one; a task with limits then fails, with the reason.

Limits: v1 memory.limit_in_bytes, cpu.cfs_period_us + cpu.cfs_quota_us; v2
memory.max, cpu.max ("<quota> <period>"). The period is docker's 100 ms.

The shim (netagent.tasks.shim) moves itself in before it forks the workload, so no
process of the workload ever runs outside. `remove` kills what is left inside (only
that task's processes can be there) and removes the directories.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from netagent.contract.desired import Resources
from netagent.contract.errors import KernelError

log = logging.getLogger(__name__)

CFS_PERIOD_US = 100_000
NANO = 1_000_000_000
#: Where cgroup file systems are mounted (a recorded path outside it is not ours).
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: How long `remove` waits for killed leftovers to leave a cgroup.
REMOVE_WAIT = 2.0


@dataclass(frozen=True)
class Hierarchy:
    """One place task cgroups are made: `base` holds the node's directory."""

    version: int  # 1 or 2
    base: Path
    #: v1: the one controller of this hierarchy ("memory" or "cpu"); v2: "".
    controller: str = ""


@dataclass(frozen=True)
class Layout:
    """The hierarchies this kernel offers for task cgroups (empty: none)."""

    hierarchies: tuple[Hierarchy, ...]
    #: Why there are none, for the error of a task that needs limits.
    missing: str = ""

    @property
    def version(self) -> int | None:
        return self.hierarchies[0].version if self.hierarchies else None

    def node_dirs(self, node_dir: str) -> list[str]:
        return [str(h.base / node_dir) for h in self.hierarchies]

    def task_dirs(self, node_dir: str, leaf: str) -> list[str]:
        return [str(h.base / node_dir / leaf) for h in self.hierarchies]


def detect(mounts: str | None = None, own: str | None = None, root: Path = CGROUP_ROOT) -> Layout:
    """The hierarchies for memory and cpu: v1 when both controllers have their own
    (a hybrid system mounts an empty v2 tree beside them), else v2 when its tree offers
    both. `mounts` / `own` are /proc/self/mounts and /proc/self/cgroup (read when None)."""
    mounts = Path("/proc/self/mounts").read_text() if mounts is None else mounts
    own = Path("/proc/self/cgroup").read_text() if own is None else own
    paths: dict[str, str] = {}
    for line in own.splitlines():
        hid, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c if hid != "0" else ""] = path
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[1].startswith(str(root)):
            continue
        if fields[2] == "cgroup":
            for option in fields[3].split(","):
                if option in ("memory", "cpu"):
                    v1[option] = Path(fields[1])
        elif fields[2] == "cgroup2":
            v2 = Path(fields[1])
    if "memory" in v1 and "cpu" in v1:
        return Layout(
            tuple(Hierarchy(1, v1[c] / paths.get(c, "/").lstrip("/"), c) for c in ("memory", "cpu"))
        )
    if v2 is not None:
        try:
            offered = set((v2 / "cgroup.controllers").read_text().split())
        except OSError as exc:
            return Layout((), f"cannot read {v2}/cgroup.controllers: {exc.strerror}")
        if {"memory", "cpu"} <= offered:
            return Layout((Hierarchy(2, v2),))
        return Layout((), f"the cgroup v2 tree at {v2} offers no memory and cpu controllers")
    return Layout((), "the kernel has no memory and cpu cgroup controllers mounted")


def limit_files(version: int, controller: str, limits: Resources) -> list[tuple[str, str]]:
    """(file, value) to write into one task cgroup, in order. Pure."""
    out: list[tuple[str, str]] = []
    quota = limits.nano_cpus * CFS_PERIOD_US // NANO
    if version == 2:
        if limits.memory_bytes:
            out.append(("memory.max", str(limits.memory_bytes)))
        if quota:
            out.append(("cpu.max", f"{quota} {CFS_PERIOD_US}"))
    elif controller == "memory" and limits.memory_bytes:
        out.append(("memory.limit_in_bytes", str(limits.memory_bytes)))
    elif controller == "cpu" and quota:
        out += [("cpu.cfs_period_us", str(CFS_PERIOD_US)), ("cpu.cfs_quota_us", str(quota))]
    return out


def create(layout: Layout, node_dir: str, leaf: str, limits: Resources) -> None:
    """Make the task's cgroup in every hierarchy (the node's directory too if missing)
    and write its limits. Raises KernelError naming the path; undoes nothing (the
    caller removes what its record names)."""
    for h in layout.hierarchies:
        parent = h.base / node_dir
        path = parent / leaf
        try:
            if h.version == 2:
                _enable(h.base)
            _mkdir(parent)
            if h.version == 2:
                _enable(parent)
            _mkdir(path)
            for name, value in limit_files(h.version, h.controller, limits):
                (path / name).write_text(value)
        except OSError as exc:
            raise KernelError(
                f"cannot make cgroup {path}: {exc.strerror or exc}",
                obj=str(path),
                op="cgroup",
                errno=exc.errno,
            ) from exc


def _mkdir(path: Path) -> None:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o755)


def _enable(path: Path) -> None:
    """v2: hand the memory and cpu controllers to the children of `path`."""
    control = path / "cgroup.subtree_control"
    if not {"memory", "cpu"} <= set(control.read_text().split()):
        control.write_text("+memory +cpu")


def oom_killed(dirs: Iterable[str]) -> bool:
    """Whether the kernel's OOM killer killed a process of this cgroup (v1: oom_kill in
    memory.oom_control; v2: in memory.events)."""
    for d in dirs:
        for name in ("memory.oom_control", "memory.events"):
            with contextlib.suppress(OSError):
                for line in (Path(d) / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value or 0) > 0:
                        return True
    return False


def pids(path: str) -> list[int]:
    try:
        return [int(p) for p in (Path(path) / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def remove(dirs: Sequence[str]) -> list[str]:
    """Kill what is left in the task's cgroups and remove them; the ones that could
    not be removed (still busy after REMOVE_WAIT)."""
    left: list[str] = []
    for d in dirs:
        deadline = time.monotonic() + REMOVE_WAIT
        while True:
            for pid in pids(d):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    log.warning("cannot remove cgroup %s: %s", d, exc.strerror)
                    left.append(d)
                    break
                time.sleep(0.01)
    return left


def remove_node_dirs(dirs: Iterable[str]) -> list[str]:
    """Remove the node's own directories (after every task cgroup in them)."""
    left = []
    for d in dirs:
        try:
            os.rmdir(d)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot remove cgroup %s: %s", d, exc.strerror)
            left.append(d)
    return left


def owned(path: str, node_dir: str) -> bool:
    """True for a cgroup this node's agent makes: under the cgroup mounts, in (or being)
    its own node directory. Wipes refuse records naming anything else."""
    p = Path(path)
    if ".." in p.parts or not p.is_relative_to(CGROUP_ROOT):
        return False
    return p.name == node_dir or p.parent.name == node_dir
