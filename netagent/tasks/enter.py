"""How a command enters a task, like `docker exec`: its network, UTS and mount namespaces
(the mount namespace carries the task's /etc/netns bind mounts, e.g. resolv.conf)."""

from __future__ import annotations


def nsenter_argv(pid: int, cmd: list[str]) -> list[str]:
    return ["nsenter", "-t", str(pid), "-n", "-u", "-m", "--", *cmd]
