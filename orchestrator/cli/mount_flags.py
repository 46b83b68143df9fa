"""`--mount` on `service create`, `--mount-add` / `--mount-rm` on `service update`.

Docker's syntax: comma-separated key=value fields (CSV, so a field may be quoted):
  type=bind|volume|tmpfs (docker's default: volume), source|src, target|dst|destination,
  readonly|ro[=true|false], volume-nocopy[=bool] (accepted: a new volume here starts
  empty, there is no image content to copy), tmpfs-size (bytes, or 64k/100m/1g as
  docker), tmpfs-mode (octal).
Docker keys this cluster cannot honour (volume drivers, labels and options, bind
propagation, consistency) are refused naming the key, as unknown keys are.
The manager checks the rest before storing (orchestrator.cluster.mounts).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from typing import Any

import click

from orchestrator.cluster.mounts import ram_bytes

KNOWN = (
    "type, source|src, target|dst|destination, readonly|ro, volume-nocopy, tmpfs-size, tmpfs-mode"
)
#: Docker's keys with no meaning for node-local volumes and plain binds.
UNSUPPORTED = {
    "consistency",
    "bind-propagation",
    "bind-nonrecursive",
    "bind-recursive",
    "volume-driver",
    "volume-label",
    "volume-opt",
    "volume-subpath",
}
_TRUE = {"1", "t", "true", "y", "yes"}
_FALSE = {"0", "f", "false", "n", "no"}


class MountSyntaxError(ValueError):
    """A --mount value docker's syntax does not allow; the message names the field."""


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    raise MountSyntaxError(f"invalid value for {key}: {value} (expected true or false)")


def parse_mount(value: str) -> dict[str, Any]:
    """One --mount value → a mount spec (as orchestrator.cluster.objects stores it)."""
    fields = next(csv.reader([value]), [])
    spec: dict[str, Any] = {"type": "volume", "source": "", "target": "", "readonly": False}
    tmpfs: dict[str, int] = {}
    volume_opts = False
    for field in fields:
        key, sep, val = field.partition("=")
        key = key.lower()
        if not sep:
            if key in ("readonly", "ro"):
                spec["readonly"] = True
            elif key == "volume-nocopy":
                volume_opts = True
            elif key in UNSUPPORTED:
                raise MountSyntaxError(f"unsupported key '{key}' in '{value}': expected {KNOWN}")
            else:
                raise MountSyntaxError(f"invalid field '{field}' must be a key=value pair")
        elif key == "type":
            spec["type"] = val.lower()
        elif key in ("source", "src"):
            # As docker's CLI: a relative path from here becomes absolute.
            spec["source"] = os.path.abspath(val) if val == "." or val.startswith("./") else val
        elif key in ("target", "dst", "destination"):
            spec["target"] = val
        elif key in ("readonly", "ro"):
            spec["readonly"] = _bool(key, val)
        elif key == "volume-nocopy":
            _bool(key, val)
            volume_opts = True
        elif key == "tmpfs-size":
            try:
                tmpfs["tmpfs_size"] = ram_bytes(val)
            except ValueError:
                raise MountSyntaxError(
                    f"invalid value for {key}: {val} (expected bytes or a size like 64m)"
                ) from None
        elif key == "tmpfs-mode":
            try:
                tmpfs["tmpfs_mode"] = int(val, 8)
            except ValueError:
                raise MountSyntaxError(
                    f"invalid value for {key}: {val} (expected an octal mode, e.g. 1770)"
                ) from None
        elif key in UNSUPPORTED:
            raise MountSyntaxError(f"unsupported key '{key}' in '{field}': expected {KNOWN}")
        else:
            raise MountSyntaxError(f"unexpected key '{key}' in '{field}': expected {KNOWN}")
    if spec["type"] not in ("bind", "volume", "tmpfs"):
        raise MountSyntaxError(
            f"invalid mount type '{spec['type']}' in '{value}': expected bind, volume or tmpfs"
        )
    if not spec["target"]:
        raise MountSyntaxError(f"target is required in '{value}'")
    if volume_opts and spec["type"] != "volume":
        raise MountSyntaxError(f"cannot mix 'volume-*' options with mount type '{spec['type']}'")
    if tmpfs and spec["type"] != "tmpfs":
        raise MountSyntaxError(f"cannot mix 'tmpfs-*' options with mount type '{spec['type']}'")
    if spec["type"] != "tmpfs" and not spec["source"]:
        raise MountSyntaxError(f"source is required for a {spec['type']} mount in '{value}'")
    return {**spec, **tmpfs}


def parsed_mounts(values: Iterable[str], flag: str) -> list[dict[str, Any]]:
    """Every value of `flag` parsed; a bad one is a usage error naming it."""
    try:
        return [parse_mount(v) for v in values]
    except MountSyntaxError as exc:
        raise click.BadParameter(str(exc), param_hint=f"'{flag}'") from None


def mount_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`service create --mount` (repeatable)."""
    return click.option(
        "--mount",
        "mounts",
        multiple=True,
        help="Attach a filesystem mount: type=bind|volume|tmpfs,source=...,target=...[,readonly].",
    )(fn)


def mount_update_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`service update --mount-add SPEC --mount-rm TARGET` (both repeatable)."""
    fn = click.option("--mount-rm", multiple=True, help="Remove a mount by its target path.")(fn)
    return click.option("--mount-add", multiple=True, help="Add or update a mount (as --mount).")(
        fn
    )


def apply_mount_update(
    current: list[dict[str, Any]], add: Iterable[str], remove: Iterable[str]
) -> list[dict[str, Any]] | None:
    """The mounts after --mount-rm then --mount-add (a new mount replaces the one at its
    target, as docker's update does); None when neither flag was given."""
    added = parsed_mounts(add, "--mount-add")
    gone = {os.path.normpath(t) for t in remove}
    if not added and not gone:
        return None
    missing = sorted(gone - {os.path.normpath(m["target"]) for m in current})
    if missing:
        raise click.BadParameter(
            f"the service has no mount at {missing[0]}", param_hint="'--mount-rm'"
        )
    replaced = gone | {os.path.normpath(m["target"]) for m in added}
    kept = [m for m in current if os.path.normpath(m["target"]) not in replaced]
    return kept + added


def mount_lines(mounts: list[dict[str, Any]]) -> list[str]:
    """`service inspect --pretty`'s Mounts block, as docker prints it."""
    lines = ["Mounts:"] if mounts else []
    for m in mounts:
        lines += [
            f" Target:\t{m['target']}",
            f"  Source:\t{m['source']}",
            f"  ReadOnly:\t{str(m['readonly']).lower()}",
            f"  Type:\t{m['type']}",
        ]
    return lines
