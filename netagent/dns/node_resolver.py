"""The resolver as one node's data plane uses it: one `Resolver` for all its tasks.

Owns the node's view of upstream servers: the nameservers of the node's resolv.conf
(loopback ones left out: from inside a task namespace 127.0.0.53 is not the node's
stub resolver), re-read whenever the file changes, so editing it needs no restart.
The data plane calls, per task: `prepare` before the process is spawned (the task's
resolv.conf must exist then), `attach` once its namespace is built, `detach` when it
goes; per apply: `update` with the node's networks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from ipaddress import IPv4Address
from pathlib import Path

from netagent.contract.desired import NetworkState
from netagent.dns.resolvconf import remove_resolv_conf, write_resolv_conf
from netagent.dns.resolver import Resolver

log = logging.getLogger(__name__)


def read_upstreams(path: Path) -> list[IPv4Address]:
    """IPv4 nameservers of a resolv.conf, loopback ones dropped; [] if there is none."""
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                ip = IPv4Address(parts[1])
            except ValueError:
                continue  # IPv6 or garbage: the resolver forwards over IPv4 only
            if not ip.is_loopback:
                out.append(ip)
    return out


class NodeDns:
    def __init__(self, resolv_conf: Path | None):
        self._resolv_conf = resolv_conf
        self._stamp: tuple[int, int] | None = None
        self.resolver = Resolver(upstreams=self._read())
        self.resolver.start()

    def _read(self) -> list[IPv4Address]:
        if self._resolv_conf is None:
            return []
        try:
            st = os.stat(self._resolv_conf)
            self._stamp = (st.st_mtime_ns, st.st_ino)
        except OSError:
            self._stamp = None
        return read_upstreams(self._resolv_conf)

    def refresh_upstreams(self) -> None:
        """Pick up an edited resolv.conf (cheap: one stat)."""
        if self._resolv_conf is None:
            return
        try:
            st = os.stat(self._resolv_conf)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_ino)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            upstreams = self._read()
            log.info("upstream DNS servers now %s", [str(u) for u in upstreams] or "none")
            self.resolver.set_upstreams(upstreams)

    def update(self, networks: Sequence[NetworkState]) -> None:
        self.refresh_upstreams()
        self.resolver.update([n for n in networks if not n.ingress])

    @staticmethod
    def prepare(netns: str) -> None:
        write_resolv_conf(netns)

    def attach(self, task_id: str, netns: str, network_ids: Sequence[str]) -> None:
        self.resolver.attach(task_id, netns, network_ids)

    def detach(self, task_id: str, netns: str) -> None:
        self.resolver.detach(task_id)
        remove_resolv_conf(netns)

    def close(self) -> None:
        self.resolver.close()
