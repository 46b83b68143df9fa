"""The task shim: PID "init" of one task, like a container's tini.

Run by the data plane inside the task's network namespace (via `ip netns exec`,
which also gives it a mount namespace with /etc/netns/<ns>/* bound over /etc):

    python -m netagent.tasks.shim --hostname ID12 --exit-file F --log-file L
                                  [--setup-fd FD] [--cgroup-fd FD]... -- ARGV...

It moves itself into the task's cgroups (--cgroup-fd: each one's cgroup.procs, opened
by the data plane, as /sys is another sysfs inside the netns), unshares a UTS
namespace and sets the hostname (the task's own, like a container id), makes the task's
mounts, secrets and configs when the agent passes their description on an inherited fd
(--setup-fd, see netagent.tasks.nsmounts), forks the workload, forwards
SIGTERM/SIGINT/SIGHUP to it, reaps every orphan (it is a child subreaper), writes the
workload's exit status to F as JSON {"exit_code": N, "signal": S|null} (plus "error"
when the mounts could not be made) and exits with the same code (128+S for a signal, as
shells do). The exit file is how a data plane that did not spawn this process (after a
restart) learns the exit code.

The workload's stdout and stderr come to the shim through two pipes and go to L in
docker's json-file format, one JSON object a line: {"log": "hello\n", "stream":
"stdout", "time": "2026-12-07T01:02:03.123456789Z"}: the time each line reached the
shim and which stream it came on are what `service logs --timestamps/--since` and its
stdout/stderr split need, and a raw file cannot tell them afterwards. A line without
its newline yet is held until it ends, or written as it is past PARTIAL_MAX bytes (as
docker splits at 16 KiB) or when the workload exits. L is rotated by size as
json-file does with max-size and max-file: when L would pass --log-max-size bytes it
becomes L.1 (L.1 becomes L.2, ...) and the oldest beyond --log-max-files is deleted,
so a chatty task cannot fill the node's disk.

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
import time

CLONE_NEWUTS = 0x04000000
PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: Every task's log, as docker's json-file with `max-size=10m, max-file=3`.
LOG_MAX_SIZE = 10 * 1024 * 1024
LOG_MAX_FILES = 3
#: How often the shim looks for its workload's exit while output is quiet.
REAP_INTERVAL_MS = 200
#: A line still without its newline is written as it is past this size (docker's 16 KiB).
PARTIAL_MAX = 16 * 1024


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


def rfc3339_nano(time_ns: int) -> str:
    """Docker's log time: UTC, nanoseconds, `Z`."""
    secs, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


class JsonLines:
    """The workload's streams as json-file lines, written through a RotatingLog."""

    def __init__(self, out: RotatingLog):
        self.out = out
        self._held: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        """Write every whole line of `stream` that `data` ends; hold the rest."""
        data = self._held.pop(stream, b"") + data
        stamp = rfc3339_nano(time.time_ns())
        lines = data.split(b"\n")
        rest = lines.pop()
        entries = [self._entry(stream, line + b"\n", stamp) for line in lines]
        while len(rest) > PARTIAL_MAX:
            entries.append(self._entry(stream, rest[:PARTIAL_MAX], stamp))
            rest = rest[PARTIAL_MAX:]
        if rest:
            self._held[stream] = rest
        if entries:
            self.out.write(b"".join(entries))

    def flush(self) -> None:
        """Write what is held (the workload ended without a last newline)."""
        stamp = rfc3339_nano(time.time_ns())
        held, self._held = self._held, {}
        self.out.write(b"".join(self._entry(s, data, stamp) for s, data in held.items()))

    def close(self) -> None:
        self.flush()
        self.out.close()

    @staticmethod
    def _entry(stream: str, text: bytes, stamp: str) -> bytes:
        # Bytes that are not UTF-8 become U+FFFD, as docker's json-file does.
        log = text.decode("utf-8", errors="replace")
        return json.dumps({"log": log, "stream": stream, "time": stamp}).encode() + b"\n"


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netagent.tasks.shim")
    p.add_argument("--hostname", required=True)
    p.add_argument("--exit-file", required=True)
    p.add_argument("--log-file", default="")
    p.add_argument("--log-max-size", type=int, default=LOG_MAX_SIZE)
    p.add_argument("--log-max-files", type=int, default=LOG_MAX_FILES)
    p.add_argument("--setup-fd", type=int, default=-1)
    p.add_argument("--cgroup-fd", type=int, action="append", default=[])
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
        out = JsonLines(RotatingLog(args.log_file, args.log_max_size, args.log_max_files))
    pipes = {"stdout": os.pipe(), "stderr": os.pipe()} if out is not None else {}

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
        for fd, (read_end, write_end) in zip((1, 2), pipes.values(), strict=False):
            os.dup2(write_end, fd)
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

    status = _copy_until_exit(child, pipes, out) if out is not None else _reap(child)
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


def _copy_until_exit(child: int, pipes: dict[str, tuple[int, int]], out: JsonLines) -> int:
    """Copy the workload's output to the log until it exits (an orphan that kept a
    pipe open does not hold the shim); its wait status."""
    streams: dict[int, str] = {}
    poller = select.poll()
    for stream, (read_end, write_end) in pipes.items():
        os.close(write_end)
        os.set_blocking(read_end, False)
        poller.register(read_end, select.POLLIN)
        streams[read_end] = stream
    while True:
        if streams:
            for fd, _event in poller.poll(REAP_INTERVAL_MS):
                if fd in streams and not _drain(fd, streams[fd], out):
                    poller.unregister(fd)
                    del streams[fd]
        else:
            # Every writer closed its ends: only the exit is left to wait for.
            status = _reap(child)
            out.close()
            return status
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            if pid == child:
                for fd, stream in streams.items():
                    _drain(fd, stream, out)
                out.close()
                return status


def _drain(fd: int, stream: str, out: JsonLines) -> bool:
    """Copy what the pipe holds now; False at its end."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        out.write(stream, data)


def _anchored(path: str) -> str:
    """`path` through an fd of its directory (kept open, not inherited by the workload)."""
    if not path:
        return path
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_PATH | os.O_DIRECTORY)
    return f"/proc/self/fd/{directory}/{os.path.basename(path)}"


def enter_cgroups(fds: list[int]) -> None:
    """Move this process into the task's cgroups, through their cgroup.procs files the
    data plane opened for us: the workload, forked after, starts inside them."""
    for fd in fds:
        try:
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:
            raise OSError(exc.errno, f"cannot enter the task's cgroup: {exc.strerror}") from exc
        finally:
            os.close(fd)


def main(argv: list[str] | None = None) -> int:
    os.chdir("/")  # spawned in the agent's code directory (see spawn.CODE_ROOT)
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        enter_cgroups(args.cgroup_fd)
        own_uts(args.hostname)
    except OSError as exc:
        sys.stderr.write(f"vxswarm shim: {exc}\n")
        write_status(args.exit_file, 126, None)
        return 126
    if args.setup_fd >= 0:
        # Imported only here: most tasks mount nothing, and the shim must start fast.
        from netagent.tasks import nsmounts

        # The exit file and the log are the node's: a task's mount over their directory
        # (a tmpfs at /tmp, say) must not swallow them. Reach them through open dirs.
        args.exit_file, args.log_file = (_anchored(p) for p in (args.exit_file, args.log_file))
        try:
            nsmounts.prepare(nsmounts.read_setup(args.setup_fd))
        except (nsmounts.SetupError, OSError, ValueError) as exc:
            sys.stderr.write(f"vxswarm shim: {exc}\n")
            write_status(args.exit_file, 126, None, f"error mounting: {exc}")
            return 126
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
