"""How a command enters a task, like `docker exec`: its network, UTS and mount namespaces
(the mount namespace carries the task's /etc/netns bind mounts, e.g. resolv.conf).

A task is entered by its process's pid, not by a named namespace: its UTS and mount
namespaces have no name (`netagent.kernel.netns.nsenter_argv` enters a named netns only).
"""

from __future__ import annotations


def task_exec_argv(pid: int, cmd: list[str]) -> list[str]:
    """The argv that runs `cmd` inside the task whose process is `pid`."""
    return ["nsenter", "-t", str(pid), "-n", "-u", "-m", "--", *cmd]
