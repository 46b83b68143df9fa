"""Compose `volumes:`, as `docker stack deploy` reads them, → a service's mount specs.

Service level, short syntax `[SOURCE:]TARGET[:MODE]`: a SOURCE starting with `/`, `.`
or `~` is a bind of that node path (relative ones are taken from the compose file's
directory, see `anchor_paths`), any other SOURCE is a named volume, which must be
declared in the top-level `volumes:`; MODE is `ro`, `rw` and/or `nocopy`. Long syntax:
type (volume, bind, tmpfs), source, target, read_only, volume.nocopy, tmpfs.size,
tmpfs.mode, bind.create_host_path (a node path is never created here: a missing bind
source rejects the task on its node, as docker's swarm does).
Top level: a named volume becomes `<stack>_<key>` on each node, unless it has a `name:`
or is `external: true` (then its own name). Volumes are node-local directories: a
driver other than `local` and driver options are refused.
Anonymous volumes (a TARGET alone) are refused with the syntax to use instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from orchestrator.cluster.mounts import ram_bytes
from orchestrator.stack.names import scoped

_MODES = {"ro", "rw", "nocopy"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VolumeOptions(_Strict):
    nocopy: bool = False


class TmpfsOptions(_Strict):
    size: int | str = 0
    mode: int = Field(default=0, ge=0, le=0o7777)


class BindOptions(_Strict):
    create_host_path: bool = False


def _short_volume(value: Any) -> Any:
    """`[SOURCE:]TARGET[:MODE]` → the long syntax's mapping."""
    if not isinstance(value, str):
        return value
    parts = value.split(":")
    if len(parts) == 1 or len(parts) > 3 or not all(parts[:2]):
        raise ValueError(
            f"invalid volume {value!r}: expected SOURCE:TARGET[:MODE] (a named volume or a "
            "node path; anonymous volumes are not supported)"
        )
    source, target = parts[0], parts[1]
    modes = set(parts[2].split(",")) if len(parts) == 3 else set()
    if modes - _MODES:
        raise ValueError(
            f"invalid mode {parts[2]!r} in volume {value!r}: expected ro, rw or nocopy"
        )
    bind = source.startswith(("/", ".", "~"))
    out: dict[str, Any] = {
        "type": "bind" if bind else "volume",
        "source": source,
        "target": target,
        "read_only": "ro" in modes,
    }
    if "nocopy" in modes:
        out["volume"] = {"nocopy": True}
    return out


class ServiceVolume(_Strict):
    """One entry of a service's `volumes:` (the short syntax arrives converted)."""

    type: Literal["volume", "bind", "tmpfs"] = "volume"
    source: str = ""
    target: str
    read_only: bool = False
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None
    bind: BindOptions | None = None
    #: Docker for Mac's hint; meaningless on Linux (docker ignores it there too).
    consistency: str | None = None

    @model_validator(mode="after")
    def _source_fits_type(self) -> ServiceVolume:
        if self.type == "tmpfs" and self.source:
            raise ValueError(f"a tmpfs takes no source, got {self.source!r}")
        if self.type != "tmpfs" and not self.source:
            raise ValueError(
                f"a {self.type} needs a source (anonymous volumes are not supported: "
                "name the volume)"
            )
        for options, kind in ((self.volume, "volume"), (self.tmpfs, "tmpfs"), (self.bind, "bind")):
            if options is not None and self.type != kind:
                raise ValueError(f"cannot mix '{kind}' options with type '{self.type}'")
        return self


#: A service's `volumes:` (short or long syntax).
ServiceVolumes = list[Annotated[ServiceVolume, BeforeValidator(_short_volume)]]


class VolumeDecl(_Strict):
    """A top-level `volumes:` entry."""

    name: str | None = None
    external: bool = False
    driver: Literal["local"] | None = None
    labels: dict[str, str] | list[str] = Field(default_factory=dict)


def anchor_paths(raw: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """The merged compose mapping with relative and `~` bind sources made absolute:
    relative to the compose file's directory, as docker resolves them."""
    services = raw.get("services")
    if not isinstance(services, dict):
        return dict(raw)
    out_services = {}
    for key, svc in services.items():
        volumes = svc.get("volumes") if isinstance(svc, dict) else None
        if isinstance(volumes, list):
            svc = {**svc, "volumes": [_anchored(v, base_dir) for v in volumes]}
        out_services[key] = svc
    return {**raw, "services": out_services}


def _anchored(entry: Any, base_dir: Path) -> Any:
    if isinstance(entry, str):
        source, sep, rest = entry.partition(":")
        return f"{_absolute(source, base_dir)}{sep}{rest}" if sep else entry
    bind = isinstance(entry, dict) and entry.get("type") == "bind"
    if bind and isinstance(entry.get("source"), str):
        return {**entry, "source": _absolute(entry["source"], base_dir)}
    return entry


def _absolute(source: str, base_dir: Path) -> str:
    if source.startswith("~"):
        return os.path.expanduser(source)
    if source.startswith("."):
        return os.path.normpath(base_dir.resolve() / source)
    return source


def compose_mounts(
    stack: str, volumes: list[ServiceVolume], declared: Mapping[str, VolumeDecl]
) -> list[dict[str, Any]]:
    """The service's mount specs; ValueError naming an undeclared volume or a bad size."""
    mounts = []
    for v in volumes:
        source = v.source
        if v.type == "volume":
            if source not in declared:
                raise ValueError(
                    f"undefined volume {source!r}: expected a key of the top-level volumes "
                    f"(declared: {', '.join(sorted(declared)) or 'none'})"
                )
            decl = declared[source]
            source = decl.name or (source if decl.external else scoped(stack, source))
        mount: dict[str, Any] = {
            "type": v.type,
            "source": source,
            "target": v.target,
            "readonly": v.read_only,
        }
        if v.tmpfs is not None:
            size = v.tmpfs.size
            mount["tmpfs_size"] = ram_bytes(size) if isinstance(size, str) else size
            mount["tmpfs_mode"] = v.tmpfs.mode
        mounts.append(mount)
    return mounts
