"""A Python handle on a real VM lab, for the opt-in test (tests/vms) and bench/vms.py.

`VmLabHandle.create()` runs `vxswarm lab vms up` under a unique name and its own state
root; `vx()` runs a vxswarm command on manager1 over SSH, as a user does after
`vagrant ssh manager1`; `client()` runs a command on the laptop (the lab's namespace);
`down()` removes everything, and runs even when a test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netagent.lab.topology import ROOT_ENV, lab_root
from netagent.lab.vms import guest
from netagent.lab.vms.plan import VmLab

_CLI = [sys.executable, "-m", "orchestrator.cli.main", "lab", "vms"]


@dataclass
class VmLabHandle:
    lab: VmLab
    env: dict[str, str]
    #: `lab vms up`'s last line of phases, e.g. "boot 74.2 s, ...".
    up_line: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, *, memory_mb: int = 1024) -> VmLabHandle:
        name = f"t{secrets.token_hex(3)}"
        handle = cls(VmLab(name, root), {**os.environ, ROOT_ENV: str(root)})
        try:
            out = handle.lab_vms("up", "--name", name, "--memory", str(memory_mb), timeout=1800)
        except BaseException:
            handle.down()
            raise
        handle.up_line = next(line for line in out.splitlines() if " is up in " in line)
        phases = handle.up_line.split("(", 1)[1].rstrip(")")
        for part in phases.split(", "):
            phase, secs, _ = part.rsplit(" ", 2)
            handle.timings[phase] = float(secs)
        return handle

    @classmethod
    def attach(cls, name: str) -> VmLabHandle:
        """A handle on a VM lab that is already up (under the default lab root)."""
        return cls(VmLab(name, lab_root()), dict(os.environ))

    def lab_vms(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        done = subprocess.run(
            [*_CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"vxswarm lab vms {shlex.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def ssh(
        self, node: str, *command: str, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return guest.run(self.lab, self.lab.node(node), command, timeout=timeout)

    def on(self, node: str, *command: str, timeout: float = 300) -> str:
        done = self.ssh(node, *command, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(
                f"{node}: {shlex.join(command)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def vx(self, *args: str, node: str = "manager1", timeout: float = 300) -> str:
        """A vxswarm command on a node (manager1 by default), as its vagrant user."""
        return self.on(node, "vxswarm", *args, timeout=timeout)

    def vx_json(self, *args: str, node: str = "manager1") -> Any:
        return json.loads(self.vx(*args, "--format", "json", node=node))

    def client(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A command on the laptop: the lab's namespace, 192.168.56.1."""
        return subprocess.run(
            guest.client_argv(self.lab, shlex.join(command)),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def running_tasks(self, service: str) -> list[dict[str, Any]]:
        tasks = self.vx_json("service", "ps", service)
        return [
            t
            for t in tasks
            if t["desired_state"] == "running" and t["status"]["state"] == "running"
        ]

    def wait_running(self, service: str, count: int, timeout: float = 600) -> list[dict[str, Any]]:
        return wait_for(
            f"{count} running tasks of {service}",
            lambda: (lambda r: r if len(r) >= count else None)(self.running_tasks(service)),
            timeout,
        )

    def node_states(self) -> dict[str, str]:
        out = self.vx("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
        return dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())

    def down(self) -> None:
        self.lab_vms("down", "--name", self.lab.name, check=False)


def wait_for(what: str, probe: Callable[[], Any], timeout: float, poll: float = 2.0) -> Any:
    """Poll `probe` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = probe()
        except AssertionError as err:  # a command that failed this time, e.g. mid-failover
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}; last: {last}"
            )
        time.sleep(poll)
