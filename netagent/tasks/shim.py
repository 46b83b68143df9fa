"""The task shim: PID "init" of one task, like a container's tini.

Run by the data plane inside the task's network namespace (via `ip netns exec`,
which also gives it a mount namespace with /etc/netns/<ns>/* bound over /etc):

    python -m netagent.tasks.shim --hostname ID12 --exit-file F --log-file L -- ARGV...

It unshares a UTS namespace and sets the hostname (the task's own, like a
container id), makes the task's mounts, secrets and configs when the agent passes their
description on an inherited fd (--setup-fd, see netagent.tasks.nsmounts), forks the
workload, forwards SIGTERM/SIGINT/SIGHUP to it, reaps every orphan (it is a child
subreaper), writes the workload's exit status to F as JSON {"exit_code": N, "signal":
S|null} (plus "error" when the mounts could not be made) and exits with the same code
(128+S for a signal, as shells do). The exit file is how a data plane that did
not spawn this process (after a restart) learns the exit code.

The workload's stdout and stderr come to the shim through a pipe and go to L, rotated
by size as docker's json-file driver does with max-size and max-file: when L would pass
--log-max-size bytes it becomes L.1 (L.1 becomes L.2, ...) and the oldest beyond
--log-max-files is deleted, so a chatty task cannot fill the node's disk.

Imports only the standard library (nsmounts too): it starts once per task and must be quick.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import sys

from netagent.tasks import nsmounts

CLONE_NEWUTS = 0x04000000
PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Every task's log, as docker's json-file with `max-size=10m, max-file=3`.
LOG_MAX_SIZE = 10 * 1024 * 1024
LOG_MAX_FILES = 3
#: How often the shim looks for its workload's exit while output is quiet.
REAP_INTERVAL_MS = 200


class RotatingLog:
    """Append to `path`; rotate to path.1 ... path.<max_files - 1> past `max_size`."""

    def __init__(self, path: str, max_size: int = LOG_MAX_SIZE, max_files: int = LOG_MAX_FILES):
        self.path, self.max_size, self.max_files = path, max_size, max_files
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        """Append `data`, rotating between lines (a line longer than a whole file is
        the only one split)."""
        while data:
            room = self.max_size - self._size
            if len(data) <= room:
                self._append(data)
                return
            cut = data.rfind(b"\n", 0, room) + 1  # past the last whole line that fits
            if not cut and not self._size:
                cut = room
            if cut:
                self._append(data[:cut])
                data = data[cut:]
            self._rotate()

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        names = [self.path] + [f"{self.path}.{i}" for i in range(1, self.max_files)]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(names[-1])  # the oldest (the file itself when only one is kept)
        for older, newer in zip(reversed(names[1:]), reversed(names[:-1]), strict=True):
            with contextlib.suppress(FileNotFoundError):
                os.replace(newer, older)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = 0

    def close(self) -> None:
        os.close(self._fd)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netagent.tasks.shim")
    p.add_argument("--hostname", required=True)
    p.add_argument("--exit-file", required=True)
    p.add_argument("--log-file", default="")
    p.add_argument("--log-max-size", type=int, default=LOG_MAX_SIZE)
    p.add_argument("--log-max-files", type=int, default=LOG_MAX_FILES)
    p.add_argument("--setup-fd", type=int, default=-1)
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        p.error("a command is required after --")
    return args


def own_uts(hostname: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUTS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWUTS): {os.strerror(err)}")
    socket.sethostname(hostname)
    # Orphans of the workload are re-parented to us, not to the host's init.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def write_status(path: str, exit_code: int | None, sig: int | None, error: str = "") -> None:
    tmp = f"{path}.tmp"
    status: dict[str, object] = {"exit_code": exit_code, "signal": sig}
    if error:  # why the workload never started (the agent reports it as the task's error)
        status["error"] = error
    with open(tmp, "w") as f:
        json.dump(status, f)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    child = 0
    pending: list[int] = []
    # Without --log-file the workload writes where the shim does.
    out = None
    if args.log_file:
        out = RotatingLog(args.log_file, args.log_max_size, args.log_max_files)
    read_end, write_end = os.pipe() if out is not None else (-1, -1)

    def forward(signum: int, _frame: object) -> None:
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)
        else:
            pending.append(signum)  # arrived before fork returned; sent right after

    for s in FORWARDED:
        signal.signal(s, forward)

    # The data plane spawns us with FORWARDED blocked, so that none is lost (or kills us
    # without an exit file) before the handlers exist. They stay blocked across the fork
    # and are unblocked once `child` is known; a pending one is forwarded right then.
    child = os.fork()
    if child == 0:
        for s in FORWARDED:
            signal.signal(s, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
        if out is not None:
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            os.close(write_end)
            os.close(read_end)
        try:
            os.execvp(args.command[0], args.command)
        except OSError as exc:
            sys.stderr.write(f"vxswarm shim: cannot run {args.command[0]!r}: {exc.strerror}\n")
            os._exit(127)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    for s in pending:
        os.kill(child, s)

    status = _copy_until_exit(child, read_end, write_end, out) if out is not None else _reap(child)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        write_status(args.exit_file, None, sig)
        return 128 + sig
    code = os.WEXITSTATUS(status)
    write_status(args.exit_file, code, None)
    return code


def _reap(child: int) -> int:
    """Wait for the workload (reaping re-parented orphans meanwhile); its wait status."""
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == child:
            return status


def _copy_until_exit(child: int, read_end: int, write_end: int, out: RotatingLog) -> int:
    """Copy the workload's output to the log until it exits (an orphan that kept the
    pipe open does not hold the shim); its wait status."""
    os.close(write_end)
    os.set_blocking(read_end, False)
    poller = select.poll()
    poller.register(read_end, select.POLLIN)
    open_ = True
    while True:
        if open_ and poller.poll(REAP_INTERVAL_MS):
            open_ = _drain(read_end, out)
            if not open_:
                poller.unregister(read_end)
        elif not open_:
            # Every writer closed its end: only the exit is left to wait for.
            return _reap(child)
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            if pid == child:
                _drain(read_end, out)
                out.close()
                return status


def _drain(fd: int, out: RotatingLog) -> bool:
    """Copy what the pipe holds now; False at its end."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        out.write(data)


def main(argv: list[str] | None = None) -> int:
    os.chdir("/")  # spawned in the agent's code directory (see spawn.CODE_ROOT)
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        own_uts(args.hostname)
    except OSError as exc:
        sys.stderr.write(f"vxswarm shim: {exc}\n")
        write_status(args.exit_file, 126, None)
        return 126
    if args.setup_fd >= 0:
        try:
            nsmounts.prepare(nsmounts.read_setup(args.setup_fd))
        except (nsmounts.SetupError, OSError, ValueError) as exc:
            sys.stderr.write(f"vxswarm shim: {exc}\n")
            write_status(args.exit_file, 126, None, f"error mounting: {exc}")
            return 126
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
