"""The agent's part of a task's mounts, secrets and configs, done before its shim starts.

The mounts themselves are made by the shim inside the task's own mount namespace
(netagent.tasks.nsmounts). Here, on the node: bind sources are checked (a missing one
rejects the task with docker's message, before anything is built), named volumes get
their directory under `<state_dir>/volumes/<name>` (0700 parent; kept after the task, as
docker keeps volumes; removed with the node's state by `wipe_node` and `lab down`), and
the shim's setup document is written to a memfd: anonymous memory the shim inherits as
an fd. Secret and config content therefore never touches the node's disk, argv, env or
the agent's records; the agent closes its copy as soon as the shim is spawned.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from netagent.contract.desired import MountType, TaskSpec
from netagent.contract.errors import InvalidArgument

#: Docker's volume names.
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
VOLUMES = "volumes"
#: An empty directory each task's shim covers with a tmpfs in its own namespace.
STAGE = "task-stage"


def check(spec: TaskSpec) -> None:
    """Refuse, with docker's words, mounts this node cannot give (nothing is made yet)."""
    for m in spec.mounts:
        if m.type == MountType.BIND and not os.path.exists(m.source):
            raise InvalidArgument(
                f'invalid mount config for type "bind": bind source path does not exist: {m.source}'
            )
        if m.type == MountType.VOLUME and not VOLUME_NAME.match(m.source):
            raise InvalidArgument(
                f'invalid mount config for type "volume": invalid volume name {m.source!r}: '
                "expected [a-zA-Z0-9][a-zA-Z0-9_.-]+"
            )


def volume_path(state_dir: Path, name: str) -> Path:
    """The named volume's directory, made on first use."""
    parent = Path(state_dir) / VOLUMES
    parent.mkdir(mode=0o700, exist_ok=True)
    path = parent / name
    if not path.is_dir():
        path.mkdir()
        path.chmod(0o755)  # the daemon's umask is 077; a volume is the task's to use
    return path


def setup_fd(spec: TaskSpec, state_dir: Path) -> int | None:
    """A memfd holding the shim's setup document; None when the task has nothing to mount.

    The caller passes it to `spawn.spawn` and closes it after."""
    if not spec.mounts and not spec.files:
        return None
    stage = Path(state_dir) / STAGE
    stage.mkdir(mode=0o700, exist_ok=True)
    mounts = []
    for m in spec.mounts:
        entry = m.model_dump(mode="json")
        if m.type == MountType.VOLUME:
            entry["source"] = str(volume_path(state_dir, m.source))
        mounts.append(entry)
    document = {
        "stage": str(stage),
        "mounts": mounts,
        "files": [f.model_dump(mode="json") for f in spec.files],
    }
    fd = os.memfd_create("vxswarm-task-setup", os.MFD_CLOEXEC)
    try:
        view = memoryview(json.dumps(document).encode())
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def wipe(state_dir: Path) -> None:
    """Remove the node's volumes and the stage directory (the node is being wiped)."""
    for name in (VOLUMES, STAGE):
        shutil.rmtree(Path(state_dir) / name, ignore_errors=True)
