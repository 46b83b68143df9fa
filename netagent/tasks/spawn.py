"""Task processes: spawning the shim, identifying a pid safely, watching for exit.

Owns the task shim processes (netagent.tasks.shim) and nothing else. A process is
identified by (pid, start time) — field 22 of /proc/<pid>/stat — because pids are
reused: nothing is ever signalled unless its start time matches the recorded one.

Spawn: `ip netns exec <task ns> python -m netagent.tasks.shim ... -- argv` with
start_new_session=True (the shim leads its own process group, so a final SIGKILL
reaches the workload too, and a SIGKILL of the daemon reaches neither) and
stdout/stderr to the task's log file. It starts in the directory holding this
`netagent` package (`CODE_ROOT`), which `-m` puts first on its path: the shim is the
daemon's own code whatever the task's environment holds (it moves to / at once).

Watch: one `Watcher` thread polls a pidfd per process (pidfds work for adopted
pids that are not our children, too), reaps our own children, fires SIGKILL
deadlines for graceful stops, and reports each exit once through a callback.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from netagent.contract.errors import KernelError

log = logging.getLogger(__name__)

IP = shutil.which("ip") or "/usr/sbin/ip"
#: The directory holding this `netagent` package: the shim starts there, so that `-m`
#: runs the agent's own shim (not another installed copy); it moves to / at once.
CODE_ROOT = str(Path(__file__).resolve().parents[2])
#: Signals the shim forwards to the workload (kept in step with netagent.tasks.shim).
SHIM_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state first), None if the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm (field 2) may hold spaces and ')'; the fields after the last ')' are fixed.
    return stat[stat.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Field 22 (starttime, clock ticks since boot) of /proc/<pid>/stat, None if gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def is_same(pid: int | None, started: int | None) -> bool:
    """True if `pid` is still the process that started at `started` (maybe a zombie)."""
    return pid is not None and started is not None and start_time(pid) == started


def alive(pid: int | None, started: int | None) -> bool:
    """True if the recorded process still runs (not exited, not a zombie)."""
    if pid is None or started is None:
        return False
    fields = _stat(pid)
    return fields is not None and int(fields[19]) == started and fields[0] != "Z"


def signal_recorded(pid: int | None, started: int | None, sig: int, group: bool = False) -> bool:
    """Signal a recorded process (or its group) only if its start time still matches."""
    if not is_same(pid, started):
        return False
    assert pid is not None
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class Spawned:
    pid: int
    start_time: int
    popen: subprocess.Popen


def spawn(
    netns: str,
    hostname: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    exit_file: Path,
    log_file: Path,
    setup_fd: int | None = None,
    cgroups: Sequence[str] = (),
) -> Spawned:
    """Start the shim for one task inside `netns`; does not wait for it.

    `setup_fd`: a file the shim inherits and reads its mounts and files from (see
    netagent.tasks.filesystem); the caller closes its own copy afterwards. The shim
    enters `cgroups` before it forks the workload."""
    setup = ["--setup-fd", str(setup_fd)] if setup_fd is not None else []
    # `ip netns exec` mounts a sysfs of the task's netns over /sys, which hides the
    # cgroup mounts: the shim gets each cgroup.procs already open instead.
    try:
        procs = [os.open(f"{path}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for path in cgroups]
    except OSError as exc:
        raise KernelError(
            f"open cgroup of task in {netns}: {exc.strerror}",
            obj=netns,
            op="spawn",
            errno=exc.errno,
        ) from exc
    cmd = [
        IP, "netns", "exec", netns,
        sys.executable, "-m", "netagent.tasks.shim",
        "--hostname", hostname, "--exit-file", str(exit_file), "--log-file", str(log_file),
        *setup,
        *[arg for fd in procs for arg in ("--cgroup-fd", str(fd))],
        "--", *argv,
    ]  # fmt: skip
    try:
        inherited = [*procs, *([setup_fd] if setup_fd is not None else [])]
        return _start(cmd, netns, env, exit_file, log_file, inherited)
    finally:
        for fd in procs:
            os.close(fd)


def _start(
    cmd: list[str],
    netns: str,
    env: Mapping[str, str],
    exit_file: Path,
    log_file: Path,
    pass_fds: Sequence[int],
) -> Spawned:
    Path(exit_file).unlink(missing_ok=True)
    # The child inherits this thread's signal mask: a SIGTERM sent before the shim has
    # installed its handlers stays pending instead of killing it without an exit file.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SHIM_SIGNALS)
    with open(log_file, "ab") as out:
        try:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=CODE_ROOT,
                start_new_session=True,
                close_fds=True,
                pass_fds=tuple(pass_fds),
                # The daemon creates its own files private (umask 077); a task gets
                # the usual 022, as a container does.
                umask=0o022,
            )
        except OSError as exc:
            raise KernelError(
                f"spawn task in {netns}: {exc.strerror}", obj=netns, op="spawn", errno=exc.errno
            ) from exc
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    started = start_time(popen.pid)
    if started is None:  # cannot happen while we have not reaped it; be explicit anyway
        raise KernelError(f"spawn task in {netns}: process vanished", obj=netns, op="spawn")
    return Spawned(popen.pid, started, popen)


class Watcher:
    """One thread that reports process exits and enforces stop deadlines."""

    def __init__(self, on_exit: Callable[[str], None]):
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._poll = select.poll()
        self._by_fd: dict[int, str] = {}
        self._fd_by_key: dict[str, int] = {}
        self._popen: dict[str, subprocess.Popen] = {}
        self._ident: dict[str, tuple[int, int]] = {}
        self._deadlines: dict[str, float] = {}
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll.register(self._wake_r, select.POLLIN)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="task-watcher", daemon=True)
        self._thread.start()

    def watch(
        self, key: str, pid: int, started: int, popen: subprocess.Popen | None = None
    ) -> bool:
        """Watch process (pid, started) under `key`; False if it is already gone."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        # The pidfd pins the pid: if the start time matches now, it is our process.
        if start_time(pid) != started:
            os.close(fd)
            return False
        with self._lock:
            self._forget(key)
            self._by_fd[fd] = key
            self._fd_by_key[key] = fd
            self._ident[key] = (pid, started)
            if popen is not None:
                self._popen[key] = popen
            self._poll.register(fd, select.POLLIN)
        self._wake()
        return True

    def stop(self, key: str, grace: float) -> bool:
        """SIGTERM the watched process now and SIGKILL its group after `grace` seconds."""
        with self._lock:
            fd = self._fd_by_key.get(key)
            if fd is None:
                return False
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
            self._deadlines.setdefault(key, time.monotonic() + max(grace, 0.0))
        self._wake()
        return True

    def kill(self, key: str) -> bool:
        """SIGKILL the watched process group at once."""
        with self._lock:
            if key not in self._fd_by_key:
                return False
            self._deadlines[key] = 0.0
        self._wake()
        return True

    def watching(self, key: str) -> bool:
        with self._lock:
            return key in self._fd_by_key

    def unwatch(self, key: str) -> None:
        """Stop watching without touching the process (close(), handing over)."""
        with self._lock:
            self._forget(key)

    def close(self) -> None:
        """Stop the thread; watched processes keep running."""
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(timeout=5)
        with self._lock:
            for key in list(self._fd_by_key):
                self._forget(key)
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- thread side -------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _forget(self, key: str) -> None:
        fd = self._fd_by_key.pop(key, None)
        if fd is not None:
            self._poll.unregister(fd)
            self._by_fd.pop(fd, None)
            os.close(fd)
        self._ident.pop(key, None)
        self._deadlines.pop(key, None)
        self._popen.pop(key, None)

    def _timeout_ms(self) -> int | None:
        if not self._deadlines:
            return None
        return max(0, int((min(self._deadlines.values()) - time.monotonic()) * 1000) + 1)

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                timeout = self._timeout_ms()
            events = self._poll.poll(timeout)
            exited: list[str] = []
            with self._lock:
                if self._closed:
                    return
                for fd, _ev in events:
                    if fd == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                        continue
                    key = self._by_fd.get(fd)
                    if key is None:
                        continue
                    popen = self._popen.get(key)
                    if popen is not None:
                        popen.poll()  # reap our own child so no zombie stays
                    self._forget(key)
                    exited.append(key)
                self._fire_deadlines()
            for key in exited:
                try:
                    self._on_exit(key)
                except Exception:  # a bad callback must not stop exit detection
                    log.exception("exit handler for task %s failed", key)

    def _fire_deadlines(self) -> None:
        now = time.monotonic()
        for key, when in list(self._deadlines.items()):
            if when > now:
                continue
            del self._deadlines[key]
            pid, started = self._ident[key]
            log.info("task %s did not stop in time: SIGKILL to process group %d", key, pid)
            try:
                signal_recorded(pid, started, signal.SIGKILL, group=True)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    log.warning("SIGKILL task %s: %s", key, exc)
