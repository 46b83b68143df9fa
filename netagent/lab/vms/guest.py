"""Talking to a VM as the user's laptop does: SSH from the client namespace.

Every command runs as the `vagrant` user over the host-only network with the lab's own
key (made per lab, 0600), host keys pinned in the lab's known_hosts on first contact.
This is also how the checkout travels (rsync, as the Vagrantfile's synced folder) and how
provisioning runs (vagrant/provision.sh as written, under sudo, as Vagrant's shell
provisioner runs it).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from netagent.contract.errors import KernelError
from netagent.kernel.netns import nsenter_argv
from netagent.lab.vms.plan import (
    GUEST_CHECKOUT,
    GUEST_USER,
    PROVISION,
    RSYNC_EXCLUDE,
    VmLab,
    VmNode,
)

_SSH_WAIT_POLL = 2.0


def ssh_options(lab: VmLab, *, tty: bool = False) -> list[str]:
    return [
        "-i", str(lab.key),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={lab.known_hosts}",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=60",
        "-o", "LogLevel=ERROR",
        "-o", "ServerAliveInterval=10",
        *(["-t"] if tty else []),
    ]  # fmt: skip


def ssh_argv(lab: VmLab, node: VmNode, remote: str | None, *, tty: bool = False) -> list[str]:
    """ssh from the client namespace; `remote` is a command line for the guest's shell
    (None: a login shell)."""
    return [
        *nsenter_argv(lab.netns),
        "ssh",
        *ssh_options(lab, tty=tty),
        f"{GUEST_USER}@{node.ip}",
        *([remote] if remote is not None else []),
    ]


def client_argv(lab: VmLab, remote: str | None) -> list[str]:
    """A command line run on the 'laptop': inside the lab's namespace, at 192.168.56.1."""
    return [*nsenter_argv(lab.netns), "bash", *(["-c", remote] if remote is not None else [])]


def run(
    lab: VmLab,
    node: VmNode,
    command: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ssh_argv(lab, node, shlex.join(command)),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check(lab: VmLab, node: VmNode, command: Sequence[str], timeout: float = 120.0) -> str:
    done = run(lab, node, command, timeout=timeout)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise KernelError(
            f"{node.name}: {shlex.join(command)} failed ({done.returncode}): {last}",
            obj=node.name,
            op="ssh",
        )
    return done.stdout


def wait_for_ssh(lab: VmLab, node: VmNode, timeout: float, alive: Callable[[], bool]) -> float:
    """Poll until the VM answers over SSH; seconds waited. `alive()` False: the VM died."""
    start = time.monotonic()
    while True:
        try:
            if run(lab, node, ["true"], timeout=30).returncode == 0:
                return time.monotonic() - start
        except subprocess.TimeoutExpired:
            pass
        if not alive():
            raise KernelError(
                f"VM {node.name} stopped while booting: see {lab.console(node)}",
                obj=node.name,
                op="boot",
            )
        if time.monotonic() - start > timeout:
            raise KernelError(
                f"VM {node.name} did not answer on SSH within {timeout:.0f} s: "
                f"see {lab.console(node)}",
                obj=node.name,
                op="boot",
            )
        time.sleep(_SSH_WAIT_POLL)


def sync_checkout(lab: VmLab, node: VmNode, checkout: Path) -> None:
    """The checkout to /vagrant, as `vagrant rsync` copies it (same excludes)."""
    ssh = shlex.join(["ssh", *ssh_options(lab)])
    argv = [
        *nsenter_argv(lab.netns),
        "rsync", "-a", "--delete", "--rsync-path", "sudo rsync", "-e", ssh,
        *(f"--exclude={pattern}" for pattern in RSYNC_EXCLUDE),
        f"{checkout}/",
        f"{GUEST_USER}@{node.ip}:{GUEST_CHECKOUT}/",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise KernelError(f"rsync to {node.name}: {last}", obj=node.name, op="sync")


def provision_argv(lab: VmLab, node: VmNode) -> list[str]:
    """vagrant/provision.sh with the Vagrantfile's arguments; the join token is read from
    stdin into the environment, never into an argv that `ps` would show."""
    args = [
        "--name", node.name, "--addr", str(node.ip), "--role", str(node.role),
        "--manager", str(lab.manager.ip),
    ]  # fmt: skip
    script = (
        "IFS= read -r VXSWARM_JOIN_TOKEN; export VXSWARM_JOIN_TOKEN; "
        "exec sudo --preserve-env=VXSWARM_JOIN_TOKEN bash " + shlex.join([PROVISION, *args])
    )
    return ssh_argv(lab, node, shlex.join(["sh", "-c", script]))


def provision(lab: VmLab, node: VmNode, token: str, echo: Callable[[str], None]) -> None:
    """Run provisioning, echoing each line as Vagrant does ('    manager1: ...')."""
    proc = subprocess.Popen(
        provision_argv(lab, node),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(token + "\n")
    proc.stdin.close()
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        echo(f"    {node.name}: {line.rstrip()}")
    if proc.wait() != 0:
        raise KernelError(
            f"provisioning {node.name} failed ({proc.returncode}): "
            f"{lines[-1] if lines else 'no output'}",
            obj=node.name,
            op="provision",
        )


def in_parallel(jobs: dict[str, Callable[[], object]]) -> None:
    """Run named jobs side by side; raise the first failure once all have ended."""
    errors: dict[str, BaseException] = {}

    def body(name: str, job: Callable[[], object]) -> None:
        try:
            job()
        except BaseException as exc:
            errors[name] = exc

    threads = [threading.Thread(target=body, args=item, name=item[0]) for item in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise next(iter(errors.values()))


def echo_err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
