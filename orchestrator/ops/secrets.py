"""Creating, finding and removing secrets and configs; a service's references to them.

Runs inside the manager's lock and, like every op, raises before it writes. A secret's
value is sealed (orchestrator.ca.sealing) before it reaches the store; no message here
ever shows a value. A secret or config that a service's spec names cannot be removed
(swarmkit's rule and wording: "secret 'x' is in use by the following service: web").
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from netagent.contract.desired import FileKind
from netagent.contract.errors import Conflict, InvalidArgument, NotFound, Unavailable
from orchestrator.ca import sealing
from orchestrator.ca.sealing import DataKey
from orchestrator.cluster.objects import Service, ServiceSpec, new_id
from orchestrator.cluster.secrets import (
    Config,
    ConfigSpec,
    FileRef,
    FileSpec,
    Secret,
    SecretSpec,
    check_size,
)
from orchestrator.cluster.store import Store
from orchestrator.ops.inputs import resolve, validate_spec

#: The swarm's data key, as this manager holds it (None: it holds none).
KeySource = Callable[[], DataKey | None]
FileObject = Secret | Config
MODELS: dict[FileKind, type[Secret] | type[Config]] = {
    FileKind.SECRET: Secret,
    FileKind.CONFIG: Config,
}
SPECS: dict[FileKind, type[FileSpec]] = {FileKind.SECRET: SecretSpec, FileKind.CONFIG: ConfigSpec}


def require_key(keys: KeySource) -> DataKey:
    key = keys()
    if key is None:
        raise Unavailable(
            "this manager holds no data key for secrets: it has not received the swarm's "
            "(see `vxswarm swarm init`/`node promote`)",
            op="secret",
        )
    return key


def listing(store: Store, kind: FileKind) -> list[FileObject]:
    """Every secret (or config), by name."""
    return sorted(store.list(kind.value, MODELS[kind]), key=lambda o: o.spec.name)


def find(store: Store, kind: FileKind, ref: str) -> FileObject:
    """By id, exact name or unique id prefix (Docker's order)."""
    return resolve(kind.value, ref, listing(store, kind), lambda o: o.id, lambda o: o.spec.name)


def create(
    store: Store, kind: FileKind, spec: FileSpec, data: bytes, now: float, keys: KeySource
) -> FileObject:
    """A new secret (its value sealed) or config; Conflict on a name in use."""
    spec = validate_spec(SPECS[kind], spec)
    try:
        check_size(kind, data)
    except ValueError as err:
        raise InvalidArgument(str(err), obj=spec.name, op=f"create {kind}") from None
    if any(o.spec.name == spec.name for o in store.list(kind.value, MODELS[kind])):
        raise Conflict(f"{kind} {spec.name} already exists", obj=spec.name, op=f"create {kind}")
    obj_id = new_id()
    common = {"id": obj_id, "spec": spec, "created_at": now, "updated_at": now}
    if kind == FileKind.SECRET:
        [box] = sealing.seal(require_key(keys), [(obj_id, data)])
        obj: FileObject = Secret(**common, sealed=box)
    else:
        obj = Config(**common, data=base64.b64encode(data).decode())
    store.put(kind.value, obj)
    return obj


def users(services: list[Service], kind: FileKind, obj_id: str) -> list[str]:
    """Names of the services whose spec uses the secret (config) `obj_id`."""
    return sorted(
        s.spec.name for s in services if any(r.id == obj_id for r in refs_of(s.spec, kind))
    )


def remove(store: Store, kind: FileKind, ref: str) -> FileObject:
    """Delete one that no service uses; InvalidArgument naming the services otherwise."""
    obj = find(store, kind, ref)
    using = users(store.list("service", Service), kind, obj.id)
    if using:
        plural = "s" if len(using) > 1 else ""
        raise InvalidArgument(
            f"{kind} '{obj.spec.name}' is in use by the following service{plural}: "
            f"{', '.join(using)}",
            obj=obj.spec.name,
            op=f"remove {kind}",
        )
    store.delete(kind.value, obj.id)
    return obj


def refs_of(spec: ServiceSpec, kind: FileKind) -> list[FileRef]:
    return spec.secrets if kind == FileKind.SECRET else spec.configs


def resolve_refs(store: Store, spec: ServiceSpec) -> ServiceSpec:
    """`spec` with each reference's id filled in from its source's name (or id);
    NotFound naming a source that does not exist ("secret not found: x", Docker's)."""
    update = {}
    for kind, field in ((FileKind.SECRET, "secrets"), (FileKind.CONFIG, "configs")):
        refs = refs_of(spec, kind)
        if not refs:
            continue
        objects = store.list(kind.value, MODELS[kind])
        by_name = {o.spec.name: o for o in objects}
        by_id = {o.id: o for o in objects}
        resolved = []
        for r in refs:
            found = by_name.get(r.source) or by_id.get(r.source)
            if found is None:
                raise NotFound(f"{kind} not found: {r.source}", obj=r.source, op="service")
            resolved.append(r.model_copy(update={"id": found.id, "source": found.spec.name}))
        update[field] = resolved
    return spec.model_copy(update=update) if update else spec
