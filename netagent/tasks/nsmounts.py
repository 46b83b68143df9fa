"""A task's mounts, secrets and configs, made by its shim inside the task's own mount
namespace just before the workload starts. Nothing here is mounted in the node's.

The shim runs under `ip netns exec`, which unshares a mount namespace for it (and makes
`/` a recursive slave); `prepare` makes `/` rslave again so that no mount made here can
propagate back, whatever iproute2 does. The namespace lives as long as the task's
processes: every mount and every tmpfs byte is gone with the task.

What the agent sends (through a memfd, never argv or env: see netagent.tasks.filesystem)
is a JSON `Setup`: the stage directory (an empty directory of the agent's), the mounts
(bind and volume sources already resolved to node paths) and the files (base64).

How a target that does not exist on the node appears without being created there: a
"mimic". The deepest existing ancestor A of the target is covered, in this namespace
only, by a fresh tmpfs holding an empty stand-in for each entry of A, onto which the
original entry is bind-mounted back (recursively, so e.g. /proc keeps its submounts);
the missing directories are then made in that tmpfs. The task sees A as before plus the
new mountpoint; the node's A is untouched. Creating the path on the node instead would
change the host (and leave litter after the task); an overlayfs over A would hide A's
submounts (an overlay over `/` would hide /proc, /sys, /dev). When A is `/` the mimic is
moved over `/` and the shim chroots into it (the way switch_root does); `setns` into the
namespace (`nsenter -m`, `vxswarm exec`) lands on the topmost mount over `/`, so exec
sees the same tree.

Secrets and configs: their content is written to a tmpfs of its own inside the stage
directory, then bind-mounted read-only where the task wants them: the secrets' directory
as a whole at /run/secrets (which also hides the node's own /run/secrets), every other
file one by one. The stage is a tmpfs (0700) mounted over an empty directory of the
agent's and made unbindable, so the mimics' recursive binds never copy it (a bind out of
an unbindable mount is refused, hence the files' own bindable tmpfs inside it). The
stage is detached at the end: what stays reachable is only what was mounted.

Imports only the standard library: it runs in the shim, once per task.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import posixpath
import stat
from dataclasses import dataclass, field

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_RELATIME = 0x200000
MNT_DETACH = 0x2
SECRETS_DIR = "/run/secrets"

#: statvfs flags a read-only remount must keep (a bind remount replaces them all).
_KEPT_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p,) * 3 + (ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


class SetupError(Exception):
    """A mount the task asked for cannot be made; the task fails with this message."""


def _b(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data) if data else None) != 0:
        err = ctypes.get_errno()
        raise SetupError(f"mount {source or fstype} on {target}: {os.strerror(err)}")


def umount(target: str) -> None:
    if _libc.umount2(_b(target), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise SetupError(f"umount {target}: {os.strerror(err)}")


@dataclass(frozen=True)
class Op:
    """One mount to make at `target`: a bind of `source`, or a new tmpfs (source "")."""

    target: str
    source: str = ""
    readonly: bool = False
    is_dir: bool = True
    tmpfs_options: str = ""


@dataclass
class Namespace:
    """The mounts made so far in this namespace: which filesystems are ours to write."""

    stage: str  # /proc/self/fd/N: reachable even after a chroot into a mimic of /
    owned: set[int] = field(default_factory=set)
    mimics: int = 0

    @property
    def files(self) -> str:
        return f"{self.stage}/files"


def prepare(setup: dict) -> None:
    """Make the mounts and files of `setup` in the current (the task's) mount namespace."""
    mount(None, "/", None, MS_REC | MS_SLAVE)
    stage_dir = setup["stage"]
    mount("tmpfs", stage_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700")
    mount(None, stage_dir, None, MS_UNBINDABLE)
    fd = os.open(stage_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    ns = Namespace(stage=f"/proc/self/fd/{fd}")
    # Nothing can be bound out of an unbindable mount: the files get a tmpfs of their
    # own inside it (skipped by recursive binds along with its unbindable parent).
    os.mkdir(ns.files, 0o700)
    mount("tmpfs", ns.files, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700")
    try:
        ops = [*_mount_ops(setup["mounts"]), *_stage_files(ns, setup["files"])]
        # Parents before children, as docker orders a container's mounts.
        for op in sorted(ops, key=lambda o: o.target.rstrip("/").count("/")):
            _make(ns, op)
        umount(ns.stage)
    finally:
        os.close(fd)
    os.chdir("/")


def _mount_ops(mounts: list[dict]) -> list[Op]:
    ops = []
    for m in mounts:
        if m["type"] == "tmpfs":
            options = [f"size={m['tmpfs_size']}"] if m.get("tmpfs_size") else []
            if m.get("tmpfs_mode"):
                options.append(f"mode={m['tmpfs_mode']:o}")
            ops.append(Op(m["target"], readonly=m["readonly"], tmpfs_options=",".join(options)))
        else:
            try:
                is_dir = os.path.isdir(m["source"])
            except OSError as exc:
                raise SetupError(f"bind source {m['source']}: {exc.strerror}") from exc
            ops.append(Op(m["target"], m["source"], m["readonly"], is_dir))
    return ops


def _stage_files(ns: Namespace, files: list[dict]) -> list[Op]:
    """Write every file's content to the stage tmpfs; the binds that show them."""
    ops: list[Op] = []
    secrets = f"{ns.files}/secrets"
    if any(f["kind"] == "secret" and _under(f["target"], SECRETS_DIR) for f in files):
        os.mkdir(secrets, 0o755)
        os.chmod(secrets, 0o755)  # not masked by the shim's umask
        ops.append(Op(SECRETS_DIR, secrets, readonly=True))
    for i, f in enumerate(files):
        if f["kind"] == "secret" and _under(f["target"], SECRETS_DIR):
            relative = posixpath.relpath(posixpath.normpath(f["target"]), SECRETS_DIR)
            path = posixpath.join(secrets, relative)
            os.makedirs(posixpath.dirname(path), mode=0o755, exist_ok=True)
        else:
            path = f"{ns.files}/file-{i}"
            ops.append(Op(f["target"], path, readonly=True, is_dir=False))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, base64.b64decode(f["data"]))
            os.fchown(fd, f["uid"], f["gid"])
            os.fchmod(fd, f["mode"])
        finally:
            os.close(fd)
    return ops


def _under(path: str, directory: str) -> bool:
    return posixpath.normpath(path).startswith(directory + "/")


def _make(ns: Namespace, op: Op) -> None:
    target = _ensure_target(ns, op.target, op.is_dir)
    if op.source:
        mount(op.source, target, None, MS_BIND | MS_REC)
        if op.readonly:
            _remount_readonly(target)
        return
    flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if op.readonly else 0)
    mount("tmpfs", target, "tmpfs", flags, op.tmpfs_options)
    ns.owned.add(os.stat(target).st_dev)  # a tmpfs of the task's: mountpoints go in it


def _remount_readonly(target: str) -> None:
    kept = os.statvfs(target).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY
    for st_flag, ms_flag in _KEPT_FLAGS:
        if kept & st_flag:
            flags |= ms_flag
    mount(None, target, None, flags)


def _ensure_target(ns: Namespace, target: str, is_dir: bool) -> str:
    """The target's path, made to exist in this namespace only (see the module doc)."""
    path = os.path.realpath(target)  # as the kernel will resolve it
    if os.path.lexists(path):
        if os.path.isdir(path) != is_dir:
            kind = "not a directory" if is_dir else "is a directory"
            raise SetupError(f"cannot mount on {target}: {kind}")
        return path
    ancestor = posixpath.dirname(path)
    while not os.path.lexists(ancestor):
        ancestor = posixpath.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise SetupError(f"cannot mount on {target}: {ancestor} is not a directory")
    if os.stat(ancestor).st_dev not in ns.owned:
        _mimic(ns, ancestor)
    parent = posixpath.dirname(path)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    if is_dir:
        os.mkdir(path, 0o755)
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return path


def _mimic(ns: Namespace, directory: str) -> None:
    """Cover `directory` with a tmpfs that shows the same entries (bound back)."""
    ns.mimics += 1
    copy = f"{ns.stage}/mimic-{ns.mimics}"
    os.mkdir(copy, 0o700)
    st = os.stat(directory)
    kept = os.statvfs(directory).f_flag
    flags = MS_NOSUID if kept & os.ST_NOSUID else 0
    mount("tmpfs", copy, "tmpfs", flags | (MS_NODEV if kept & os.ST_NODEV else 0),
          f"mode={stat.S_IMODE(st.st_mode):o},uid={st.st_uid},gid={st.st_gid}")  # fmt: skip
    for entry in os.scandir(directory):
        _bind_back(entry, f"{copy}/{entry.name}")
    ns.owned.add(os.stat(copy).st_dev)
    if directory == "/":
        # A path walk never crosses a mount stacked on the walk's own root: move the copy
        # over / and chroot into it, with the working directory as the handle on it.
        os.chdir(copy)
        mount(".", "/", None, MS_MOVE)
        os.chroot(".")
    else:
        mount(copy, directory, None, MS_MOVE)


def _bind_back(entry: os.DirEntry, stand_in: str) -> None:
    st = entry.stat(follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(entry.path), stand_in)
        return
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(stand_in, stat.S_IMODE(st.st_mode))
    else:
        os.close(os.open(stand_in, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.chown(stand_in, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(stand_in, stat.S_IMODE(st.st_mode))
    mount(entry.path, stand_in, None, MS_BIND | MS_REC)


def read_setup(fd: int) -> dict:
    """The setup document from the agent's memfd (closed here: the workload never has it)."""
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return json.loads(b"".join(chunks))
