"""A service's mounts, checked before they are stored (swarmkit's and docker's rules).

Targets are absolute paths inside the task, at most one mount each; a bind's source is
an absolute path on the node (whether it exists is only known there: a task on a node
without it is rejected with docker's message); a volume's source is a local volume name;
a tmpfs has no source. The agent makes them (netagent.tasks.nsmounts).
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated

from pydantic import AfterValidator

from netagent.contract.desired import Mount, MountType

#: Docker's local volume names.
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\Z", re.IGNORECASE)


def ram_bytes(value: str) -> int:
    """A size as docker reads one (RAMInBytes): bytes, or 1024-based k, m, g, t, p."""
    found = _SIZE.match(value.strip())
    if not found:
        raise ValueError(f"invalid size {value!r}: expected bytes or a size like 64m or 1g")
    number, unit = found.groups()
    return int(float(number) * 1024 ** " kmgtp".index(unit.lower() or " "))


def check_mount(m: Mount) -> Mount:
    """`m`, or ValueError naming what is wrong with it."""
    if not posixpath.isabs(m.target):
        raise ValueError(f"invalid mount target, must be an absolute path: {m.target}")
    if posixpath.normpath(m.target) == "/":
        raise ValueError("invalid mount target: / (a task keeps the node's root)")
    if m.type == MountType.BIND and not posixpath.isabs(m.source):
        raise ValueError(f"invalid bind mount source, must be an absolute path: {m.source}")
    if m.type == MountType.VOLUME and not VOLUME_NAME.match(m.source):
        raise ValueError(
            f"invalid volume name {m.source!r}: expected [a-zA-Z0-9][a-zA-Z0-9_.-]+ "
            "(to mount a node directory, use type=bind with an absolute path)"
        )
    if m.type == MountType.TMPFS and m.source:
        raise ValueError(f"invalid tmpfs source {m.source!r}: a tmpfs takes no source")
    if m.type != MountType.TMPFS and (m.tmpfs_size or m.tmpfs_mode):
        raise ValueError(f"cannot mix 'tmpfs-*' options with mount type '{m.type}'")
    if m.tmpfs_size < 0:
        raise ValueError(f"invalid tmpfs size {m.tmpfs_size}: expected bytes, 0 or more")
    return m


#: A mount as a service stores it: checked on its own (errors name its index).
MountSpec = Annotated[Mount, AfterValidator(check_mount)]


def check_mounts(mounts: list[Mount]) -> list[Mount]:
    """No target twice (swarmkit's "duplicate mount point")."""
    seen: set[str] = set()
    for m in mounts:
        target = posixpath.normpath(m.target)
        if target in seen:
            raise ValueError(f"duplicate mount point: {m.target}")
        seen.add(target)
    return mounts
