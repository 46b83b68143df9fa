"""What `vxswarm verify` says about one node: differences, how each is fixed, the wire models.

No kernel objects here. A `Difference` is one line of a report: the kind of object
(a netns, a link, an FDB entry ...), which object, what is wrong, and the `Fix`
that repairs it. The fix is chosen per kind where the difference is found
(netagent.drift.diff), so that the repair (netagent.drift.repair) is a plain
dispatch and a reader sees in one place why each kind is repaired the way it is.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from netagent.contract.desired import NodeDesiredState


class Kind(StrEnum):
    """The kind of object that differs; also the `kind` label of vxswarm_repairs_total."""

    NETNS = "netns"
    LINK = "link"
    ADDRESS = "address"
    ROUTE = "route"
    FDB = "fdb"
    NEIGH = "neigh"
    RULE = "rule"
    SYSCTL = "sysctl"
    DNS = "dns"
    TASK = "task"
    NODE = "node"


class Fix(StrEnum):
    """How a difference is repaired (see netagent.drift.repair for why each is enough)."""

    #: Forget what the data plane remembers writing into the namespace, apply again.
    REAPPLY = "reapply"
    #: Rebuild the task's missing veths, addresses and route in place (it keeps running).
    REBUILD_TASK = "rebuild-task"
    #: Its namespace is gone: stop the task, so the restart policy replaces it.
    REPLACE_TASK = "replace-task"
    #: Its process is gone: report it failed, so the restart policy replaces it.
    REPORT_TASK = "report-task"
    #: Close and reopen the task's resolver sockets.
    REATTACH_DNS = "reattach-dns"
    #: Write the sysctl's value again (`want` is "key=value").
    SET_SYSCTL = "set-sysctl"
    #: A namespace of this node that nothing desired uses: delete it.
    REMOVE_NETNS = "remove-netns"
    #: Nothing this node can do (e.g. a node that did not answer).
    NONE = "none"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Difference(_Frozen):
    """One thing on a node that is not as its desired state says."""

    kind: Kind
    #: What differs, as a user finds it: "vx-4097 in vx-lab-worker1-ov-4097", "web.2".
    object: str
    #: What is wrong: "missing 02:42:0a:00:00:05 dst 192.168.56.13 (web.3)".
    problem: str
    fix: Fix
    #: What should be and what is, where a repair needs the value itself (a sysctl).
    want: str = ""
    got: str = ""
    #: The namespace the repair touches (None: the node's own namespace).
    netns: str | None = None
    task_id: str = ""
    #: The node's hostname, filled in by the manager that gathers the reports.
    node: str = ""

    def line(self, node_width: int = 0) -> str:
        """One report line: `worker1  fdb      vx-4097 in ...: missing ... (web.3)`."""
        head = f"{self.node.ljust(node_width)} " if self.node or node_width else ""
        return f"{head}{self.kind.value:<8} {self.object}: {self.problem}"


class VerifyRequest(_Frozen):
    """Manager -> agent: check this node against `desired`; with `fix`, repair too."""

    desired: NodeDesiredState
    fix: bool = False
    #: Also ask every task's resolver (a DNS round trip per name; off for cheap checks).
    dns: bool = True


class NodeReport(_Frozen):
    """Agent -> manager: what one node found (and fixed)."""

    differences: tuple[Difference, ...] = ()
    #: The differences a `fix` request repaired (a later check confirms they are gone).
    fixed: tuple[Difference, ...] = ()
    #: Repairs that failed, one line each.
    errors: tuple[str, ...] = Field(default=())
