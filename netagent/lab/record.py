"""lab.json: what a lab is and which daemon processes it started.

The record is the lab's memory between commands: `lab up` writes it, `lab ls`,
`stop`, `start` and `down` read it. A topology is rebuilt from it (name, node and
manager counts), so the names of kernel objects are derived again rather than
stored and trusted; daemon processes are kept as pid + /proc start time, so a pid
reused by an unrelated process is never signalled.

Writes go to a temporary file renamed over the old one: a crash never leaves half
a record.
"""

from __future__ import annotations

import json
import os
import time
from ipaddress import IPv4Address
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netagent.contract.errors import Conflict, InvalidArgument, NotFound, VxswarmError
from netagent.lab.topology import (
    DEFAULT_LAB,
    RECORD_NAME,
    Role,
    Topology,
    check_lab_name,
    lab_root,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProcessRecord(_Model):
    """A process we started: the pid alone is not an identity, pid + start time is."""

    pid: int
    start_time: int  # /proc/<pid>/stat field 22, in clock ticks since boot


class NodeRecord(_Model):
    name: str
    role: Role
    ip: IPv4Address
    netns: str
    state_dir: str
    daemon: ProcessRecord | None = None


class LabRecord(_Model):
    name: str
    nodes: int
    managers: int
    #: False for an underlay-only lab (tests): `start` then plugs the node in, nothing more.
    daemons: bool = True
    created_at: float = Field(default_factory=time.time)
    machines: list[NodeRecord] = Field(default_factory=list)

    @classmethod
    def for_topology(cls, topo: Topology, *, daemons: bool = True) -> LabRecord:
        return cls(
            name=topo.name,
            daemons=daemons,
            nodes=len(topo.nodes),
            managers=topo.managers,
            machines=[
                NodeRecord(
                    name=m.name,
                    role=m.role,
                    ip=m.ip,
                    netns=m.netns,
                    state_dir=str(m.state_dir),
                )
                for m in topo.machines
            ],
        )

    def topology(self, root: Path) -> Topology:
        return Topology.build(self.name, self.nodes, self.managers, root)

    def machine(self, name: str) -> NodeRecord:
        for m in self.machines:
            if m.name == name:
                return m
        raise NotFound(f"node {name!r} is not in the record of lab {self.name!r}", obj=name)

    def grow_to(self, topo: Topology) -> None:
        """Add the records of nodes `topo` has and this record does not (lab up --nodes more)."""
        known = {m.name for m in self.machines}
        fresh = LabRecord.for_topology(topo)
        self.machines.extend(m for m in fresh.machines if m.name not in known)
        self.nodes = len(topo.nodes)


def record_path(root: Path, name: str) -> Path:
    return root / name / RECORD_NAME


def load(root: Path, name: str) -> LabRecord:
    """The record of lab `name`; NotFound if there is none."""
    path = record_path(root, name)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NotFound(f"no lab {name!r} (no {path})", obj=name, op="lab") from None
    try:
        return LabRecord.model_validate(json.loads(text))
    except (ValueError, ValidationError) as err:
        raise VxswarmError(
            f"lab record {path} is damaged: {err.__class__.__name__}; "
            f"remove the lab with 'vxswarm lab down --name {name}'",
            obj=str(path),
            op="lab",
        ) from err


def save(root: Path, record: LabRecord) -> None:
    path = record_path(root, record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(record.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)


def list_labs(root: Path | None = None) -> list[str]:
    """Names of the labs that have a record under `root`, sorted."""
    root = lab_root() if root is None else root
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{RECORD_NAME}"))


def resolve_name(name: str | None, root: Path | None = None) -> str:
    """The lab a command means: the given one, else the only one that exists.

    With no lab at all the default name is returned (so `lab up` needs no --name);
    with several, the caller must say which.
    """
    if name is not None:
        return check_lab_name(name)
    labs = list_labs(root)
    if len(labs) <= 1:
        return labs[0] if labs else DEFAULT_LAB
    raise InvalidArgument(
        f"several labs are up ({', '.join(labs)}): expected --name with one of them",
        op="lab",
    )


def require(name: str | None, root: Path | None = None) -> LabRecord:
    """The record of the lab a command means, or a clear NotFound/InvalidArgument."""
    root = lab_root() if root is None else root
    resolved = resolve_name(name, root)
    try:
        return load(root, resolved)
    except NotFound:
        labs = list_labs(root)
        if not labs:
            raise NotFound(
                f"no lab {resolved!r}: no lab is up (start one with 'vxswarm lab up')",
                obj=resolved,
                op="lab",
            ) from None
        raise NotFound(
            f"no lab {resolved!r}: expected one of {', '.join(labs)}", obj=resolved, op="lab"
        ) from None


def check_compatible(record: LabRecord, topo: Topology) -> None:
    """Re-running `lab up` may add workers, never rename or re-address existing nodes."""
    older = record.topology(topo.root)
    if not topo.extends(older):
        managers = f"{record.managers} manager{'s' if record.managers != 1 else ''}"
        raise Conflict(
            f"lab {record.name!r} is up with {record.nodes} nodes ({managers}): "
            f"expected --nodes >= {record.nodes} and --managers {record.managers}, "
            f"or 'vxswarm lab down --name {record.name}' first",
            obj=record.name,
            op="lab up",
        )
