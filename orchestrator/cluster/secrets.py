"""Secrets and configs as the store keeps them, and a service's references to them.

A secret's value is kept sealed (orchestrator.ca.sealing) and never leaves the managers
but opened, in memory, in the desired state of a node that runs a task using it. A
config's value is kept as it came (base64), as Docker keeps configs. Names follow
swarmkit's rule (64 characters of [a-zA-Z0-9-_.], starting and ending with a letter or
digit), sizes its limits (500 KiB a secret, 1000 KiB a config).

A service names what it uses in `ServiceSpec.secrets` / `.configs` (`FileRef`: the
source's name, resolved to its id when the service is written, and where the file goes
in the task); its tasks carry the same references, so a task keeps the files it
started with until a rolling update replaces it.
"""

from __future__ import annotations

import posixpath
import re
import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from netagent.contract.desired import FileKind
from orchestrator.ca.sealing import Sealed

#: swarmkit's name rule for secrets and configs.
FILE_NAME_RE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9._-]{0,62}[a-zA-Z0-9])?\Z")
MAX_SIZE = {FileKind.SECRET: 500 * 1024, FileKind.CONFIG: 1000 * 1024}
#: Where a secret's file goes when its target is a bare name (Docker's).
SECRETS_DIR = "/run/secrets"
DEFAULT_MODE = 0o444


class Model(BaseModel):
    # As orchestrator.cluster.objects.Model (which imports this module).
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def now() -> float:
    return time.time()


class Kind(StrEnum):
    """The store kinds (orchestrator.cluster.store) of the two objects."""

    SECRET = "secret"
    CONFIG = "config"


def check_file_name(value: str, kind: str) -> str:
    if not isinstance(value, str) or not FILE_NAME_RE.match(value):
        raise ValueError(
            f"invalid {kind} name {value!r}: only 64 [a-zA-Z0-9-_.] characters allowed, "
            "and the start and end character must be [a-zA-Z0-9]"
        )
    return value


def check_size(kind: FileKind, data: bytes) -> bytes:
    """Docker's limits; the message never shows the data."""
    limit = MAX_SIZE[kind]
    if not 0 < len(data) < limit:
        raise ValueError(f"{kind} data must be larger than 0 and less than {limit} bytes")
    return data


class FileSpec(Model):
    """What the user gives for a secret or config (the data apart)."""

    name: str
    labels: dict[str, str] = Field(default_factory=dict)


class SecretSpec(FileSpec):
    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_file_name(v, "secret")


class ConfigSpec(FileSpec):
    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_file_name(v, "config")


class Secret(Model):
    id: str
    spec: SecretSpec
    #: The value, sealed with the swarm's data key; never in an API answer.
    sealed: Sealed = Field(repr=False)
    version: int = 1
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)


class Config(Model):
    id: str
    spec: ConfigSpec
    #: The value, base64 (shown by `config inspect`, as Docker's Spec.Data).
    data: str = Field(repr=False)
    version: int = 1
    created_at: float = Field(default_factory=now)
    updated_at: float = Field(default_factory=now)


class FileRef(Model):
    """A service's use of a secret or config (Docker's SecretReference/ConfigReference)."""

    #: The secret's or config's name, as the user gave it.
    source: str
    #: Its id, filled in when the service is written.
    id: str = ""
    #: Where the file goes: a bare name (a secret: under /run/secrets; a config: under
    #: /) or an absolute path. Empty: the source's name.
    target: str = ""
    uid: int = Field(default=0, ge=0)
    gid: int = Field(default=0, ge=0)
    mode: int = Field(default=DEFAULT_MODE, ge=0, le=0o777)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if "\0" in v or any(part == ".." for part in v.split("/")):
            raise ValueError(f"invalid target {v!r}: expected a path without '..'")
        return v

    def path(self, kind: FileKind) -> str:
        """The absolute path of the file inside the task."""
        target = self.target or self.source
        if target.startswith("/"):
            return posixpath.normpath(target)
        base = SECRETS_DIR if kind == FileKind.SECRET else "/"
        return posixpath.join(base, target)


def check_refs(kind: FileKind, refs: list[FileRef]) -> list[FileRef]:
    """No two references of one service put a file at the same place."""
    seen: dict[str, str] = {}
    for ref in refs:
        path = ref.path(kind)
        if path in seen:
            raise ValueError(
                f"duplicate {kind} target for {ref.source} not allowed: {path} is also "
                f"{seen[path]}'s"
            )
        seen[path] = ref.source
    return refs


def refs_key(secrets: list[FileRef], configs: list[FileRef]) -> dict[str, object]:
    """The references' part of a task key (`Service.task_key`): nothing when there are
    none, so the keys of services without any stay what they were."""
    if not secrets and not configs:
        return {}
    return {"files": [[r.model_dump() for r in refs] for refs in (secrets, configs)]}
