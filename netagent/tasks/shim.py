"""The task shim: PID "init" of one task, like a container's tini.

Run by the data plane inside the task's network namespace (via `ip netns exec`,
which also gives it a mount namespace with /etc/netns/<ns>/* bound over /etc):

    python -m netagent.tasks.shim --hostname ID12 --exit-file F -- ARGV...

It unshares a UTS namespace and sets the hostname (the task's own, like a
container id), forks the workload, forwards SIGTERM/SIGINT/SIGHUP to it,
reaps every orphan (it is a child subreaper), writes the workload's exit status
to F as JSON {"exit_code": N, "signal": S|null} and exits with the same code
(128+S for a signal, as shells do). The exit file is how a data plane that did
not spawn this process (after a restart) learns the exit code.

Imports only the standard library: it starts once per task and must be quick.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys

CLONE_NEWUTS = 0x04000000
PR_SET_CHILD_SUBREAPER = 36
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netagent.tasks.shim")
    p.add_argument("--hostname", required=True)
    p.add_argument("--exit-file", required=True)
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


def write_status(path: str, exit_code: int | None, sig: int | None) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"exit_code": exit_code, "signal": sig}, f)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    child = 0
    pending: list[int] = []

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
        try:
            os.execvp(args.command[0], args.command)
        except OSError as exc:
            sys.stderr.write(f"vxswarm shim: cannot run {args.command[0]!r}: {exc.strerror}\n")
            os._exit(127)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    for s in pending:
        os.kill(child, s)

    while True:
        pid, status = os.waitpid(-1, 0)  # also reaps re-parented orphans
        if pid == child:
            break
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        write_status(args.exit_file, None, sig)
        return 128 + sig
    code = os.WEXITSTATUS(status)
    write_status(args.exit_file, code, None)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        own_uts(args.hostname)
    except OSError as exc:
        sys.stderr.write(f"vxswarm shim: {exc}\n")
        write_status(args.exit_file, 126, None)
        return 126
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
