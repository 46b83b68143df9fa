"""Cluster objects as the manager stores them and the API returns them.

Specs (what the user asked for) are kept apart from the allocated and observed
fields (what the manager and agents made of it), as in swarmkit. Every object
is a pydantic model so that it crosses the store, the API and the CLI validated.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from enum import StrEnum
from ipaddress import IPv4Network
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from netagent.contract.desired import (
    DesiredTaskState,
    EndpointMode,
    Health,
    HealthCheck,
    IPv4,
    IPv4If,
    Mount,
    PublishedPort,
    PublishMode,
    Resources,
    TaskState,
)
from orchestrator.ca import tokens
from orchestrator.ca.roles import NodeRole
from orchestrator.cluster.mounts import MountSpec, check_mounts
from orchestrator.cluster.placement_text import check_constraint, check_preference
from orchestrator.cluster.resources_text import check_limits, resources_key
from orchestrator.cluster.secrets import FileKind, FileRef, check_refs, refs_key

#: A DNS label: what service and network names must be (they become DNS names).
NAME_RE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\Z")


def new_id() -> str:
    """A 25-character lower-case hex id; the first 12 are the short form shown in tables."""
    return secrets.token_hex(13)[:25]


def now() -> float:
    return time.time()


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NodeStatus(StrEnum):
    UNKNOWN = "unknown"
    READY = "ready"
    DOWN = "down"
    DISCONNECTED = "disconnected"


class Availability(StrEnum):
    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


class ManagerStatus(Model):
    """A manager as the managers see it now (`node ls` MANAGER STATUS, `node inspect`):
    filled in when a node is read through the API, never stored."""

    leader: bool = False
    reachability: str = "unknown"  # reachable | unreachable
    addr: str = ""  # ip:2377


class NodeDescription(Model):
    """What a node tells the managers about its machine (swarmkit's NodeDescription)."""

    resources: Resources = Resources()


class Node(Model):
    id: str
    hostname: str
    role: NodeRole
    #: How many times the swarm changed this node's role. A node follows its role when
    #: this grows, not only when the role differs: a demotion and promotion between two
    #: of its heartbeats still removed its etcd member, so it must join afresh.
    role_epoch: int = 0
    addr: IPv4  # underlay address: the manager reaches it here and it is its VTEP
    status: NodeStatus = NodeStatus.UNKNOWN
    status_message: str = ""
    availability: Availability = Availability.ACTIVE
    engine_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    #: Managers only, and only in API answers (see ManagerStatus).
    manager_status: ManagerStatus | None = None
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)
    last_heartbeat: float = 0.0
    #: This node's ingress sandbox address on the ingress network (the routing mesh).
    ingress_addr: IPv4If | None = None
    #: When `node rm --force` of this node, up and running tasks, began (0: it did
    #: not): drained first (its tasks leave every backend before they stop), it is
    #: deleted once none of its tasks runs, or at ops.nodes.REMOVAL_TIMEOUT.
    removing_since: float = 0.0
    #: Digest of the root that signed this node's latest certificate: a CA rotation is
    #: over once every node's is the new root's.
    cert_root: str = ""
    #: What the node reported of itself (docker's Description): its CPUs and memory.
    description: NodeDescription = Field(default_factory=NodeDescription)

    def with_role(self, role: NodeRole, **more: object) -> Node:
        """This node with `role`, its role_epoch counted up (a change it must follow)."""
        return self.model_copy(update={"role": role, "role_epoch": self.role_epoch + 1, **more})


class Cluster(Model):
    """The swarm itself: identity, root CA, join secrets and the dispatcher's settings."""

    id: str
    worker_secret: str
    manager_secret: str
    heartbeat_period: float = 5.0
    created_at: float = Field(default_factory=now)
    #: The root that signs node certificates (PEM; orchestrator.ca.authority).
    ca_cert: str
    #: Its key (PEM), as Swarm keeps it in its store: never leaves the managers, never in
    #: an API answer.
    ca_key: str = Field(repr=False)
    #: The roots nodes trust and joiners fetch (PEM): `ca_cert`, and during a rotation
    #: the previous root too.
    ca_bundle: str
    #: During a rotation: `ca_cert` signed by the previous root, sent with every issued
    #: certificate so that nodes still trusting only the previous root verify it.
    ca_intermediates: str = ""

    @property
    def digest(self) -> str:
        """The digest in join tokens: of `ca_bundle`, so a new bundle changes the tokens."""
        return tokens.bundle_digest(self.ca_bundle.encode())

    #: Life of the node certificates issued from now on (`--cert-expiry`), in seconds.
    cert_expiry: float = 90 * 24 * 3600.0
    #: Ended tasks kept per slot (`--task-history-limit`, Docker's 5).
    task_history_limit: int = Field(default=5, ge=0)
    #: Where overlay subnets come from (`--default-addr-pool`), and their prefix length
    #: (`--default-addr-pool-mask-length`): Docker's 10.0.0.0/8 in /24s.
    default_addr_pool: list[IPv4Network] = Field(
        default_factory=lambda: [DEFAULT_ADDR_POOL], min_length=1
    )
    subnet_size: int = 24

    @model_validator(mode="after")
    def _pools_hold_subnets(self) -> Cluster:
        if not 8 <= self.subnet_size <= 29:
            raise ValueError(
                f"invalid default address pool mask length {self.subnet_size}: expected 8 to 29"
            )
        for pool in self.default_addr_pool:
            if pool.prefixlen > self.subnet_size:
                raise ValueError(
                    f"invalid default address pool {pool}: smaller than its subnets' mask "
                    f"length /{self.subnet_size}"
                )
        return self


#: Docker's default address pool for overlay subnets (`--default-addr-pool`).
DEFAULT_ADDR_POOL = IPv4Network("10.0.0.0/8")

#: The option asking for IPsec ESP between VTEPs, and every option an overlay takes.
ENCRYPTED = "encrypted"
OVERLAY_OPTIONS = (ENCRYPTED,)


class NetworkSpec(Model):
    name: str
    driver: str = "overlay"
    subnet: IPv4Network | None = None
    attachable: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    #: The routing mesh's network (made by `swarm init`, VNI 4096, 10.255.0.0/16).
    ingress: bool = False
    #: Driver options (`--opt K[=V]`); the overlay driver knows only `encrypted`.
    options: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_label(cls, v: str) -> str:
        return check_name(v, "network")

    @field_validator("options")
    @classmethod
    def _known_options(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - set(OVERLAY_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown overlay driver option {unknown[0]!r}: expected one of "
                f"{', '.join(OVERLAY_OPTIONS)}"
            )
        return v

    @property
    def encrypted(self) -> bool:
        """`--opt encrypted` (docker takes any value, even empty, as asking for it)."""
        return ENCRYPTED in self.options

    @field_validator("driver")
    @classmethod
    def _overlay_only(cls, v: str) -> str:
        if v != "overlay":
            raise ValueError(f"driver {v!r} is not supported: expected 'overlay'")
        return v


class Network(Model):
    id: str
    spec: NetworkSpec
    vni: int
    subnet: IPv4Network
    gateway: IPv4
    created_at: float = Field(default_factory=now)


class ServiceMode(StrEnum):
    #: `replicas` tasks, spread by the scheduler.
    REPLICATED = "replicated"
    #: One task on every node that is ready, not drained and satisfies the constraints.
    GLOBAL = "global"


#: A placement constraint, parsed (and refused with one line naming it) at validation.
ConstraintText = Annotated[str, AfterValidator(check_constraint)]
#: A placement preference ("spread=node.labels.zone"), checked at validation.
PreferenceText = Annotated[str, AfterValidator(check_preference)]


class RestartCondition(StrEnum):
    """When a task that ended on its own gets a replacement (swarmkit's restart policy)."""

    ANY = "any"
    ON_FAILURE = "on-failure"
    NONE = "none"


class UpdateOrder(StrEnum):
    """Whether a slot's old task stops before its replacement starts, or after it runs."""

    STOP_FIRST = "stop-first"
    START_FIRST = "start-first"


class FailureAction(StrEnum):
    """What a rolling update does when an updated task fails within its monitor period."""

    PAUSE = "pause"
    CONTINUE = "continue"
    ROLLBACK = "rollback"


class UpdateConfig(Model):
    """Swarm's UpdateConfig (and RollbackConfig): how tasks are replaced after a change."""

    #: Slots replaced at the same time (0: all at once).
    parallelism: int = Field(default=1, ge=0)
    #: Seconds between a replaced slot's new task running and the next slot starting.
    delay: float = Field(default=0.0, ge=0)
    failure_action: FailureAction = FailureAction.PAUSE
    #: Seconds after an updated task starts during which its failure counts against the update.
    monitor: float = Field(default=5.0, ge=0)
    #: Failed fraction of the service's slots tolerated before the failure action.
    max_failure_ratio: float = Field(default=0.0, ge=0, le=1)
    order: UpdateOrder = UpdateOrder.STOP_FIRST


class UpdateState(StrEnum):
    UPDATING = "updating"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLBACK_STARTED = "rollback_started"
    ROLLBACK_PAUSED = "rollback_paused"
    ROLLBACK_COMPLETED = "rollback_completed"

    @property
    def in_progress(self) -> bool:
        return self in (UpdateState.UPDATING, UpdateState.ROLLBACK_STARTED)

    @property
    def rollback(self) -> bool:
        return self.value.startswith("rollback")


class UpdateStatus(Model):
    """Where the service's last rolling update (or rollback) is (inspect's UpdateStatus)."""

    state: UpdateState
    started_at: float
    completed_at: float = 0.0
    message: str = ""
    #: The update (or rollback) config this run follows, fixed when it started.
    config: UpdateConfig = Field(default_factory=UpdateConfig)

    @classmethod
    def begin(cls, state: UpdateState, config: UpdateConfig, now: float, message: str):
        """A run (update or rollback) that starts now, following `config`."""
        return cls(state=state, started_at=now, message=message, config=config)


class NetworkAttachmentSpec(Model):
    target: str  # network name or id, as the user gave it
    aliases: list[str] = Field(default_factory=list)


#: Replicas of one service at most: every task is an object in the store, and ten
#: thousand is more namespaces than the largest lab or VM swarm this project runs.
MAX_REPLICAS = 10_000
REPLICAS_EXPECTED = f"expected an integer from 0 to {MAX_REPLICAS} (the most one service may have)"


class ServiceSpec(Model):
    #: Empty only until the manager names a service created without one (as Docker).
    name: str = ""
    image: str
    command: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)  # "K=V", as docker keeps it
    replicas: int = 1
    networks: list[NetworkAttachmentSpec] = Field(default_factory=list)
    stop_grace_period: float = Field(default=10.0, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    #: Seconds between a task's failure and its replacement (Swarm's restart delay, 5 s).
    restart_delay: float = Field(default=5.0, ge=0)
    endpoint_mode: EndpointMode = EndpointMode.VIP
    ports: list[PublishedPort] = Field(default_factory=list)
    mode: ServiceMode = ServiceMode.REPLICATED
    #: Placement constraints ("node.role==manager"), all of which a node must satisfy.
    constraints: list[ConstraintText] = Field(default_factory=list)
    #: At most this many of the service's tasks on one node (0: no limit).
    max_replicas_per_node: int = Field(default=0, ge=0)
    #: Spread preferences, outermost first ("spread=node.labels.zone").
    placement_preferences: list[PreferenceText] = Field(default_factory=list)
    #: Which ended tasks are replaced (see orchestrator.reconcile.restart_policy).
    restart_condition: RestartCondition = RestartCondition.ANY
    #: Restarts allowed per slot (within `restart_window`, if set); 0: unlimited.
    restart_max_attempts: int = Field(default=0, ge=0)
    #: Seconds over which restarts are counted; 0: unbounded (all restarts count).
    restart_window: float = Field(default=0.0, ge=0)
    update_config: UpdateConfig = Field(default_factory=UpdateConfig)
    rollback_config: UpdateConfig = Field(default_factory=UpdateConfig)
    #: Bumped by `service update --force`: every task is replaced though nothing else changed.
    force_update: int = Field(default=0, ge=0)
    #: Beyond Swarm: move tasks, one update step at a time, to nodes that become available.
    rebalance: bool = False
    #: Healthchecks: run in every task, which serves once healthy and is replaced
    #: when unhealthy (None: no healthcheck).
    healthcheck: HealthCheck | None = None
    # -- mounts (issue 17) --
    #: bind, volume and tmpfs mounts, made in each task's own mount namespace.
    mounts: Annotated[list[MountSpec], AfterValidator(check_mounts)] = Field(default_factory=list)
    # Resources (--limit-*/--reserve-*, compose deploy.resources): limits are enforced
    # through each task's cgroup, reservations by the scheduler.
    limits: Annotated[Resources, AfterValidator(check_limits)] = Resources()
    reservations: Resources = Resources()

    @field_validator("rollback_config")
    @classmethod
    def _rollback_cannot_roll_back(cls, v: UpdateConfig) -> UpdateConfig:
        if v.failure_action == FailureAction.ROLLBACK:
            raise ValueError(
                "invalid rollback failure action 'rollback': expected pause or continue"
            )
        return v

    @field_validator("max_replicas_per_node")
    @classmethod
    def _max_per_node_is_replicated_only(cls, v: int, info: ValidationInfo) -> int:
        if v and info.data.get("mode") == ServiceMode.GLOBAL:
            raise ValueError("replicas-max-per-node can only be used with replicated mode")
        return v

    @model_validator(mode="after")
    def _ports_fit_the_endpoint(self) -> ServiceSpec:
        seen: set[tuple[int, str]] = set()
        for p in self.ports:
            key = (p.published, str(p.protocol))
            if key in seen:
                raise ValueError(f"invalid ports: {p.published}/{p.protocol} is published twice")
            seen.add(key)
            if p.mode == PublishMode.INGRESS and self.endpoint_mode == EndpointMode.DNSRR:
                raise ValueError(
                    f"invalid ports: port {p.published} is published in ingress mode, which "
                    "can't be used with endpoint mode dnsrr (use mode=host)"
                )
        return self

    @property
    def ingress_ports(self) -> list[PublishedPort]:
        return [p for p in self.ports if p.mode == PublishMode.INGRESS]

    @field_validator("name")
    @classmethod
    def _name_is_label(cls, v: str) -> str:
        return check_name(v, "service")

    @field_validator("replicas")
    @classmethod
    def _replicas_in_limits(cls, v: int) -> int:
        if not 0 <= v <= MAX_REPLICAS:
            raise ValueError(REPLICAS_EXPECTED)
        return v

    @field_validator("env")
    @classmethod
    def _env_pairs(cls, v: list[str]) -> list[str]:
        for item in v:
            if "=" not in item or not item.split("=", 1)[0]:
                raise ValueError(f"invalid environment variable {item!r}: expected KEY=VALUE")
        return v

    # Secrets and configs the tasks get as files (orchestrator.cluster.secrets):
    # references by name and id, never values.
    secrets: list[FileRef] = Field(default_factory=list)
    configs: list[FileRef] = Field(default_factory=list)

    @field_validator("secrets", "configs")
    @classmethod
    def _one_file_per_target(cls, v: list[FileRef], info: ValidationInfo) -> list[FileRef]:
        return check_refs(FileKind(info.field_name.removesuffix("s")), v)


class Service(Model):
    id: str
    spec: ServiceSpec
    #: Network ids resolved from spec.networks at create time.
    network_ids: list[str] = Field(default_factory=list)
    #: The service's virtual IP on each of its networks (endpoint mode vip).
    vips: dict[str, IPv4If] = Field(default_factory=dict)
    #: The spec before the last update: what `service rollback` goes back to.
    previous_spec: ServiceSpec | None = None
    update_status: UpdateStatus | None = None
    version: int = 1
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)

    def task_key(self) -> str:
        """A digest of the task-level spec: a task whose key differs is replaced."""
        spec = self.spec
        body = {
            "image": spec.image,
            "command": spec.command,
            "env": spec.env,
            "stop_grace_period": spec.stop_grace_period,
            "networks": [
                [nid, sorted(a.aliases)]
                for nid, a in zip(self.network_ids, spec.networks, strict=False)
            ],
            # Joining or leaving the routing mesh adds or removes an interface.
            "ingress": bool(spec.ingress_ports),
            "constraints": sorted(c.replace(" ", "") for c in spec.constraints),
            "max_replicas_per_node": spec.max_replicas_per_node,
            "placement_preferences": spec.placement_preferences,
            "force_update": spec.force_update,
            **({"mounts": [m.model_dump(mode="json") for m in spec.mounts]} if spec.mounts else {}),
            **resources_key(spec.limits, spec.reservations),
            **refs_key(spec.secrets, spec.configs),
        }
        if spec.healthcheck:  # only then: the keys of services without one stay the same
            body["healthcheck"] = spec.healthcheck.model_dump(mode="json")
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


class TaskAttachment(Model):
    network_id: str
    address: IPv4If
    mac: str
    aliases: list[str] = Field(default_factory=list)


class TaskObservedStatus(Model):
    state: TaskState = TaskState.NEW
    message: str = ""
    err: str = ""
    timestamp: float = Field(default_factory=now)
    pid: int | None = None
    exit_code: int | None = None
    netns: str = ""
    #: What the task's healthcheck says (None: it has none).
    health: Health | None = None


class Task(Model):
    id: str
    service_id: str
    service_name: str
    slot: int
    node_id: str | None = None
    image: str
    command: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list)
    stop_grace_period: float = 10.0
    desired_state: DesiredTaskState = DesiredTaskState.RUNNING
    status: TaskObservedStatus = Field(default_factory=TaskObservedStatus)
    attachments: list[TaskAttachment] = Field(default_factory=list)
    service_version: int = 1
    created_at: float = Field(default_factory=now)
    #: Set when the task died on its own: the manager's time after which its slot may
    #: get a replacement (now + the service's restart delay). 0.0 = no delay pending.
    restart_at: float = 0.0
    #: When the manager began taking this task out of DNS and load balancers before
    #: stopping it (0: not draining). It gets SIGTERM only once every node has applied that.
    draining_since: float = 0.0
    #: The service's placement at creation (the scheduler sees tasks, not services).
    constraints: list[str] = Field(default_factory=list)
    max_replicas_per_node: int = 0
    placement_preferences: list[str] = Field(default_factory=list)
    #: Manager times of the restarts this slot has had under the restart policy,
    #: carried from task to task (kept only when max attempts are set, pruned to
    #: the window): what `restart_max_attempts` is checked against.
    restart_history: list[float] = Field(default_factory=list)
    #: Set when this task ended on its own and the restart policy refused it a
    #: replacement: its slot stays empty until the service changes.
    restart_refused: bool = False
    #: Digest of what the task runs and where it is attached (see `Service.task_key`):
    #: a task whose key differs from its service's is replaced by a rolling update.
    spec_key: str = ""
    #: Manager time the task was first seen RUNNING (0: never): the update monitor's clock.
    started_at: float = 0.0
    #: Chosen by `--rebalance` to move to another node: replaced like an outdated task.
    moving: bool = False
    #: Draining, but kept in the load balancers: every other task of its service is
    #: stopping too and a replacement is still starting (see Reconciler._stop).
    held: bool = False
    #: Healthchecks: the service's, when the task was made.
    healthcheck: HealthCheck | None = None
    # -- mounts (issue 17) --
    #: The service's mounts when the task was made.
    mounts: list[Mount] = Field(default_factory=list)
    # The service's resources at creation: limits go to the agent (the task's cgroup),
    # reservations count against the node's CPUs and memory in the scheduler.
    limits: Resources = Resources()
    reservations: Resources = Resources()
    # The service's secrets and configs when the task was made (references only).
    secrets: list[FileRef] = Field(default_factory=list)
    configs: list[FileRef] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.service_name}.{self.slot}"


def check_name(value: str, kind: str) -> str:
    """Service and network names become DNS labels; refuse anything else."""
    if not NAME_RE.match(value):
        raise ValueError(
            f"invalid {kind} name {value!r}: expected a DNS label "
            "(letters, digits, '-' or '_', 1-63 characters, starting and ending "
            "with a letter or digit)"
        )
    return value
