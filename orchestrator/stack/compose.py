"""The compose v3 subset Swarm honours, as typed models, and its one-line errors.

Owns no kernel object and calls nothing: raw YAML (merged by `loader.py`) goes
in, a validated `ComposeFile` comes out, or `InvalidArgument` naming the key path
and why (`services.web.deploy.replicas: expected an integer, got 'two'`).

Every key of compose file format 3 falls in one of three sets, per section:
  - honoured: a field of a model below, checked (images against the built-in
    workloads, constraints with the scheduler's parser, durations Go-style);
  - known but ignored by `docker stack deploy` or by vxswarm (`build`,
    `depends_on`, `tmpfs`, ...): dropped, and collected so the CLI can print
    one `Ignoring unsupported options: ...` line, as docker does;
  - anything else, a typo most likely: refused, with the closest known key.
`x-*` extension keys are dropped silently, as compose does.

Keys that take two shapes in compose (a command as a string or a list, an
environment as a mapping or a list, ...) are normalised to one shape by a
before-validator, so a bad value gives one error, not one per shape.
"""

from __future__ import annotations

import difflib
import re
import shlex
from ipaddress import IPv4Network
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from netagent.contract.errors import InvalidArgument
from netagent.contract.images import check_image
from orchestrator.cluster.placement_text import check_constraint
from orchestrator.cluster.resources_text import ResourceValueError, parse_cpus, parse_memory
from orchestrator.ops.durations import parse_duration
from orchestrator.ops.healthchecks import make, test_argv
from orchestrator.stack.compose_files import FileDecl, ServiceFileRefs
from orchestrator.stack.loader import key_path
from orchestrator.stack.volumes import ServiceVolumes, VolumeDecl


def _duration(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 10s, 500ms or 1m30s, got {value!r}")
    try:
        return parse_duration(value)
    except InvalidArgument:
        raise ValueError(f"expected a duration like 10s, 500ms or 1m30s, got {value!r}") from None


def _image(value: str) -> str:
    try:
        check_image(value)
    except InvalidArgument as err:
        raise ValueError(str(err)) from None
    return value


def _constraint(value: str) -> str:
    try:
        return check_constraint(value)
    except ValueError as err:
        raise ValueError(getattr(err, "why", str(err))) from None


def _command(value: Any) -> Any:
    """A string is split like a shell would (docker does the same); list items as given."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as err:
            raise ValueError(f"cannot split {value!r} into arguments: {err}") from None
    if isinstance(value, list):
        return [
            str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in value
        ]
    return value


def _mapping(value: Any) -> Any:
    """["K=V", "K2"] → {"K": "V", "K2": None}; a mapping's values as strings, like docker."""
    if isinstance(value, list):
        out: dict[Any, Any] = {}
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"expected KEY=VALUE strings, got {item!r}")
            k, sep, v = item.partition("=")
            if not k:
                raise ValueError(f"expected KEY=VALUE, got {item!r}")
            out[k] = v if sep else None
        return out
    if isinstance(value, dict):
        return {k: _scalar_text(v) for k, v in value.items()}
    return value


def _scalar_text(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return v


_ALIAS_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?\Z")


def _health_test(value: str | list[str]) -> str | list[str]:
    test_argv(value)  # its one-line ValueError names the value
    return value


def _alias(value: str) -> str:
    if not _ALIAS_RE.match(value):
        raise ValueError(f"invalid alias {value!r}: expected a DNS name")
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
Image = Annotated[str, AfterValidator(_image)]
Constraint = Annotated[str, AfterValidator(_constraint)]
Command = Annotated[list[str], BeforeValidator(_command)]
Environment = Annotated[dict[str, str | None], BeforeValidator(_mapping)]
Labels = Annotated[dict[str, str], BeforeValidator(_mapping)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Section(BaseModel):
    """A mapping of a compose file: honoured keys are fields, IGNORED ones are dropped."""

    model_config = ConfigDict(extra="forbid")
    #: Keys compose defines that Swarm (or vxswarm) does not honour here.
    IGNORED: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_ignored(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        ignored = [k for k in data if k in cls.IGNORED]
        if ignored and isinstance(info.context, dict):
            info.context.setdefault("ignored", set()).update(ignored)
        return {
            k: v
            for k, v in data.items()
            if k not in cls.IGNORED and not (isinstance(k, str) and k.startswith("x-"))
        }


class PortConfig(Section):
    """A published port in the long syntax (the short one is converted to this)."""

    target: Port
    published: Port
    protocol: Literal["tcp", "udp"] = "tcp"
    mode: Literal["ingress", "host"] = "ingress"


def _short_port(value: Any) -> Any:
    """'8080:80' or '8080:80/udp' → the long syntax; a mapping passes through."""
    if isinstance(value, dict):
        return value
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected PUBLISHED:TARGET[/PROTOCOL] or a mapping, got {value!r}")
    text = str(value)
    ports, _, proto = text.partition("/")
    parts = ports.split(":")
    if len(parts) == 1:
        raise ValueError(
            f"port {text!r} names no published port: expected PUBLISHED:TARGET "
            "(vxswarm does not pick published ports)"
        )
    if len(parts) > 2:
        raise ValueError(
            f"port {text!r} binds a host address: expected PUBLISHED:TARGET "
            "(every node publishes on all its addresses)"
        )
    if "-" in ports:
        raise ValueError(f"port {text!r} is a range: expected one PUBLISHED:TARGET per entry")
    if not all(p.isdigit() for p in parts):
        raise ValueError(f"invalid port {text!r}: expected PUBLISHED:TARGET[/tcp|udp]")
    return {"published": int(parts[0]), "target": int(parts[1]), "protocol": proto or "tcp"}


class ServiceNetwork(Section):
    IGNORED = frozenset({"ipv4_address", "ipv6_address", "priority", "link_local_ips"})
    aliases: list[Annotated[str, AfterValidator(_alias)]] = Field(default_factory=list)


def _service_networks(value: Any) -> Any:
    """[front, back] or {front: {aliases: [...]}, back: null} → one mapping."""
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of network names, got {value!r}")
        return {name: {} for name in value}
    if isinstance(value, dict):
        return {k: {} if v is None else v for k, v in value.items()}
    return value


class Placement(Section):
    constraints: list[Constraint] = Field(default_factory=list)
    #: [{spread: node.labels.zone}]: kept as given; `convert.py` says if honoured.
    preferences: list[dict[Literal["spread"], str]] = Field(default_factory=list)
    max_replicas_per_node: int = Field(default=0, ge=0)


class UpdateConfig(Section):
    parallelism: int = Field(default=1, ge=0)
    delay: Duration = 0.0
    failure_action: Literal["pause", "continue", "rollback"] = "pause"
    monitor: Duration = 5.0
    max_failure_ratio: float = Field(default=0.0, ge=0, le=1)
    order: Literal["stop-first", "start-first"] = "stop-first"


class RestartPolicy(Section):
    condition: Literal["none", "on-failure", "any"] = "any"
    delay: Duration = 5.0
    max_attempts: int = Field(default=0, ge=0)
    window: Duration = 0.0


def _amount(parse: Any, what: str) -> BeforeValidator:
    def check(value: Any) -> int:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"invalid {what} value {value!r}: expected a number or a string")
        try:
            return parse(value)
        except ResourceValueError as err:
            raise ValueError(str(err)) from None

    return BeforeValidator(check)


class ResourceAmounts(Section):
    """deploy.resources.limits / .reservations: cpus ('0.5') and memory ('512M')."""

    IGNORED = frozenset({"pids", "generic_resources", "devices"})
    cpus: Annotated[int, _amount(parse_cpus, "cpus")] = 0
    memory: Annotated[int, _amount(parse_memory, "memory")] = 0


class Resources(Section):
    limits: ResourceAmounts = Field(default_factory=ResourceAmounts)
    reservations: ResourceAmounts = Field(default_factory=ResourceAmounts)


class Deploy(Section):
    resources: Resources = Field(default_factory=Resources)
    mode: Literal["replicated", "global"] = "replicated"
    replicas: int | None = Field(default=None, ge=0)
    endpoint_mode: Literal["vip", "dnsrr"] = "vip"
    labels: Labels = Field(default_factory=dict)
    placement: Placement = Field(default_factory=Placement)
    update_config: UpdateConfig | None = None
    rollback_config: UpdateConfig | None = None
    restart_policy: RestartPolicy = Field(default_factory=RestartPolicy)

    @model_validator(mode="after")
    def _replicated_only(self) -> Deploy:
        if self.mode == "global" and self.replicas is not None:
            raise ValueError("replicas can only be used with replicated mode")
        if self.mode == "global" and self.placement.max_replicas_per_node:
            raise ValueError("max_replicas_per_node can only be used with replicated mode")
        return self


class Healthcheck(Section):
    """`healthcheck:`; its test is checked, and turned into an argv, by ops.healthchecks."""

    IGNORED = frozenset({"start_interval"})
    test: Annotated[str | list[str], AfterValidator(_health_test)] | None = None
    interval: Duration = 0.0
    timeout: Duration = 0.0
    retries: Annotated[int, Field(ge=0)] = 0
    start_period: Duration = 0.0
    disable: bool = False

    @model_validator(mode="after")
    def _test_or_disable(self) -> Healthcheck:
        if self.disable and self.test is not None:
            raise ValueError("test and disable can't be set at the same time")
        if not self.disable and self.test is None:
            raise ValueError("test is missing: built-in images have no healthcheck of their own")
        return self

    def to_spec(self) -> dict[str, Any] | None:
        """The ServiceSpec's healthcheck (None: disabled, or test ["NONE"])."""
        argv = None if self.disable or self.test is None else test_argv(self.test)
        if argv is None:
            return None
        values = self.model_dump(include={"interval", "timeout", "retries", "start_period"})
        return make(argv, **values).model_dump(mode="json")


class Service(Section):
    IGNORED = frozenset(
        {
            "build", "cap_add", "cap_drop", "cgroup_parent", "container_name",
            "credential_spec", "depends_on", "devices", "dns", "dns_search", "domainname",
            "entrypoint", "env_file", "expose", "external_links", "extra_hosts",
            "hostname", "init", "ipc", "isolation", "labels", "links", "logging", "mac_address",
            "network_mode", "pid", "privileged", "read_only", "restart",
            "security_opt", "shm_size", "stdin_open", "stop_signal", "sysctls", "tmpfs", "tty",
            "ulimits", "user", "userns_mode", "working_dir",
        }
    )  # fmt: skip
    image: Image
    command: Command = Field(default_factory=list)
    environment: Environment = Field(default_factory=dict)
    ports: list[Annotated[PortConfig, BeforeValidator(_short_port)]] = Field(default_factory=list)
    networks: Annotated[dict[str, ServiceNetwork], BeforeValidator(_service_networks)] = Field(
        default_factory=dict
    )
    deploy: Deploy = Field(default_factory=Deploy)
    stop_grace_period: Duration = 10.0
    healthcheck: Healthcheck | None = None
    # -- mounts (issue 17), see orchestrator.stack.volumes --
    volumes: ServiceVolumes = Field(default_factory=list)
    # Secrets and configs given to the tasks (orchestrator.stack.compose_files).
    secrets: ServiceFileRefs = Field(default_factory=list)
    configs: ServiceFileRefs = Field(default_factory=list)


class IpamConfig(Section):
    IGNORED = frozenset({"gateway", "ip_range", "aux_addresses"})
    subnet: IPv4Network


class Ipam(Section):
    IGNORED = frozenset({"options"})
    driver: Literal["default"] = "default"
    config: list[IpamConfig] = Field(default_factory=list, max_length=1)


class Network(Section):
    IGNORED = frozenset({"internal", "enable_ipv6"})
    driver: str = "overlay"
    #: Passed on as the network's options: `encrypted` is refused as `--opt` is.
    driver_opts: Labels = Field(default_factory=dict)
    ipam: Ipam = Field(default_factory=Ipam)
    external: bool = False
    attachable: bool = False
    labels: Labels = Field(default_factory=dict)
    #: The network's real name (default: `<stack>_<key>`); an external one's name.
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _external_name(cls, data: Any) -> Any:
        """The v3 form `external: {name: N}` is `external: true` + `name: N`."""
        if isinstance(data, dict) and isinstance(data.get("external"), dict):
            ext = data["external"]
            extra = sorted(set(ext) - {"name"})
            if extra:
                raise ValueError(f"external: unknown key {extra[0]!r}: expected only 'name'")
            data = {**data, "external": True}
            if "name" in ext:
                data["name"] = ext["name"]
        return data

    @model_validator(mode="after")
    def _external_alone(self) -> Network:
        if self.external:
            given = sorted(self.model_fields_set - {"external", "name"})
            if given:
                raise ValueError(
                    f"conflicting parameters 'external' and {given[0]!r}: an external network "
                    "is made outside the stack"
                )
        elif self.driver != "overlay":
            raise ValueError(f"driver {self.driver!r} is not supported: expected 'overlay'")
        return self


def _network_decls(value: Any) -> Any:
    return (
        {k: {} if v is None else v for k, v in value.items()} if isinstance(value, dict) else value
    )


def _version(value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    if not re.fullmatch(r"3(\.\d+)?", text):
        raise ValueError(
            f"unsupported compose file version {text!r}: expected 3 or 3.x (docker stack "
            "deploys compose file format 3)"
        )
    return text


class ComposeFile(Section):
    IGNORED = frozenset({"name"})
    version: Annotated[str | None, BeforeValidator(_version)] = None
    services: dict[str, Service] = Field(default_factory=dict)
    networks: Annotated[dict[str, Network], BeforeValidator(_network_decls)] = Field(
        default_factory=dict
    )
    # -- mounts (issue 17) --
    volumes: Annotated[dict[str, VolumeDecl], BeforeValidator(_network_decls)] = Field(
        default_factory=dict
    )
    # Declared secrets and configs (orchestrator.stack.compose_files).
    secrets: dict[str, FileDecl] = Field(default_factory=dict)
    configs: dict[str, FileDecl] = Field(default_factory=dict)


# -- errors ----------------------------------------------------------------------------------

_EXPECTED = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "ip_v4_network": "expected an IPv4 subnet like 10.0.9.0/24",
}


def _all_keys() -> set[str]:
    keys: set[str] = set()
    for model in Section.__subclasses__():
        keys |= set(model.model_fields) | set(model.IGNORED)
    return keys


def explain(err: dict) -> str:
    """One pydantic error as `path: why`, in compose's words."""
    loc = list(err["loc"])
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), sorted(_all_keys()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        why = f"unknown key{hint}"
    elif kind == "missing":
        why = "required key is missing"
    elif kind in _EXPECTED:
        why = f"{_EXPECTED[kind]}, got {got!r}"
    elif kind == "literal_error":
        why = f"expected {ctx['expected']}, got {got!r}"
    elif kind in ("greater_than_equal", "less_than_equal"):
        bound = f">= {ctx['ge']}" if "ge" in ctx else f"<= {ctx['le']}"
        why = f"expected a number {bound}, got {got!r}"
    elif kind == "too_long":
        why = f"expected at most {ctx.get('max_length')} entries"
    else:
        why = err["msg"].removeprefix("Value error, ")
    return f"{key_path(loc) or 'top level'}: {why}"


def parse(raw: dict) -> tuple[ComposeFile, list[str]]:
    """The merged raw mapping validated: (the file, sorted ignored keys) or InvalidArgument."""
    context: dict[str, set[str]] = {"ignored": set()}
    try:
        compose = ComposeFile.model_validate(raw, context=context)
    except ValidationError as e:
        errors = e.errors()
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InvalidArgument(explain(errors[0]) + more, op="validate compose file") from None
    return compose, sorted(context["ignored"])
