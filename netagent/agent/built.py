"""What the data plane says it built: a read-only snapshot for the drift checker.

`DataPlane.built()` takes it under the data plane's lock; netagent.drift compares it
(with the desired state) against what the kernel holds, and never changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from netagent.kernel.naming import Names
from netagent.ledger.inventory import NodeRecord, TaskRecord

#: How a difference in the node's own namespace (no netns name) is labelled.
NODE_NS_LABEL = "node ns"


@dataclass(frozen=True)
class Built:
    """What the data plane says it built (read under its lock; never changed here)."""

    names: Names
    node_ns: str | None
    underlay_ip: IPv4Address
    node: NodeRecord
    tasks: Mapping[str, TaskRecord]
    #: Tasks whose exit the watcher is still waiting for (an exit seen there is reported).
    watched: frozenset[str] = frozenset()
    #: The node runs the embedded resolver (tasks get cluster DNS).
    dns: bool = True
    #: Tasks the load balancer counted as running at the last apply (None: use the records).
    applied_live: frozenset[str] | None = None

    @property
    def node_label(self) -> str:
        return self.node_ns or NODE_NS_LABEL
