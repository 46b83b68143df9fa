"""Node daemons of the lab: start inside a node namespace, watch, stop by recorded pid.

Each node runs one `vxswarm daemon` inside its namespace, started with
`nsenter --net=/run/netns/<node ns>` (not `ip netns exec`, which would give the daemon
a private mount namespace and hide the namespaces it creates under /run/netns from
the host). nsenter without --fork execs the daemon in place, so the pid we get is
the daemon's own. The daemon is detached (its own session; output to daemon.log in
its state dir) so it outlives the `lab up` that started it.

A process is known by pid + /proc start time (ProcessRecord): before any signal we
check both, so a pid recycled by an unrelated process is never touched.

This module also runs the vxswarm CLI as a subprocess against one node's socket,
which is how `lab up` inits and joins the swarm: the lab drives daemons only through
their public API, like a user would across VMs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from netagent.contract.errors import KernelError, Unavailable, VxswarmError
from netagent.lab.record import ProcessRecord
from netagent.lab.topology import LabNode
from netagent.tasks import spawn

log = logging.getLogger(__name__)

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 60.0
_POLL = 0.05
_LOG_TAIL_LINES = 15


def cli_argv(*args: str) -> list[str]:
    """How to run the vxswarm CLI with the same interpreter (and venv) as us."""
    return [sys.executable, "-m", "orchestrator.cli.main", *args]


def bin_dir() -> str:
    """The venv's bin directory (holds the `vxswarm` console script)."""
    return str(Path(sys.executable).parent)


def is_running(proc: ProcessRecord | None) -> bool:
    """True if the recorded process is alive: same pid, same start time, not a zombie."""
    if proc is None:
        return False
    if spawn.is_same(proc.pid, proc.start_time):
        _reap(proc.pid)
    return spawn.alive(proc.pid, proc.start_time)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def start_daemon(node: LabNode) -> ProcessRecord:
    """Start the node's daemon inside its namespace, detached; its pid and start time."""
    node.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    argv = [
        "nsenter",
        f"--net={node.netns_path}",
        *cli_argv(
            "daemon",
            "--state-dir",
            str(node.state_dir),
            "--hostname",
            node.name,
            "--ns-prefix",
            node.netns,
            # A lab node is a machine of its own: its /etc/resolv.conf lives in its state
            # dir, absent by default (the lab has no way out, so names fail fast).
            "--resolv-conf",
            str(node.state_dir / "resolv.conf"),
        ),
    ]
    # A stale socket from a killed daemon would make readiness look true before the bind.
    node.socket.unlink(missing_ok=True)
    # The daemon's log is the node's own, like every file of its state dir: 0600.
    with open(os.open(node.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                # Its own dir, not ours: the daemon outlives the shell that started it.
                cwd=node.state_dir,
                env=daemon_env(),
            )
        except OSError as err:
            raise KernelError(
                f"start daemon of {node.name}: {err.strerror}",
                obj=node.name,
                op="start daemon",
                errno=err.errno,
            ) from err
    started = spawn.start_time(child.pid)
    if started is None:
        child.wait()
        raise Unavailable(
            f"daemon of {node.name} exited at once (code {child.returncode}): {log_tail(node)}",
            obj=node.name,
            op="start daemon",
        )
    log.info("started daemon of %s: pid %d", node.name, child.pid)
    return ProcessRecord(pid=child.pid, start_time=started)


def daemon_env() -> dict[str, str]:
    """Our environment minus the CLI target: a daemon is a server, never a client of another."""
    env = dict(os.environ)
    env.pop("VXSWARM_HOST", None)
    return env


def log_tail(node: LabNode, lines: int = _LOG_TAIL_LINES, sep: str = " | ") -> str:
    """The last lines of the node's daemon.log, for error messages (one line by default)."""
    try:
        text = node.log.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no daemon.log)"
    return sep.join(text[-lines:]) or "(daemon.log is empty)"


def info(node: LabNode, timeout: float = 2.0) -> dict[str, Any]:
    """GET /v1/info from the node's daemon over its unix socket."""
    transport = httpx.HTTPTransport(uds=str(node.socket))
    with httpx.Client(transport=transport, base_url="http://vxswarm", timeout=timeout) as client:
        resp = client.get("/v1/info")
        resp.raise_for_status()
        return resp.json()


def wait_ready(node: LabNode, proc: ProcessRecord, timeout: float = READY_TIMEOUT) -> None:
    """Poll until the daemon answers /v1/info; fail fast if it dies, with its log."""
    deadline = time.monotonic() + timeout
    while True:
        if not is_running(proc):
            raise Unavailable(
                f"daemon of {node.name} (pid {proc.pid}) exited before it was ready: "
                f"{log_tail(node)}",
                obj=node.name,
                op="start daemon",
            )
        if node.socket.exists():
            try:
                info(node)
                return
            except (httpx.HTTPError, OSError):
                pass
        if time.monotonic() > deadline:
            raise Unavailable(
                f"daemon of {node.name} (pid {proc.pid}) did not answer on {node.socket} "
                f"within {timeout:.0f}s: {log_tail(node)}",
                obj=node.name,
                op="start daemon",
            )
        time.sleep(_POLL)


def wait_gone(proc: ProcessRecord, timeout: float) -> bool:
    """Poll until the process is gone; True if it went within the timeout."""
    deadline = time.monotonic() + timeout
    while is_running(proc):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL)
    return True


def stop(proc: ProcessRecord | None, *, graceful: bool, timeout: float = STOP_TIMEOUT) -> None:
    """Stop a recorded process: SIGTERM then SIGKILL, or SIGKILL at once (power off)."""
    stop_all([proc] if proc else [], graceful=graceful, timeout=timeout)


def stop_all(
    procs: Sequence[ProcessRecord], *, graceful: bool, timeout: float = STOP_TIMEOUT
) -> None:
    """Stop recorded processes side by side: one grace period for all, then SIGKILL the rest."""
    if graceful:
        termed = [p for p in procs if spawn.signal_recorded(p.pid, p.start_time, signal.SIGTERM)]
        deadline = time.monotonic() + timeout
        for p in termed:
            wait_gone(p, max(0.0, deadline - time.monotonic()))
    for p in procs:
        spawn.signal_recorded(p.pid, p.start_time, signal.SIGKILL)
    for p in procs:
        if not wait_gone(p, timeout):
            raise KernelError(
                f"process {p.pid} did not die after SIGKILL", obj=str(p.pid), op="stop"
            )


def cli_env(node: LabNode | None) -> dict[str, str]:
    """Environment for a CLI talking to `node`'s daemon, with `vxswarm` on PATH."""
    env = dict(os.environ)
    env["PATH"] = bin_dir() + os.pathsep + env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    if node is None:
        env.pop("VXSWARM_HOST", None)
    else:
        env["VXSWARM_HOST"] = node.host_url
    return env


def run_cli(
    node: LabNode, args: Sequence[str], timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `vxswarm <args>` against the node's daemon; the completed process (not checked)."""
    return subprocess.run(
        cli_argv(*args),
        env=cli_env(node),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_cli(node: LabNode, args: Sequence[str]) -> str:
    """Run the CLI against `node`; its stdout, or a VxswarmError carrying its error line."""
    done = run_cli(node, args)
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise VxswarmError(
            f"'vxswarm {' '.join(args)}' on {node.name} failed (exit {done.returncode}): "
            f"{detail[-1] if detail else 'no output'}",
            obj=node.name,
            op=f"vxswarm {args[0] if args else ''}",
        )
    return done.stdout


def swarm_of(node: LabNode) -> dict[str, Any] | None:
    """The node's swarm membership from `vxswarm info --format json` (None: not in a swarm)."""
    out = check_cli(node, ["info", "--format", "json"])
    try:
        return json.loads(out).get("swarm")
    except (ValueError, AttributeError) as err:
        raise VxswarmError(
            f"'vxswarm info --format json' on {node.name} did not print a JSON object",
            obj=node.name,
            op="vxswarm info",
        ) from err
