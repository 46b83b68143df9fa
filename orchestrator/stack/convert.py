"""A validated compose file → the NetworkSpec and ServiceSpec dicts of one stack (pure).

Owns no kernel object and calls nothing. What docker's `stack deploy` does to a
compose file, done here the same way:
  - every object is named `<stack>_<key>` (an external network, or one with a
    `name:`, keeps that name) and labelled `com.docker.stack.namespace=<stack>`;
  - a service naming no network joins `<stack>_default`, which is declared only
    when some service uses it;
  - every service gets its short compose name as an alias on each of its networks,
    so `web` resolves for `shop_web` from the stack's other tasks (vxswarm's DNS
    answers an alias with the IPs of the tasks carrying it);
  - `environment` entries without a value are taken from the deploying shell, or
    dropped when it has none.
Each ServiceSpec dict is then validated with the manager's own model, so anything
the manager would refuse is refused here, before the first API write, under the
compose path it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from netagent.contract.errors import InvalidArgument
from orchestrator.cluster.objects import NetworkSpec, ServiceSpec
from orchestrator.stack.compose import ComposeFile, Network, Service
from orchestrator.stack.compose_files import FileDecl, service_refs, stack_files
from orchestrator.stack.loader import key_path
from orchestrator.stack.names import DEFAULT_NETWORK, scoped, stack_labels
from orchestrator.stack.resources import resources_spec
from orchestrator.stack.volumes import VolumeDecl, compose_mounts

#: ServiceSpec field → where it comes from in a compose service (for error paths).
_SOURCE = {
    "image": "image",
    "command": "command",
    "env": "environment",
    "replicas": "deploy.replicas",
    "mode": "deploy.mode",
    "networks": "networks",
    "stop_grace_period": "stop_grace_period",
    "labels": "deploy.labels",
    "endpoint_mode": "deploy.endpoint_mode",
    "ports": "ports",
    "constraints": "deploy.placement.constraints",
    "max_replicas_per_node": "deploy.placement.max_replicas_per_node",
    "restart_condition": "deploy.restart_policy.condition",
    "restart_delay": "deploy.restart_policy.delay",
    "restart_max_attempts": "deploy.restart_policy.max_attempts",
    "restart_window": "deploy.restart_policy.window",
    "update_config": "deploy.update_config",
    "rollback_config": "deploy.rollback_config",
    "placement_preferences": "deploy.placement.preferences",
    "mounts": "volumes",
    "limits": "deploy.resources.limits",
    "reservations": "deploy.resources.reservations",
    "secrets": "secrets",
    "configs": "configs",
}
#: The ServiceSpec fields a stack sets: on re-deploy the others (`force_update`, ...)
#: keep the value the service has, as docker keeps ForceUpdate.
MANAGED_FIELDS = frozenset({"name", *_SOURCE}) & frozenset(ServiceSpec.model_fields)


@dataclass(frozen=True)
class StackSpec:
    """What one stack should be: its networks and services, as the API takes them."""

    stack: str
    #: NetworkSpec dicts of the networks the stack makes (and removes with `stack rm`).
    networks: tuple[dict, ...] = ()
    #: Names of external networks the stack uses: they must exist and are never touched.
    external: tuple[str, ...] = ()
    #: ServiceSpec dicts, validated, in compose-key order.
    services: tuple[dict, ...] = ()
    #: Secrets and configs the stack makes, with their data (compose_files.stack_files),
    #: and the (kind, name) of external ones, which must exist.
    files: tuple[dict, ...] = ()
    external_files: tuple[tuple[str, str], ...] = ()


def network_name(stack: str, key: str, net: Network) -> str:
    return net.name or (key if net.external else scoped(stack, key))


def convert(
    compose: ComposeFile, stack: str, env: Mapping[str, str], base_dir: str = "."
) -> StackSpec:
    """The stack's specs, or InvalidArgument naming the compose path at fault
    (`base_dir`: the compose file's directory, which `file:` paths are relative to)."""
    declared = dict(compose.networks)
    used = {k for s in compose.services.values() for k in (s.networks or {DEFAULT_NETWORK: None})}
    if DEFAULT_NETWORK in used:
        declared.setdefault(DEFAULT_NETWORK, Network())
    for name, svc in compose.services.items():
        for key in svc.networks:
            if key not in declared:
                where = key_path(("services", name, "networks", key))
                raise InvalidArgument(
                    f"{where}: network {key!r} is not declared in the top-level networks "
                    f"(declared: {', '.join(sorted(declared)) or 'none'})",
                    obj=key,
                    op="validate compose file",
                )
    names: dict[str, str] = {}
    for key, net in declared.items():
        names[key] = network_name(stack, key, net)
        twin = next((k for k, n in names.items() if n == names[key] and k != key), None)
        if twin is not None:
            raise InvalidArgument(
                f"{key_path(('networks', key))}: name {names[key]!r} is taken by network {twin!r}: "
                "expected one network per name",
                obj=names[key],
                op="validate compose file",
            )
    networks, external = [], []
    for key, net in declared.items():
        if key not in used:
            continue  # docker makes only the networks some service uses
        if net.external:
            external.append(names[key])
        else:
            networks.append(_network_spec(stack, key, names[key], net))
    file_decls = {"secret": compose.secrets, "config": compose.configs}
    services = tuple(
        _service_spec(stack, key, svc, names, env, compose.volumes, file_decls)
        for key, svc in compose.services.items()
    )
    files, external_files = stack_files(file_decls, stack, base_dir)
    return StackSpec(stack, tuple(networks), tuple(external), services, files, external_files)


def _network_spec(stack: str, key: str, name: str, net: Network) -> dict:
    spec = {
        "name": name,
        "driver": net.driver,
        "subnet": str(net.ipam.config[0].subnet) if net.ipam.config else None,
        "attachable": net.attachable,
        "labels": stack_labels(stack, net.labels),
        "options": dict(net.driver_opts),
    }
    try:
        NetworkSpec.model_validate(spec)
    except ValidationError as e:
        raise InvalidArgument(
            f"{key_path(('networks', key))}: {_first(e)}", obj=name, op="validate compose file"
        ) from None
    return spec


def _service_spec(
    stack: str,
    key: str,
    svc: Service,
    network_names: Mapping[str, str],
    env: Mapping[str, str],
    volumes: Mapping[str, VolumeDecl],
    declared: Mapping[str, Mapping[str, FileDecl]],
) -> dict:
    deploy, placement, restart = svc.deploy, svc.deploy.placement, svc.deploy.restart_policy
    attachments = svc.networks or {DEFAULT_NETWORK: None}
    spec: dict = {
        "name": scoped(stack, key),
        "image": svc.image,
        "command": list(svc.command),
        "env": [f"{k}={v}" for k, v in _environment(svc, env)],
        "replicas": 1 if deploy.replicas is None else deploy.replicas,
        "mode": deploy.mode,
        "networks": [
            {
                "target": network_names[net],
                # Docker's rule: the short service name is an alias on every network.
                "aliases": [key, *[a for a in (opts.aliases if opts else []) if a != key]],
            }
            for net, opts in attachments.items()
        ],
        "stop_grace_period": svc.stop_grace_period,
        "labels": stack_labels(stack, deploy.labels),
        "endpoint_mode": deploy.endpoint_mode,
        "ports": [p.model_dump() for p in svc.ports],
        "constraints": list(placement.constraints),
        "max_replicas_per_node": placement.max_replicas_per_node,
        "restart_condition": restart.condition,
        "restart_delay": restart.delay,
        "restart_max_attempts": restart.max_attempts,
        "restart_window": restart.window,
        "update_config": deploy.update_config.model_dump() if deploy.update_config else {},
        "rollback_config": deploy.rollback_config.model_dump() if deploy.rollback_config else {},
    }
    spec["placement_preferences"] = [f"spread={p['spread']}" for p in placement.preferences]
    spec["healthcheck"] = svc.healthcheck.to_spec() if svc.healthcheck else None
    spec.update(resources_spec(deploy.resources))
    spec.update(service_refs(stack, key, {"secret": svc.secrets, "config": svc.configs}, declared))
    try:
        spec["mounts"] = compose_mounts(stack, svc.volumes, volumes)
        return ServiceSpec.model_validate(spec).model_dump(mode="json")
    except ValidationError as e:
        err = e.errors()[0]
        source = _SOURCE.get(str(err["loc"][0])) if err["loc"] else None
        where = key_path(("services", key)) + (f".{source}" if source else "")
        raise InvalidArgument(
            f"{where}: {_first(e)}", obj=key, op="validate compose file"
        ) from None
    except ValueError as e:  # from compose_mounts
        where = key_path(("services", key, "volumes"))
        raise InvalidArgument(f"{where}: {e}", obj=key, op="validate compose file") from None


def _environment(svc: Service, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """KEY=VALUE pairs; a KEY without a value takes the deploying shell's, if it has one."""
    out = []
    for k, v in svc.environment.items():
        if v is None:
            v = env.get(k)
        if v is not None:
            out.append((k, v))
    return out


def _first(e: ValidationError) -> str:
    return e.errors()[0]["msg"].removeprefix("Value error, ")
