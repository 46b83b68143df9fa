"""A Python handle on a real multi-node lab, driven through the `vxswarm` CLI.

For tests, benchmarks and scripts: `SwarmLab.create()` runs `lab up`, `run()` runs any
`vxswarm` command against one node's daemon, `down()` tears the lab down.

Every lab gets a unique name and its own state root, so two test runs on one box
never collide; `down()` runs even when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netagent.lab import record
from netagent.lab.nodes import log_tail as daemon_log_tail

VXSWARM = [sys.executable, "-m", "orchestrator.cli.main"]


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class SwarmLab:
    name: str
    root: Path
    nodes: tuple[str, ...] = ("manager1", "worker1", "worker2")
    env: dict[str, str] = field(default_factory=dict)
    #: The node whose daemon commands go to unless told otherwise (another manager
    #: while manager1 is down).
    via: str = "manager1"

    @classmethod
    def create(
        cls, root: Path, nodes: int = 3, env: dict[str, str] | None = None, managers: int = 1
    ) -> SwarmLab:
        """A lab of `nodes` nodes, `managers` of them managers; `env` is added to the
        environment of the CLI and so of the daemons it starts."""
        names = tuple(f"manager{i + 1}" for i in range(managers)) + tuple(
            f"worker{i + 1}" for i in range(nodes - managers)
        )
        lab = cls(name=f"t{secrets.token_hex(3)}", root=root, nodes=names)
        lab.env = {**os.environ, "VXSWARM_LAB_ROOT": str(root), **(env or {})}
        up = ("up", "--nodes", str(nodes), "--managers", str(managers))
        lab.lab(*up, check=True, timeout=180)
        return lab

    def socket(self, node: str) -> str:
        return f"unix://{self.root / self.name / node / 'vxswarm.sock'}"

    def run(
        self, *args: str, node: str | None = None, check: bool = False, timeout: float = 60
    ) -> Result:
        env = {**self.env, "VXSWARM_HOST": self.socket(node or self.via)}
        p = subprocess.run(
            [*VXSWARM, *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        res = Result(p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            raise AssertionError(f"vxswarm {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return res

    def lab(self, *args: str, check: bool = False, timeout: float = 120) -> Result:
        return self.run(
            "lab", args[0], "--name", self.name, *args[1:], check=check, timeout=timeout
        )

    def json(self, *args: str, node: str | None = None) -> Any:
        return json.loads(self.run(*args, "--format", "json", node=node, check=True).out)

    def down(self) -> None:
        self.lab("down", timeout=120)

    def node_ns(self, node: str) -> str:
        return f"vx-{self.name}-{node}"

    def tasks(self, service: str) -> list[dict]:
        return self.json("service", "ps", service)

    def running(self, service: str) -> list[dict]:
        return [
            t
            for t in self.tasks(service)
            if t["desired_state"] == "running" and t["status"]["state"] == "running"
        ]

    def hostnames(self) -> dict[str, str]:
        return {n["id"]: n["hostname"] for n in self.json("node", "ls")}

    def node_states(self) -> dict[str, str]:
        return {n["hostname"]: n["status"] for n in self.json("node", "ls")}

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_for(
            f"{len(self.nodes)} Ready nodes",
            lambda: self.node_states() == dict.fromkeys(self.nodes, "ready"),
            timeout=timeout,
        )

    def converge(self, service: str, n: int, timeout: float = 30.0) -> list[dict]:
        """Wait until exactly `n` tasks of `service` run; those tasks."""
        return wait_for(
            f"{n} running tasks of {service}",
            lambda: (r := self.running(service)) and len(r) == n and r,
            timeout=timeout,
        )

    @contextlib.contextmanager
    def service(
        self, name: str, *args: str, replicas: int | None = None, converge: bool = True
    ) -> Iterator[list[dict] | None]:
        """A service for one test: created, converged (unless told not to, e.g. global
        mode or tasks meant to fail), and removed even if the test fails."""
        count = ("--replicas", str(replicas)) if replicas is not None else ()
        self.run("service", "create", "--name", name, *count, *args, check=True)
        try:
            yield self.converge(name, replicas or 1) if converge else None
        finally:
            self.run("service", "rm", name)

    def lab_namespaces(self) -> list[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [ln.split()[0] for ln in out.splitlines() if ln.startswith(f"vx-{self.name}-")]

    def task_namespaces(self) -> list[str]:
        return [n for n in self.lab_namespaces() if "-t-" in n]

    def log_tail(self, node: str, lines: int = 40) -> str:
        """The last lines of a node's daemon.log, to say why a wait failed."""
        topology = record.load(self.root, self.name).topology(self.root)
        machine = next(m for m in topology.machines if m.name == node)
        return daemon_log_tail(machine, lines, sep="\n")

    def wait_for(
        self, what: str, probe: Callable[[], Any], timeout: float = 30.0, logs: Iterable[str] = ()
    ) -> Any:
        """`wait_for`, and on failure the last words of the daemons of `logs`."""
        try:
            return wait_for(what, probe, timeout)
        except AssertionError as err:
            tails = "".join(f"\n--- {n} daemon.log ---\n{self.log_tail(n)}" for n in logs)
            raise AssertionError(f"{err}{tails}") from None


@contextlib.contextmanager
def running_lab(
    root: Path, networks: Iterable[str] = (), env: dict[str, str] | None = None
) -> Iterator[SwarmLab]:
    """A 3-node lab with every node Ready and `networks` made; always taken down."""
    lab = SwarmLab.create(root, env=env)
    try:
        lab.wait_ready()
        for net in networks:
            lab.run("network", "create", "-d", "overlay", net, check=True)
        yield lab
    finally:
        lab.down()


def wait_for(
    what: str, probe: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2
) -> Any:
    """Poll until probe() is truthy; fail naming what we waited for and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
