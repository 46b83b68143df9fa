"""vmlab.json: which VM lab is up, from which box, and which QEMU processes it started.

QEMU processes are kept as pid + start time (netagent.lab.record.ProcessRecord), so a
pid reused by an unrelated process is never signalled. Written by rename: a crash never
leaves half a record.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netagent.contract.errors import InvalidArgument, NotFound
from netagent.lab.record import ProcessRecord
from netagent.lab.topology import check_lab_name
from netagent.lab.vms.plan import RECORD_NAME, VMS_SUBDIR, VmLab


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VmRecord(_Model):
    name: str
    qemu: ProcessRecord | None = None


class VmLabRecord(_Model):
    name: str
    box: str
    memory_mb: int
    cpus: int
    created_at: float = Field(default_factory=time.time)
    vms: list[VmRecord] = Field(default_factory=list)

    def vm(self, name: str) -> VmRecord:
        for vm in self.vms:
            if vm.name == name:
                return vm
        vm = VmRecord(name=name)
        self.vms.append(vm)
        return vm


def save(lab: VmLab, record: VmLabRecord) -> None:
    lab.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = lab.record_path.with_suffix(".tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n")
    os.replace(tmp, lab.record_path)


def load(lab: VmLab) -> VmLabRecord:
    try:
        text = lab.record_path.read_text()
    except FileNotFoundError:
        raise NotFound(
            f"no VM lab {lab.name!r}: expected one made by 'vxswarm lab vms up --name {lab.name}'",
            obj=lab.name,
            op="lab vms",
        ) from None
    try:
        return VmLabRecord.model_validate_json(text)
    except ValidationError as err:
        raise InvalidArgument(
            f"unreadable VM lab record {lab.record_path}: {err.errors()[0]['msg']}",
            obj=str(lab.record_path),
            op="lab vms",
        ) from err


def list_labs(root: Path) -> list[str]:
    base = root / VMS_SUBDIR
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / RECORD_NAME).is_file())


def resolve_name(name: str | None, root: Path, default: str) -> str:
    """The lab asked for, else the only one that is up, else the default name."""
    if name is not None:
        return check_lab_name(name)
    labs = list_labs(root)
    return labs[0] if len(labs) == 1 else default
