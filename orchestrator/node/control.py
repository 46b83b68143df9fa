"""A manager node's seat in the control plane: its etcd member, candidacy and store.

Every manager runs one etcd member (orchestrator.etcd.member) in `manager/etcd/` of its
state directory, campaigns for the leadership (orchestrator.etcd.election) and mirrors
the cluster store (orchestrator.cluster.store). A single manager is a one-member etcd:
the same code path as three or five.

The seat knows nothing of the daemon: it reports each change of leadership through
`on_leadership(leading)`, from the election's thread.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from pydantic import BaseModel, Field

from netagent.contract.errors import Unavailable
from orchestrator.ca.files import NodeCredentials
from orchestrator.cluster import keys
from orchestrator.cluster.store import Store
from orchestrator.etcd.client import EtcdClient, EtcdError, Status
from orchestrator.etcd.member import PEER_PORT, Member, MemberConfig, PeerTLS

log = logging.getLogger(__name__)

#: Longest a new seat waits for its election (a member restarting needs an etcd
#: election first; a new swarm's first manager leads at once).
LEAD_TIMEOUT = 15.0
#: Longest one etcd call of the election's loop waits.
CAMPAIGN_TIMEOUT = 1.0
#: How long the leader keeps asking etcd to add a member it calls unhealthy.
ADD_MEMBER_TIMEOUT = 20.0
#: The longest a unix socket path may be (sun_path), the terminating NUL aside.
MAX_SOCKET_PATH = 107


def etcd_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "manager" / "etcd"


def has_member(state_dir: Path) -> bool:
    """Whether this node holds an etcd member's data (it is, or was, a manager)."""
    return (etcd_dir(state_dir) / "data").exists()


def peer_url(addr: IPv4Address | str) -> str:
    return f"https://{addr}:{PEER_PORT}"


class MemberRequest(BaseModel):
    """A manager asks the leader for an etcd membership (it joined, or was promoted)."""

    node_id: str


class MemberResponse(BaseModel):
    """The members it starts with: node id -> peer URL, itself included; and the swarm's
    data key for secrets (orchestrator.ca.sealing), base64, which a manager receives
    only here, over mutual TLS."""

    peers: dict[str, str]
    data_key: str = Field(default="", repr=False)


class TransferRequest(BaseModel):
    """To the manager whose member leads raft: hand raft leadership to member `to`."""

    to: int


@dataclass(frozen=True)
class Founding:
    """How this node's member starts: a new etcd cluster, or joining `peers`."""

    #: node id -> peer URL of the voting members it starts with (itself included).
    peers: dict[str, str]
    new: bool


def member_config(
    state_dir: Path, node_id: str, addr: IPv4Address | str, cluster_id: str, start: Founding
) -> MemberConfig:
    """The member of the manager `node_id` at `addr`, with the node's own certificate."""
    creds = NodeCredentials.under(state_dir)
    cfg = MemberConfig(
        name=node_id,
        dir=etcd_dir(state_dir),
        peer_url=peer_url(addr),
        # Ignored by etcd once the member has data (a restart): itself is enough then.
        initial_cluster=start.peers or {node_id: peer_url(addr)},
        initial_state="new" if start.new else "existing",
        cluster_token=cluster_id,
        tls=PeerTLS(cert=creds.cert_path, key=creds.key_path, trusted_ca=creds.root_ca_path),
    )
    if len(str(cfg.socket)) > MAX_SOCKET_PATH:
        raise Unavailable(
            f"state directory {state_dir} is too deep for etcd's socket {cfg.socket}: "
            f"expected a path of at most {MAX_SOCKET_PATH} characters",
            obj=str(state_dir),
            op="etcd",
        )
    return cfg


def add_member(client: EtcdClient, node_id: str, url: str) -> dict[str, str]:
    """On the leader: add the manager `node_id` as a new learner at peer URL `url`
    (peer_url of its address); the peers it must start with.

    A node asks only with an empty data directory, so a member already at its address
    (an attempt that timed out, a member whose data was wiped) is removed first: etcd's
    leader remembers how far that member's log got, and the same member id started
    with no log panics at every start ("tocommit(...) is out of range")."""
    deadline = time.monotonic() + ADD_MEMBER_TIMEOUT
    while True:
        try:
            for stale in [m for m in client.members() if url in m.peer_urls]:
                client.member_remove(stale.id)
                log.info("etcd member %x at %s removed: %s joins afresh", stale.id, url, node_id)
            _added, members = client.member_add(url, learner=True)
            break
        except EtcdError as err:
            if not _passing(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    # A member not started yet has no name in etcd: it will be the node id.
    return {
        (m.name or node_id) if url not in m.peer_urls else node_id: m.peer_urls[0] for m in members
    }


#: etcd's refusals of a membership change that pass by themselves: it changes members
#: only once every voter has been connected for 5 s (its HealthInterval) and enough of
#: them started; it holds one learner at a time (another manager joining); and a new
#: member's id comes from its address and the second it is added, so the one just
#: removed, added again within that second, is refused as removed ("member not found").
PASSING_REFUSALS = (
    "unhealthy cluster",
    "not enough started members",
    "too many learner members",
    "member not found",
)


def _passing(err: EtcdError) -> bool:
    return any(refusal in str(err) for refusal in PASSING_REFUSALS)


class Seat:
    """One manager's member, election and store, started together, stopped together."""

    def __init__(
        self, cfg: MemberConfig, node_id: str, on_leadership: Callable[[bool], None]
    ) -> None:
        self.member = Member(cfg)
        # A client of its own, quick to give up: a keepalive or a campaign waiting on an
        # etcd without a leader must not hold the election's loop for long.
        self.election = keys.election(
            EtcdClient(cfg.socket, timeout=CAMPAIGN_TIMEOUT), node_id, on_change=on_leadership
        )
        self.store: Store | None = None

    @property
    def client(self) -> EtcdClient:
        return self.member.client

    @property
    def leading(self) -> bool:
        return self.election.leading

    def start(self, *, wait_leading: bool = False, timeout: float = LEAD_TIMEOUT) -> None:
        """Start the member, then `open()`; on failure everything is stopped again."""
        self.member.start()
        try:
            self.open(timeout, wait_leading=wait_leading)
        except (Unavailable, EtcdError):
            self.stop()
            raise

    def open(self, timeout: float, *, wait_leading: bool = False) -> None:
        """Once the member is a voter in a cluster with a leader: the store, then the
        candidacy; with `wait_leading`, until this manager leads (a new swarm's first
        manager). Unavailable naming what is missing after `timeout`; the member keeps
        running then (the other managers may need it for their quorum)."""
        deadline = time.monotonic() + timeout
        self._wait(deadline, "found no quorum", lambda s: bool(s.leader))
        # A manager that just joined is a learner until the leader promotes it, and a
        # learner serves no quorum reads.
        self._wait(deadline, "is still a learner", lambda s: not s.is_learner)
        if self.store is None:
            self.store = keys.open_store(self.client, self.election, keys.ROOT)
            self.election.start()
        if wait_leading and not self.election.wait_leading(max(0.0, deadline - time.monotonic())):
            raise Unavailable(
                f"this manager did not become the leader within {timeout:g} s: "
                f"etcd says {self.member.last_words()}",
                op="etcd",
            )

    def _wait(self, deadline: float, what: str, ok: Callable[[Status], bool]) -> None:
        while True:
            try:
                if ok(self.client.status()):
                    return
            except EtcdError:
                pass
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"etcd member {self.member.cfg.name} {what}: {self.member.last_words()}",
                    op="etcd",
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Resign (another manager leads at once), then stop the member."""
        self.election.stop()
        if self.store is not None:
            self.store.close()
        self.member.stop()

    def settle_forced(self) -> None:
        """After a start with force_new_cluster: later restarts are ordinary ones."""
        self.member.cfg = dataclasses.replace(self.member.cfg, force_new_cluster=False)

    def wipe(self) -> None:
        """After `stop()`: forget the member's data (the node left or was demoted)."""
        shutil.rmtree(self.member.cfg.dir, ignore_errors=True)
