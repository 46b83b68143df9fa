"""Who is in the swarm: the first manager at `swarm init`, a node joining, a node leaving.

Kept apart from `manager.py` (the facade), like the other operations: inputs are
checked before the first write, and nothing here tells the dispatcher or the
reconciler; the manager does that with what these functions return.

Re-join (documented choice): a node joining with the same hostname and address
as an existing entry gets a NEW node id, and the old entry is removed (its tasks
are replaced like those of a node that left), the way Swarm shows a fresh node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from ipaddress import IPv4Address, IPv4Network

from netagent.contract.errors import Conflict, InvalidArgument
from orchestrator.ca import minting, tokens
from orchestrator.cluster.objects import (
    DEFAULT_ADDR_POOL,
    Cluster,
    Network,
    Node,
    NodeRole,
    NodeStatus,
    new_id,
)
from orchestrator.cluster.store import Store
from orchestrator.cluster.vips_ports import address_book, make_ingress_network, new_ingress_address
from orchestrator.ops import certificates
from orchestrator.ops.inputs import check_addr, check_hostname

#: Node certificates' life unless `--cert-expiry` says otherwise (Swarm: 2160 h).
DEFAULT_CERT_EXPIRY: float = Cluster.model_fields["cert_expiry"].default


def _new_node(
    hostname: str, addr: IPv4Address, role: NodeRole, engine_version: str, now: float
) -> Node:
    return Node(
        id=new_id(),
        hostname=hostname,
        role=role,
        addr=addr,
        status=NodeStatus.READY,
        engine_version=engine_version,
        created_at=now,
        updated_at=now,
        last_heartbeat=now,
    )


def new_cluster(
    cluster_id: str, made: minting.NewRoot, *, heartbeat_period: float = 5.0
) -> Cluster:
    """Swarm `cluster_id` around the root `made` for it: its token digest the sha256
    of the root's bundle, with distinct worker and manager secrets."""
    worker, manager = tokens.new_secrets()
    return Cluster(
        id=cluster_id,
        worker_secret=worker,
        manager_secret=manager,
        heartbeat_period=heartbeat_period,
        ca_cert=made.root.cert_pem.decode(),
        ca_key=made.root.key_pem.decode(),
        ca_bundle=made.bundle_pem.decode(),
    )


@dataclass(frozen=True)
class Founding:
    """What a new swarm starts with: its cluster (and root CA), the ingress network,
    its first manager and that manager's key and certificate."""

    cluster: Cluster
    ingress: Network
    node: Node
    key_pem: bytes = field(repr=False)
    cert_pem: bytes


def founding_objects(
    *,
    hostname: str,
    addr: IPv4Address,
    heartbeat_period: float,
    cert_expiry: float | str | None = None,
    addr_pools: Sequence[str] = (),
    subnet_size: int | None = None,
    engine_version: str,
    now: float,
) -> Founding:
    """The cluster, the ingress network and the first manager of a new swarm. Made
    before the store exists: the first manager's certificate (`certificates.issue`) is
    what its etcd member's peers will check."""
    hostname = check_hostname(hostname)
    addr = check_addr(addr)
    expiry = certificates.check_expiry(cert_expiry) if cert_expiry is not None else None
    check_heartbeat_period(heartbeat_period)
    pools = check_addr_pools(addr_pools, subnet_size)
    node = _new_node(hostname, addr, NodeRole.MANAGER, engine_version, now)
    cluster_id = new_id()
    # The root's validity is wall-clock time (TLS checks it so), not the manager's `now`.
    first = minting.found(
        cluster_id,
        node_id=node.id,
        expiry=timedelta(seconds=expiry if expiry is not None else DEFAULT_CERT_EXPIRY),
        ip_sans=[addr],
    )
    cluster = new_cluster(cluster_id, first.made, heartbeat_period=heartbeat_period)
    if expiry is not None:
        cluster = cluster.model_copy(update={"cert_expiry": expiry})
    cluster = cluster.model_copy(update=pools)
    ingress = make_ingress_network(now)
    node = node.model_copy(
        update={
            "ingress_addr": address_book([ingress], [], [], []).allocate(ingress.id),
            "cert_root": certificates.signer_digest(cluster),
        }
    )
    return Founding(cluster, ingress, node, first.node_key_pem, first.node_cert_pem)


@dataclass(frozen=True)
class Admission:
    """A join that passed every check: the node as it will be stored (its ingress
    address comes at `admit`), and the entries of the same machine it replaces."""

    node: Node
    replaced: list[Node]


def admission(
    store: Store,
    cluster: Cluster,
    token: str,
    *,
    hostname: str,
    addr: IPv4Address,
    engine_version: str,
    now: float,
    node_id: str | None = None,
) -> Admission:
    """The checks of a node joining with `token`, writing nothing: PermissionDenied on
    a bad or rotated token, Conflict when another live node has the address. The node
    gets a new id, or `node_id` (the one its certificate was signed for)."""
    hostname = check_hostname(hostname)
    addr = check_addr(addr)
    role = tokens.verify(cluster, token)
    nodes = store.list("node", Node)
    replaced = [n for n in nodes if n.addr == addr and n.hostname == hostname]
    for n in nodes:
        if n.addr == addr and n.hostname != hostname and n.status != NodeStatus.DOWN:
            raise Conflict(
                f"address {addr} is already used by node {n.hostname} ({n.id[:12]})",
                obj=str(addr),
                op="join",
            )
    node = _new_node(hostname, addr, role, engine_version, now)
    if node_id is not None:
        node.id = node_id
    return Admission(node, replaced)


def admit(store: Store, admitted: Admission) -> Node:
    """Store the node of `admitted` in place of the entries it replaces."""
    node = admitted.node.model_copy()
    with store.tx():
        for old in admitted.replaced:
            store.delete("node", old.id)
        # After the deletes: a replaced entry's ingress address is free again.
        node.ingress_addr = new_ingress_address(store)
        store.put("node", node)
    return node


def check_leavable(node: Node, *, force: bool) -> Node:
    """A manager leaves only with `force`: it takes the control plane with it."""
    if node.role == NodeRole.MANAGER and not force:
        raise Conflict(
            f"node {node.hostname} is a manager: removing it leaves the swarm "
            "without its control plane (use force)",
            obj=node.id,
            op="leave",
        )
    return node


def check_heartbeat_period(seconds: float) -> float:
    """The dispatcher's heartbeat period (`--dispatcher-heartbeat`): positive seconds."""
    if not seconds > 0:
        raise InvalidArgument(
            f"invalid heartbeat period {seconds!r}: expected seconds > 0",
            obj=str(seconds),
            op="swarm settings",
        )
    return float(seconds)


def check_history_limit(limit: int) -> int:
    """Ended tasks kept per slot (`--task-history-limit`): 0 or more."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidArgument(
            f"invalid task history limit {limit!r}: expected an integer of 0 or more",
            obj=str(limit),
            op="swarm settings",
        )
    return limit


def check_addr_pools(pools: Sequence[str], subnet_size: int | None) -> dict[str, object]:
    """`swarm init --default-addr-pool CIDR... --default-addr-pool-mask-length N` as the
    cluster's fields (none given: Docker's 10.0.0.0/8 in /24s); InvalidArgument naming
    the first bad value."""
    defaults = Cluster.model_fields
    size = defaults["subnet_size"].default if subnet_size is None else subnet_size
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 29:
        raise InvalidArgument(
            f"invalid --default-addr-pool-mask-length {size!r}: expected 8 to 29",
            obj=str(size),
            op="init",
        )
    parsed: list[IPv4Network] = []
    for text in pools:
        try:
            pool = IPv4Network(text, strict=True)
        except ValueError:
            raise InvalidArgument(
                f"invalid --default-addr-pool {text!r}: expected an IPv4 network in CIDR "
                "form with the host bits zero, e.g. 10.20.0.0/16",
                obj=text,
                op="init",
            ) from None
        if pool.prefixlen > size:
            raise InvalidArgument(
                f"invalid --default-addr-pool {pool}: smaller than one subnet of "
                f"--default-addr-pool-mask-length {size}",
                obj=text,
                op="init",
            )
        clash = next((p for p in parsed if p.overlaps(pool)), None)
        if clash is not None:
            raise InvalidArgument(
                f"invalid --default-addr-pool {pool}: overlaps pool {clash}", obj=text, op="init"
            )
        parsed.append(pool)
    if not parsed:
        parsed = [DEFAULT_ADDR_POOL]
    return {"default_addr_pool": parsed, "subnet_size": size}
