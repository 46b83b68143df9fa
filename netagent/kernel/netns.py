"""Named network namespaces and netlink sockets inside them, without forking.

Owns: the bind mounts under /run/netns (the `ip netns` convention, so `ip netns
exec` and `nsenter --net=/run/netns/<name>` work on everything vxswarm builds),
per-namespace sysctls, and the `ipr(ns)` context manager every other module uses
to talk RTNL to one namespace.

Why not pyroute2's `netns.create` / `IPRoute(netns=...)`: both fork a child
process per call (~13 ms each) and forking a threaded daemon risks inheriting a
held lock. Network namespaces are per *thread* in Linux, so a short-lived
helper thread can `unshare`/`setns` into a namespace, create the mount or the
socket and die; the socket stays bound to the namespace it was made in. The
calling thread never changes namespace.

Also the one place that turns kernel exceptions into `KernelError` (with the
errno) and the one polling helper (`wait_until`): RTNL changes are not
synchronous for every reader, so `ensure_*` steps poll until they see their
result instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

from netagent.contract.errors import InvalidArgument, KernelError
from netagent.kernel.pyroute import IPRoute, NetlinkError

NETNS_RUN_DIR = Path("/run/netns")
#: Files `ip netns exec` bind-mounts over /etc inside a namespace (resolv.conf).
NETNS_ETC_DIR = Path("/etc/netns")
CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
_NS_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}\Z")
_libc = ctypes.CDLL(None, use_errno=True)
_run_dir_lock = threading.Lock()

T = TypeVar("T")
P = ParamSpec("P")


def check_ns_name(name: str) -> str:
    """Refuse names that would escape /run/netns or that `ip netns` cannot show."""
    if not _NS_NAME_RE.match(name) or name in (".", ".."):
        raise InvalidArgument(
            f"invalid namespace name {name!r}: expected letters, digits, '.', '_' or '-'",
            obj=name,
            op="netns",
        )
    return name


def ns_path(name: str) -> Path:
    return NETNS_RUN_DIR / check_ns_name(name)


def exists(name: str) -> bool:
    return ns_path(name).exists()


def list_netns() -> set[str]:
    try:
        return {p.name for p in NETNS_RUN_DIR.iterdir()}
    except FileNotFoundError:
        return set()


def in_ns_thread(ns: str | None, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread that first joins namespace `ns` (None = ours)."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            if ns is not None:
                fd = os.open(ns_path(ns), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _check(_libc.setns(fd, CLONE_NEWNET), f"setns {ns}")
                finally:
                    os.close(fd)
            box["result"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns:{ns}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("result")  # type: ignore[return-value]


def outside_event_loop(fn: Callable[P, T]) -> Callable[P, T]:
    """Run `fn` in a helper thread when called from a thread running an asyncio loop.

    pyroute2's sync IPRoute drives its own `run_until_complete` on the calling
    thread's running loop and fails there ("This event loop is already running"),
    e.g. when an aiohttp handler starts the data plane. The caller still blocks."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        return in_ns_thread(None, lambda: fn(*args, **kwargs))

    return wrapper


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _share_run_dir() -> None:
    """Make /run/netns a shared mount, as `ip netns add` does, so that namespace
    bind mounts propagate to every mount namespace (e.g. `ip netns exec` ones)."""
    NETNS_RUN_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = str(NETNS_RUN_DIR).encode()
    if _libc.mount(b"", run_dir, b"none", _MS_SHARED | _MS_REC, None) == 0:
        return
    _check(_libc.mount(run_dir, run_dir, b"none", _MS_BIND | _MS_REC, None), "bind /run/netns")
    _check(_libc.mount(b"", run_dir, b"none", _MS_SHARED | _MS_REC, None), "share /run/netns")


def create(name: str, sysctls: dict[str, str] | None = None) -> bool:
    """Ensure namespace `name` exists; True if it was created now. `sysctls`
    (e.g. {"net/ipv6/conf/all/disable_ipv6": "1"}) are set in a new namespace from
    the same helper thread that made it, saving a thread hop per namespace."""
    path = ns_path(name)
    with kernel_errors(name, "create netns"), _run_dir_lock:
        if path.exists():
            return False
        _share_run_dir()
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))

        def bind_new_ns() -> None:
            _check(_libc.unshare(CLONE_NEWNET), "unshare")
            _check(
                _libc.mount(
                    b"/proc/thread-self/ns/net", str(path).encode(), b"none", _MS_BIND, None
                ),
                f"bind {path}",
            )
            for key, value in (sysctls or {}).items():
                (Path("/proc/sys") / key).write_text(value)

        try:
            in_ns_thread(None, bind_new_ns)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return True


def remove(name: str) -> bool:
    """Delete namespace `name` (links in it die with it once no process holds it);
    also its /etc/netns/<name> files. True if it existed."""
    path = ns_path(name)
    shutil.rmtree(NETNS_ETC_DIR / name, ignore_errors=True)
    with kernel_errors(name, "remove netns"):
        if not path.exists():
            return False
        # EINVAL: not a mount point (a half-made namespace); the unlink still applies.
        _libc.umount2(str(path).encode(), _MNT_DETACH)
        path.unlink(missing_ok=True)
    return True


def inode(name: str) -> int:
    """The namespace's identity: stable while it lives, compared with /proc/<pid>/ns/net."""
    return os.stat(ns_path(name)).st_ino


def write_sysctl(ns: str | None, key: str, value: str) -> str:
    """Set a per-namespace sysctl (e.g. net/ipv4/ip_forward); returns the old value.

    /proc/sys/net resolves to the namespace of the *opening thread*, so this is
    done from a thread inside `ns`."""
    path = Path("/proc/sys") / key

    def swap() -> str:
        old = path.read_text().strip()
        if old != value:
            path.write_text(value)
        return old

    with kernel_errors(f"{ns or 'self'}:{key}", "sysctl"):
        return in_ns_thread(ns, swap)


def netlink_socket(ns: str | None, proto: int = 0) -> socket.socket:
    """A netlink socket living in namespace `ns` (proto 0 = NETLINK_ROUTE)."""
    return in_ns_thread(ns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, proto))


def open_ipr(ns: str | None) -> IPRoute:
    """An IPRoute talking to namespace `ns` (None = this process's), for one thread.
    Closing it closes its socket too."""
    with kernel_errors(ns or "self", "open netlink"):
        if ns is None:
            return IPRoute()
        sock = netlink_socket(ns)
        try:
            return IPRoute(use_socket=sock)
        except BaseException:
            sock.close()
            raise


@contextlib.contextmanager
def ipr(ns: str | None) -> Iterator[IPRoute]:
    """`open_ipr` as a context manager."""
    handle = open_ipr(ns)
    try:
        yield handle
    finally:
        handle.close()


class IprPool:
    """IPRoute handles by namespace, opened on first use and closed together.

    One apply talks to the node ns and each sandbox many times; opening a handle
    costs a thread hop and an event loop, so it is done once per apply. Like
    IPRoute itself, a pool belongs to the thread that made it."""

    def __init__(self) -> None:
        self._open: dict[str | None, IPRoute] = {}

    def get(self, ns: str | None) -> IPRoute:
        if ns not in self._open:
            self._open[ns] = open_ipr(ns)
        return self._open[ns]

    def drop(self, ns: str | None) -> None:
        """Close the handle of a namespace about to be deleted."""
        handle = self._open.pop(ns, None)
        if handle is not None:
            handle.close()

    def close(self) -> None:
        while self._open:
            _, handle = self._open.popitem()
            handle.close()

    def __enter__(self) -> IprPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def open_ns_fd(name: str) -> Iterator[int]:
    """An fd of namespace `name`, for IFLA_NET_NS_FD (moving or creating links there)."""
    with kernel_errors(name, "open netns"):
        fd = os.open(ns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def kernel_errors(obj: str, op: str) -> Iterator[None]:
    """Turn netlink/OS errors into one KernelError line carrying the errno."""
    try:
        yield
    except KernelError:
        raise
    except NetlinkError as exc:
        raise KernelError(
            f"{op} {obj}: {exc.args[1] if len(exc.args) > 1 else exc}",
            obj=obj,
            op=op,
            errno=exc.code,
        ) from exc
    except OSError as exc:
        raise KernelError(
            f"{op} {obj}: {exc.strerror or exc}", obj=obj, op=op, errno=exc.errno
        ) from exc


def ignore_missing(exc: KernelError) -> bool:
    """Cleanup tolerates only 'it is already gone' errnos."""
    return exc.errno in (errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL)


def wait_until(
    what: str, predicate: Callable[[], bool], timeout: float = 2.0, obj: str = ""
) -> None:
    """Poll `predicate` until true; KernelError(ETIMEDOUT) naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not predicate():
        if time.monotonic() > deadline:
            raise KernelError(
                f"timed out waiting for {what}", obj=obj or what, op="wait", errno=errno.ETIMEDOUT
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def run_tool(
    ns: str | None, argv: Sequence[str], what: str, script: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a netfilter tool (iptables, nft) inside namespace `ns`; a missing or
    unstartable program is a KernelError naming `what`, a failing one is the caller's
    to judge from the return code."""
    try:
        return subprocess.run(
            [*nsenter_argv(ns), *argv], input=script, capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise KernelError(
            f"{what} in {ns or 'node ns'}: {exc.strerror} (is it installed?)",
            obj=ns or "node ns",
            op=what,
            errno=exc.errno,
        ) from exc


def nsenter_argv(ns: str | None) -> list[str]:
    """Prefix that runs a command in namespace `ns` (nothing for our own)."""
    return [] if ns is None else ["nsenter", f"--net={ns_path(ns)}"]
