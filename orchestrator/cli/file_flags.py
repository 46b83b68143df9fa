"""`--secret` / `--config` on `service create`, `--secret-add/-rm` and `--config-add/-rm`
on `service update`, parsed as the docker CLI parses them.

Short syntax: `--secret NAME` (the file is /run/secrets/NAME; a config's is /NAME).
Long syntax: `--secret source=NAME,target=T,uid=U,gid=G,mode=0400` (`src` for
`source`; the mode octal with a leading 0, as docker reads it). The names are resolved
by the manager, which refuses one that does not exist ("secret not found: NAME").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from netagent.contract.errors import InvalidArgument

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
KINDS = ("secret", "config")
_INTS = ("uid", "gid")


def parse_file_ref(value: str, kind: str) -> dict[str, Any]:
    """One --secret/--config value as a FileRef's fields (orchestrator.cluster.secrets)."""
    if "=" not in value:
        if not value:
            raise InvalidArgument(f"invalid --{kind} '': expected a {kind} name", obj=value)
        return {"source": value, "target": value}
    ref: dict[str, Any] = {}
    for field in value.split(","):
        key, sep, val = field.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InvalidArgument(f"invalid field '{field}' must be a key=value pair", obj=value)
        if key in ("source", "src"):
            ref["source"] = val
        elif key == "target":
            ref["target"] = val
        elif key in _INTS:
            ref[key] = _number(val, key, 10)
        elif key == "mode":
            ref["mode"] = _number(val, "mode", 0)
        else:
            raise InvalidArgument(f"invalid field in {kind} request: {key}", obj=value)
    if not ref.get("source"):
        raise InvalidArgument(f"invalid --{kind} {value!r}: source is required", obj=value)
    ref.setdefault("target", ref["source"])
    return ref


def _number(text: str, what: str, base: int) -> int:
    """`base` 0 reads as docker's ParseUint(value, 0, 32): 0400 (and 0o400) octal."""
    if base == 0 and text[:1] == "0" and text[1:2].isdigit():
        text = "0o" + text[1:]
    try:
        value = int(text, base)
        if value < 0:
            raise ValueError
        return value
    except ValueError:
        raise InvalidArgument(
            f"invalid {what} specified: {text!r} is not a number", obj=text
        ) from None


def create_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--secret and --config (repeatable) for `service create`."""
    for kind in reversed(KINDS):
        fn = click.option(
            f"--{kind}",
            f"{kind}_refs",
            multiple=True,
            help=f"Specify {kind}s to expose to the service (NAME or source=NAME,target=...).",
        )(fn)
    return fn


def update_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--secret-add/--secret-rm and --config-add/--config-rm for `service update`."""
    for kind in reversed(KINDS):
        fn = click.option(f"--{kind}-rm", f"{kind}_rm", multiple=True, help=f"Remove a {kind}.")(fn)
        fn = click.option(
            f"--{kind}-add", f"{kind}_add", multiple=True, help=f"Add or update a {kind}."
        )(fn)
    return fn


def create_entries(flags: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The spec's `secrets` and `configs` from create's flags."""
    return {
        f"{kind}s": [parse_file_ref(v, kind) for v in flags.get(f"{kind}_refs") or ()]
        for kind in KINDS
    }


def apply_updates(spec: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """`spec` with update's --X-rm (by name) then --X-add applied (an added reference
    replaces one with the same target)."""
    new = dict(spec)
    for kind in KINDS:
        add = [parse_file_ref(v, kind) for v in flags.get(f"{kind}_add") or ()]
        remove = set(flags.get(f"{kind}_rm") or ())
        if add or remove:
            new[f"{kind}s"] = _merged(spec.get(f"{kind}s") or [], add, remove)
    return new


def _merged(current: list[dict], add: Iterable[dict], remove: set[str]) -> list[dict]:
    added = list(add)
    targets = {r["target"] for r in added}
    kept = [
        r
        for r in current
        if r["source"] not in remove
        and r.get("id") not in remove
        and (r.get("target") or r["source"]) not in targets
    ]
    return kept + added


def pretty_lines(spec: dict[str, Any]) -> list[str]:
    """`service inspect --pretty`'s Secrets and Configs under ContainerSpec (docker's)."""
    lines = []
    for kind in KINDS:
        refs = spec.get(f"{kind}s") or []
        if refs:
            lines.append(f" {kind.title()}s:")
            for r in refs:
                lines += [
                    f"  Target:\t{r.get('target') or r['source']}",
                    f"   Source:\t{r['source']}",
                ]
    return lines
