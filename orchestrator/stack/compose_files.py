"""Compose `secrets:` and `configs:`: the top-level declarations, a service's references
to them, and what they become in a stack (docker's `stack deploy` rules).

Top level: `NAME: {file: PATH}` (relative to the compose file's directory) makes a
secret (config) `<stack>_NAME` labelled with the stack, removed with it; `NAME:
{external: true}` (or `external: {name: N}`, or `name: N`) uses one that must exist and
is never touched. A service lists them in the short syntax (`- NAME`) or the long one
(`- source: NAME, target: T, uid: "33", gid: "33", mode: 0400`); the file's target
defaults to NAME (/run/secrets/NAME for a secret, /NAME for a config), not to the
stack-scoped name.

A declared file is read here, when the stack is converted: a missing or unreadable one
refuses the deploy before anything is written.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from netagent.contract.errors import InvalidArgument
from orchestrator.stack.loader import key_path
from orchestrator.stack.names import scoped, stack_labels

KINDS = ("secret", "config")


def _labels(value: Any) -> Any:
    if isinstance(value, list):
        return dict(str(item).partition("=")[::2] for item in value)
    return value


class FileDecl(BaseModel):
    """A top-level secret or config."""

    model_config = ConfigDict(extra="forbid")
    file: str | None = None
    external: bool = False
    name: str | None = None
    labels: Annotated[dict[str, str], BeforeValidator(_labels)] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _external_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("external"), dict):
            data = {**data, "external": True, **data["external"]}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> FileDecl:
        if self.external and self.file is not None:
            raise ValueError("conflicting parameters 'external' and 'file'")
        if not self.external and self.file is None:
            raise ValueError("expected 'file: PATH' or 'external: true'")
        return self


def _short_ref(value: Any) -> Any:
    return {"source": value} if isinstance(value, str) else value


def _int_text(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _mode(value: Any) -> Any:
    """`mode: 0440` reaches here as the text "0440" (the loader reads YAML 1.2, where
    that is no number): octal, as docker's YAML 1.1 reads it; so is 0o440."""
    if isinstance(value, str) and value[:1] == "0" and len(value) > 1:
        try:
            return int(value.removeprefix("0o").removeprefix("0"), 8)
        except ValueError:
            raise ValueError(f"expected an octal file mode like 0440, got {value!r}") from None
    return value


class ServiceFileRef(BaseModel):
    """A service's use of a declared secret or config."""

    model_config = ConfigDict(extra="forbid")
    source: str
    target: str | None = None
    uid: Annotated[int, BeforeValidator(_int_text)] = 0
    gid: Annotated[int, BeforeValidator(_int_text)] = 0
    mode: Annotated[int, BeforeValidator(_mode), Field(ge=0, le=0o777)] = 0o444


ServiceFileRefs = list[Annotated[ServiceFileRef, BeforeValidator(_short_ref)]]


def real_name(stack: str, key: str, decl: FileDecl) -> str:
    """The name the manager knows it by: `name:`, an external one's key, or `<stack>_KEY`."""
    return decl.name or (key if decl.external else scoped(stack, key))


def stack_files(
    declared: Mapping[str, Mapping[str, FileDecl]], stack: str, base_dir: str
) -> tuple[tuple[dict, ...], tuple[tuple[str, str], ...]]:
    """(the secrets and configs to create: {"kind", "name", "labels", "data"}, the
    (kind, name) of external ones), every declared file read now."""
    made, external = [], []
    for kind in KINDS:
        for key, decl in declared[kind].items():
            name = real_name(stack, key, decl)
            if decl.external:
                external.append((kind, name))
                continue
            path = os.path.join(base_dir, os.path.expanduser(decl.file or ""))
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as err:
                raise InvalidArgument(
                    f"{key_path((f'{kind}s', key, 'file'))}: cannot read {path}: {err.strerror}",
                    obj=path,
                    op="validate compose file",
                ) from None
            made.append(
                {
                    "kind": kind,
                    "name": name,
                    "labels": stack_labels(stack, decl.labels),
                    "data": base64.b64encode(data).decode(),
                }
            )
    return tuple(made), tuple(external)


def service_refs(
    stack: str,
    key: str,
    refs: Mapping[str, ServiceFileRefs],
    declared: Mapping[str, Mapping[str, FileDecl]],
) -> dict[str, list[dict]]:
    """The ServiceSpec's `secrets` and `configs` of compose service `key`."""
    out: dict[str, list[dict]] = {}
    for kind in KINDS:
        entries = []
        for i, ref in enumerate(refs[kind]):
            decl = declared[kind].get(ref.source)
            if decl is None:
                where = key_path(("services", key, f"{kind}s", i))
                raise InvalidArgument(
                    f"{where}: {kind} {ref.source!r} is not declared in the top-level "
                    f"{kind}s (declared: {', '.join(sorted(declared[kind])) or 'none'})",
                    obj=ref.source,
                    op="validate compose file",
                )
            entries.append(
                {
                    "source": real_name(stack, ref.source, decl),
                    "target": ref.target or ref.source,
                    "uid": ref.uid,
                    "gid": ref.gid,
                    "mode": ref.mode,
                }
            )
        out[f"{kind}s"] = entries
    return out
