"""Built-in workloads: what an IMAGE name means when there is no container runtime.

A task is a process in its own network and UTS namespace; its "image" picks
the program. This module is the pure part (no kernel, no processes): the agent
turns a task into an argv with `resolve` and an environment with `environment`;
the image names themselves are part of the contract (netagent.contract.images),
so the manager checks them without importing this package.

Images (aliases in brackets):
  whoami [nginx]          HTTP on :80, answers with hostname, task, IPs, client
  slowreply               HTTP on :8080, replies after 1 s with two timestamps
  host [alpine, busybox]  runs the task's command with the host's programs

Command rules, modelled on Docker:
  - a command replaces the image's default program (`whoami ping -c1 x` runs ping);
  - a command whose first word starts with '-' is passed to the default program
    as flags, the convention of official images' entrypoints
    (`whoami --port 8000` runs whoami on port 8000);
  - `host` (alpine) with no command runs `sh` with nothing to read, which in
    Docker exits 0 at once; here that is `sh -c "exit 0"`, so the task completes
    the same way whatever the agent wires to stdin.

Start-up speed matters (the workload servers import this package), so only the
standard library and `netagent.contract.errors` are imported at run time.
"""

from __future__ import annotations

import re
import sys
from types import MappingProxyType

from netagent.contract.errors import InvalidArgument
from netagent.contract.images import check_image

# typing.TYPE_CHECKING without importing typing (a few ms of every task's start-up);
# type checkers recognise the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from netagent.contract.desired import TaskAssignment, TaskSpec

#: Workloads served by a module of this package, run with the agent's interpreter.
SERVER_WORKLOADS = frozenset({"whoami", "slowreply"})
#: The TCP port each server workload listens on unless given --port.
SERVER_PORTS = MappingProxyType({"whoami": 80, "slowreply": 8080})
HOST_DEFAULT_COMMAND = ("sh", "-c", "exit 0")
#: Docker's default PATH for Linux containers.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ENV_NAME_RE = re.compile(r"[^=\0]+")


def full_image(image: str) -> str:
    """The image as the user named it, with the tag made explicit ("nginx:latest")."""
    _workload, tag = check_image(image)
    return f"{image.partition(':')[0]}:{tag}"


def resolve(spec: TaskSpec, task: TaskAssignment) -> list[str]:
    """The argv that runs `spec` for `task` (see the module docstring for the rules)."""
    workload, _tag = check_image(spec.image)
    command = list(spec.command)
    if command and not command[0]:
        raise InvalidArgument(
            f"invalid command {command!r} for task {task.name}: expected a non-empty "
            "program name first",
            obj=task.name,
            op="resolve workload",
        )
    for word in command:
        if "\0" in word:
            raise InvalidArgument(
                f"invalid command word {word!r} for task {task.name}: NUL bytes cannot be "
                "passed to a program",
                obj=task.name,
                op="resolve workload",
            )
    if workload in SERVER_WORKLOADS:
        default = [sys.executable, "-m", f"netagent.tasks.workloads.{workload}"]
        if not command:
            return default
        return default + command if command[0].startswith("-") else command
    return command or list(HOST_DEFAULT_COMMAND)


def ready_port(spec: TaskSpec) -> int | None:
    """The TCP port whose listening socket means the task is ready to serve, or None
    (not a server workload, or its program replaced: nothing known to wait for)."""
    workload, _tag = check_image(spec.image)
    command = list(spec.command)
    if workload not in SERVER_WORKLOADS or (command and not command[0].startswith("-")):
        return None
    port = SERVER_PORTS[workload]
    for i, word in enumerate(command):
        value = None
        if word == "--port" and i + 1 < len(command):
            value = command[i + 1]
        elif word.startswith("--port="):
            value = word.partition("=")[2]
        if value is not None:
            port = int(value) if value.isdigit() else 0
    return port or None  # 0: any free port, unknown in advance


def environment(task: TaskAssignment) -> dict[str, str]:
    """A clean environment for the task's process, as a container would get.

    Defaults first (PATH, HOME, HOSTNAME), then the service's `env` (which may
    override them, as `docker service create -e PATH=...` can), then the
    VXSWARM_* identity variables, which always tell the truth.
    """
    env = {"PATH": DEFAULT_PATH, "HOME": "/root", "HOSTNAME": task.hostname}
    for key, value in task.spec.env:
        if not _ENV_NAME_RE.fullmatch(key) or "\0" in value:
            raise InvalidArgument(
                f"invalid environment variable {key!r}={value!r} for task {task.name}: "
                "expected a non-empty NAME without '=' or NUL and a value without NUL",
                obj=task.name,
                op="task environment",
            )
        env[key] = value
    env.update(
        VXSWARM_TASK_NAME=task.name,
        VXSWARM_TASK_ID=task.id,
        VXSWARM_SERVICE_NAME=task.service_name,
        VXSWARM_IMAGE=full_image(task.spec.image),
    )
    return env


__all__ = [
    "DEFAULT_PATH",
    "HOST_DEFAULT_COMMAND",
    "environment",
    "full_image",
    "ready_port",
    "resolve",
]
